//! SPDY/3.1 frames and zlib-compressed header blocks, as a streaming client
//! (kubectl, crictl) sends them after the HTTP upgrade.
//!
//! Checks: no panic; the frames do not depend on how the bytes are split
//! into reads (`fuzz_decode`); every decoded frame that the encoder accepts
//! is encoded, and decoding that again gives the same frames.

#![no_main]

use bytes::BytesMut;
use dockershim::streaming::spdy::{SpdyCodec, fuzz_decode};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

/// Frames of `wire` up to the first error or the end of the input.
fn decode_all(wire: &[u8]) -> Vec<dockershim::streaming::spdy::Frame> {
    let mut codec = SpdyCodec::default();
    let mut buf = BytesMut::from(wire);
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        frames.push(frame);
    }
    frames
}

fuzz_target!(|data: &[u8]| {
    let count = fuzz_decode(data);
    let frames = decode_all(data);
    assert_eq!(frames.len(), count);

    // Re-encode with one compression context, as a connection does, and
    // stop at the first frame the encoder refuses (a header the decoder
    // tolerates but a peer may not be sent, such as a NUL in a name).
    let mut encoder = SpdyCodec::default();
    let mut wire = BytesMut::new();
    let mut sent = Vec::new();
    for frame in frames {
        if encoder.encode(frame.clone(), &mut wire).is_err() {
            break;
        }
        sent.push(frame);
    }
    assert_eq!(
        decode_all(&wire),
        sent,
        "re-encoded frames decode differently"
    );
});
