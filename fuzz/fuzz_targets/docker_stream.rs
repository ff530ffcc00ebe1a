//! Docker's stream multiplexing (`[stream, 0, 0, 0, size u32 BE]` then
//! `size` bytes), as read from exec, attach and log connections of
//! containers without a TTY.
//!
//! The first byte sets the read size; the rest is the stream. Checks: no
//! panic; the same chunks come out whatever the read boundaries, and they
//! are the ones a direct reading of the format gives (stdout, stderr, other
//! stream types dropped, an error for a truncated or oversized frame).

#![no_main]

use std::io;

use bytes::Bytes;
use dockershim::docker::Frame;
use dockershim::docker::multiplex::{Demuxer, MAX_FRAME};
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

/// What a reader yields: the chunks, then `Ok` at a clean end or the error kind.
type Outcome = (Vec<Frame>, Result<(), io::ErrorKind>);

fn demux(reader: impl AsyncRead + Unpin) -> Outcome {
    let mut demux = Demuxer::new(reader);
    let mut chunks = Vec::new();
    // Every frame consumes at least its 8-byte header, so this ends.
    loop {
        match demux.next().now_or_never().expect("reads never wait") {
            Ok(Some(chunk)) => chunks.push(chunk),
            Ok(None) => return (chunks, Ok(())),
            Err(err) => return (chunks, Err(err.kind())),
        }
    }
}

/// The format read directly from the whole input.
fn model(mut data: &[u8]) -> Outcome {
    let mut chunks = Vec::new();
    loop {
        if data.is_empty() {
            return (chunks, Ok(()));
        }
        if data.len() < 8 {
            return (chunks, Err(io::ErrorKind::UnexpectedEof));
        }
        let size = u32::from_be_bytes([data[4], data[5], data[6], data[7]]) as usize;
        if size > MAX_FRAME {
            return (chunks, Err(io::ErrorKind::InvalidData));
        }
        if data.len() < 8 + size {
            return (chunks, Err(io::ErrorKind::UnexpectedEof));
        }
        let payload = Bytes::copy_from_slice(&data[8..8 + size]);
        match data[0] {
            1 => chunks.push(Frame::Stdout(payload)),
            2 => chunks.push(Frame::Stderr(payload)),
            _ => {}
        }
        data = &data[8 + size..];
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let whole = demux(stream);
    let trickled = demux(trickle(stream, usize::from(step % 16) + 1));
    assert_eq!(whole, trickled, "output depends on read boundaries");
    assert_eq!(whole, model(stream));
});
