//! The memory budget of decoded SPDY header blocks (issue 21): blocks are
//! charged for every name and value, with its allocation, while they are
//! decoded, under limits taken from the input's first bytes so that small
//! inputs reach them.
//!
//! Checks: no panic; every decoded block stays within the budget it was
//! decoded under (`HeaderBlock::cost`) and has no value above the
//! per-value limit; the frames do not depend on how the bytes are split.

#![no_main]

use bytes::BytesMut;
use dockershim::streaming::spdy::{Frame, FrameLimits, HeaderBlock, SpdyCodec};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fn decode(limits: FrameLimits, wire: &[u8], step: usize) -> Vec<Frame> {
    let mut codec = SpdyCodec::new(limits);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in wire.chunks(step.max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(_) => return frames,
            }
        }
    }
    frames
}

fn headers(frame: &Frame) -> Option<&HeaderBlock> {
    match frame {
        Frame::SynStream { headers, .. }
        | Frame::SynReply { headers, .. }
        | Frame::Headers { headers, .. } => Some(headers),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&[budget, value, step], wire)) = data.split_first_chunk::<3>() else {
        return;
    };
    let limits = FrameLimits {
        max_header_block_len: 64 + usize::from(budget) * 16,
        max_header_value_len: usize::from(value),
        ..FrameLimits::default()
    };
    let whole = decode(limits, wire, wire.len());
    for block in whole.iter().filter_map(headers) {
        assert!(
            block.cost() <= limits.max_header_block_len,
            "a block costing {} passed a budget of {}",
            block.cost(),
            limits.max_header_block_len
        );
        for (_, values) in block.iter() {
            assert!(
                values
                    .iter()
                    .all(|v| v.len() <= limits.max_header_value_len)
            );
        }
    }
    let pieces = decode(limits, wire, usize::from(step % 13) + 1);
    assert_eq!(
        whole, pieces,
        "decoder output depends on how input is split"
    );
});
