//! The end-of-file scan that finds where a container's CRI log stopped, so
//! a restarted shim resumes after the last line already written. The input
//! is the whole log file.
//!
//! Checks: no panic; the scan (backwards, in blocks, probing each line's
//! head) gives the timestamp a direct reading of the file gives: that of
//! the last of the final 16 complete lines whose first 256 bytes parse.

#![no_main]

use std::io::Cursor;

use dockershim::logs::crilog::{last_timestamp_in, parse_line};
use futures_util::FutureExt;
use libfuzzer_sys::fuzz_target;

/// Unparseable lines the scan skips before giving up (`MAX_LINES_TRIED`).
const MAX_LINES_TRIED: usize = 16;
/// Bytes of a line's head that are parsed (`HEADER_PROBE`).
const HEADER_PROBE: usize = 256;

fuzz_target!(|data: &[u8]| {
    let mut file = Cursor::new(data);
    let scanned = last_timestamp_in(&mut file, data.len() as u64)
        .now_or_never()
        .expect("an in-memory file never waits")
        .expect("an in-memory file cannot fail");

    // A trailing line without its newline is still being written: skip it.
    let complete = match data.iter().rposition(|&b| b == b'\n') {
        Some(end) => &data[..end],
        None => {
            assert_eq!(scanned, None);
            return;
        }
    };
    let expected = complete
        .rsplit(|&b| b == b'\n')
        .take(MAX_LINES_TRIED)
        .find_map(|line| parse_line(&line[..line.len().min(HEADER_PROBE)]).ok())
        .map(|entry| entry.timestamp);
    assert_eq!(scanned, expected);
});
