//! A decoder check for arbitrary input, shared by the unit tests and the
//! `spdy_frame` fuzz target (`fuzz/`): it panics on a bug, so it is hidden
//! from the documented API and no product code calls it.

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use super::frame::{Frame, SpdyCodec};

/// Fuzzing entry point: decodes arbitrary bytes with default limits.
///
/// The bytes are decoded twice, once as a single buffer and once fed in small
/// pieces (sizes derived from the input), and the two frame sequences must be
/// identical. It returns the number of frames decoded before the input ran out
/// or the decoder reported an error. Decoder errors are expected for
/// arbitrary input; a panic (including the equality check failing) is a bug.
pub fn fuzz_decode(data: &[u8]) -> usize {
    fn run(data: &[u8], step: usize) -> Vec<Frame> {
        let mut codec = SpdyCodec::default();
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for chunk in data.chunks(step.max(1)) {
            buf.extend_from_slice(chunk);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(frame)) => frames.push(frame),
                    Ok(None) => break,
                    Err(_) => return frames,
                }
            }
        }
        let _ = codec.decode_eof(&mut buf);
        frames
    }
    let whole = run(data, data.len());
    let step = data.first().map_or(1, |b| usize::from(b % 13) + 1);
    let pieces = run(data, step);
    assert_eq!(
        whole, pieces,
        "decoder output depends on how input is split"
    );
    whole.len()
}
