//! Docker's timestamped log stream of a TTY container (`<timestamp>
//! <content>` per message, a piece of a long line followed directly by the
//! next timestamp), cut into messages by `docker::tty_log::TtyMessages`.
//!
//! The first byte sets the read size; the rest is the stream. Checks: no
//! panic; no message's content is longer than Docker's 16 KiB cut; the
//! content never holds more bytes than the stream; the same messages come
//! out whatever the read boundaries.

#![no_main]

use std::io;

use bytes::Bytes;
use dockershim::docker::tty_log::{LOG_MESSAGE_MAX, TtyMessages};
use futures_util::FutureExt;
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncRead;

/// A reader that hands out `data` at most `step` bytes per read, always at
/// once.
fn trickle(data: &[u8], step: usize) -> impl AsyncRead + Unpin + '_ {
    let chunks = data
        .chunks(step)
        .map(|c| Ok::<_, io::Error>(Bytes::copy_from_slice(c)));
    tokio_util::io::StreamReader::new(futures_util::stream::iter(chunks))
}

/// Each message as (seconds, nanoseconds, content).
fn decode(reader: impl AsyncRead + Unpin) -> Vec<(i64, u32, Bytes)> {
    let mut messages = TtyMessages::new(reader, chrono::DateTime::UNIX_EPOCH);
    let mut out = Vec::new();
    while let Some((ts, content)) = messages
        .next()
        .now_or_never()
        .expect("an in-memory stream never waits")
        .expect("an in-memory stream cannot fail")
    {
        out.push((ts.timestamp(), ts.timestamp_subsec_nanos(), content));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let whole = decode(stream);
    let content: usize = whole.iter().map(|(_, _, c)| c.len()).sum();
    assert!(content <= stream.len());
    for (_, _, c) in &whole {
        assert!(c.len() <= LOG_MESSAGE_MAX);
    }
    let trickled = decode(trickle(stream, usize::from(step).max(1)));
    assert_eq!(whole, trickled);
});
