//! CRI log lines (`<RFC 3339 time> <stream> <tags> <content>`) as read back
//! from a container's log file (written by us, another runtime, or torn by
//! a crash), and the timestamps of Docker's log stream.
//!
//! Checks: no panic; a line that parses is written back by `encode` as a
//! line that parses to the same entry (so whatever is read can be written);
//! the same for a timestamp alone.

#![no_main]

use dockershim::logs::crilog::{encode, encode_timestamp, parse_line, parse_timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = parse_line(data) {
        let mut line = Vec::new();
        encode(&entry, &mut line);
        assert_eq!(
            parse_line(&line),
            Ok(entry),
            "re-encoded line {:?}",
            String::from_utf8_lossy(&line)
        );
    }
    // Docker prefixes each log message with its timestamp and a space.
    let field = data.split(|&b| b == b' ').next().unwrap_or(data);
    if let Ok(ts) = parse_timestamp(field) {
        let mut text = Vec::new();
        encode_timestamp(ts, &mut text);
        assert_eq!(
            parse_timestamp(&text),
            Ok(ts),
            "re-encoded timestamp {:?}",
            String::from_utf8_lossy(&text)
        );
    }
});
