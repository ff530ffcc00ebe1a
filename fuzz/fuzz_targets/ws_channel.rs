//! WebSocket messages of the Kubernetes channel protocols
//! (`v4`/`v5.channel.k8s.io`, `base64.channel.k8s.io` and
//! `v4.base64.channel.k8s.io`) as exec, attach and port-forward clients send
//! them, and the JSON terminal sizes carried on the resize channel.
//!
//! The first byte picks the protocol (bit 0: base64) and the message type
//! (bit 1: text); the rest is the message. Checks: no panic; a decoded
//! message re-encodes to one that decodes the same; every channel and
//! payload the shim encodes decodes back to itself; terminal sizes do not
//! depend on how the resize bytes are split into messages.

#![no_main]

use bytes::Bytes;
use dockershim::streaming::remotecommand::{MAX_BASE64_CHANNEL, ws_decode, ws_frame};
use dockershim::streaming::session::ResizeDecoder;
use libfuzzer_sys::fuzz_target;
use tokio_tungstenite::tungstenite::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let base64 = selector & 1 != 0;
    let message = if selector & 2 != 0 {
        Message::Text(String::from_utf8_lossy(rest).into_owned().into())
    } else {
        Message::Binary(Bytes::copy_from_slice(rest))
    };

    if let Some((channel, payload)) = ws_decode(base64, message) {
        let frame =
            ws_frame(base64, channel, &payload).expect("a channel that was received can be sent");
        assert_eq!(ws_decode(base64, frame), Some((channel, payload)));
    }

    if let Some((&channel, payload)) = rest.split_first() {
        // Channels a protocol cannot address are refused, never mangled.
        if let Some(frame) = ws_frame(base64, channel, payload) {
            assert_eq!(
                ws_decode(base64, frame),
                Some((channel, payload.to_vec())),
                "channel {channel} does not survive encoding"
            );
        } else {
            assert!(base64 && channel > MAX_BASE64_CHANNEL);
        }
    }

    // Resize messages: whole, then in pieces whose sizes come from the input.
    let whole = ResizeDecoder::default().push(rest);
    let mut split = ResizeDecoder::default();
    let mut pieces = Vec::new();
    let step = usize::from(selector >> 2) + 1;
    for chunk in rest.chunks(step) {
        pieces.extend(split.push(chunk));
    }
    // Input that the whole-message decoder drops as malformed may yield
    // sizes when split, so only the whole message's sizes must be there.
    // (The decoder caps its tail at 4 KiB; libFuzzer's inputs are smaller.)
    assert!(
        rest.len() > 4096 || pieces.starts_with(&whole),
        "resize sizes depend on message boundaries: {whole:?} vs {pieces:?}"
    );
});
