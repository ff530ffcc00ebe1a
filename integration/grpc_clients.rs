//! gRPC client stacks other than grpc-go on the Unix socket. gRPC C-core
//! (Python, C++, Ruby, PHP) sends the socket path %-encoded as the HTTP/2
//! `:authority`, grpc-java sends it raw, some clients send none; the shim
//! must answer all of them (see third_party/h2/PATCH.md).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

/// `VersionRequest { version: "v1" }`, encoded.
const VERSION_REQUEST: &[u8] = b"\x0a\x02v1";

#[tokio::test]
async fn python_grpcio_with_default_options_gets_version_answered() {
    let shim = Shim::start().await;
    let script = r#"
import sys, grpc
channel = grpc.insecure_channel("unix://" + sys.argv[1])
version = channel.unary_unary("/runtime.v1.RuntimeService/Version")
reply = version(b"\x0a\x02v1", timeout=20)
sys.stdout.write(reply.decode("utf-8", "replace"))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&shim.socket)
        .output()
        .expect("python3 (integration/test.sh installs grpcio from PyPI)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python grpcio client failed: {}\n{stdout}\nshim log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        shim.logs()
    );
    assert!(stdout.contains("docker"), "{stdout}");
}

#[tokio::test]
async fn raw_http2_requests_with_any_authority_get_version_answered() {
    let shim = Shim::start().await;
    let path = shim.socket.display().to_string();
    let encoded = path.replace('/', "%2F");
    for authority in [
        encoded.as_str(),
        path.as_str(),
        "",
        "localhost",
        "unix:%2Frun%2Fdockershim.sock",
    ] {
        let socket = shim.socket.clone();
        let authority_owned = authority.to_string();
        let answer = tokio::task::spawn_blocking(move || call_version(&socket, &authority_owned))
            .await
            .unwrap();
        match answer {
            Ok(reply) => assert!(
                String::from_utf8_lossy(&reply).contains("docker"),
                "authority {authority:?}: {reply:?}"
            ),
            Err(err) => panic!("authority {authority:?}: {err}\n{}", shim.logs()),
        }
    }
}

/// One `Version` call over a hand-made HTTP/2 connection whose `:authority`
/// is `authority`; returns the response message.
fn call_version(socket: &std::path::Path, authority: &str) -> Result<Vec<u8>, String> {
    let mut conn = UnixStream::connect(socket).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    frame(&mut out, 4, 0, 0, &[]);
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/runtime.v1.RuntimeService/Version"),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        // Literal header field without indexing, new name, no Huffman.
        block.push(0);
        hpack_string(&mut block, name);
        hpack_string(&mut block, value);
    }
    frame(&mut out, 1, 0x4, 1, &block);
    let mut message = vec![0];
    message.extend_from_slice(&u32::try_from(VERSION_REQUEST.len()).unwrap().to_be_bytes());
    message.extend_from_slice(VERSION_REQUEST);
    frame(&mut out, 0, 0x1, 1, &message);
    conn.write_all(&out).map_err(|e| e.to_string())?;

    for _ in 0..64 {
        let mut header = [0u8; 9];
        conn.read_exact(&mut header)
            .map_err(|e| format!("reading a frame: {e}"))?;
        let len =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let (kind, flags) = (header[3], header[4]);
        let mut payload = vec![0u8; len];
        conn.read_exact(&mut payload).map_err(|e| e.to_string())?;
        match kind {
            // DATA: the gRPC message (5-byte prefix, then the protobuf).
            0 if payload.len() > 5 => return Ok(payload[5..].to_vec()),
            3 => return Err(format!("stream reset: {payload:?}")),
            7 => return Err(format!("connection closed (GOAWAY): {payload:?}")),
            4 if flags & 1 == 0 => {
                let mut ack = Vec::new();
                frame(&mut ack, 4, 1, 0, &[]);
                conn.write_all(&ack).map_err(|e| e.to_string())?;
            }
            _ => {}
        }
    }
    Err("no answer in 64 frames".into())
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    out.extend_from_slice(&len[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// An HPACK string literal: a 7-bit-prefix length, then the raw bytes.
fn hpack_string(out: &mut Vec<u8>, value: &str) {
    let mut len = value.len();
    if len < 127 {
        out.push(u8::try_from(len).unwrap());
    } else {
        out.push(127);
        len -= 127;
        while len >= 128 {
            out.push(u8::try_from(len % 128).unwrap() | 0x80);
            len /= 128;
        }
        out.push(u8::try_from(len).unwrap());
    }
    out.extend_from_slice(value.as_bytes());
}
