//! Docker's stream multiplexing: without a TTY, exec, attach and log
//! connections carry stdout and stderr as frames, each an 8-byte header
//! (`[stream, 0, 0, 0, size u32 BE]`) then `size` bytes.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::streams::Frame;

/// Largest frame payload accepted; Docker writes at most 32 KiB per frame.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Header byte of a stdout frame.
const STDOUT: u8 = 1;
/// Header byte of a stderr frame.
const STDERR: u8 = 2;

/// Splits a multiplexed stream into stdout and stderr [`Frame`]s.
///
/// It reads only when the frames already read are taken, so it holds at
/// most one frame and one read; [`next`](Self::next) is cancel safe.
pub struct Demuxer<R> {
    reader: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> Demuxer<R> {
    /// Reads frames from `reader`.
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            buf: BytesMut::with_capacity(32 * 1024),
        }
    }

    /// The next frame, or `None` at the end of the stream.
    pub async fn next(&mut self) -> std::io::Result<Option<Frame>> {
        loop {
            if self.buf.len() >= 8 {
                let size = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]])
                    as usize;
                if size > MAX_FRAME {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("docker stream frame of {size} bytes is too large"),
                    ));
                }
                if self.buf.len() >= 8 + size {
                    let kind = self.buf[0];
                    self.buf.advance(8);
                    let payload = self.buf.split_to(size).freeze();
                    match kind {
                        STDOUT => return Ok(Some(Frame::Stdout(payload))),
                        STDERR => return Ok(Some(Frame::Stderr(payload))),
                        // Stdin echo (0) and anything unknown are dropped.
                        _ => continue,
                    }
                }
                self.buf.reserve(8 + size - self.buf.len());
            }
            if self.reader.read_buf(&mut self.buf).await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "docker stream ended inside a frame",
                ));
            }
        }
    }
}

/// A frame as Docker sends it, for the fake Docker and tests.
#[cfg(test)]
pub(super) fn encode(frame: &Frame) -> Vec<u8> {
    let (kind, payload) = match frame {
        Frame::Stdout(bytes) => (STDOUT, bytes),
        Frame::Stderr(bytes) => (STDERR, bytes),
    };
    let size = u32::try_from(payload.len()).expect("a test frame under 4 GiB");
    let mut out = vec![kind, 0, 0, 0];
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![kind, 0, 0, 0];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[tokio::test]
    async fn frames_split_into_stdout_and_stderr_whatever_the_read_boundaries() {
        let mut wire = frame(1, b"\x01\x02out");
        wire.extend(frame(2, b"err"));
        wire.extend(frame(0, b"echo"));
        wire.extend(frame(1, &vec![7u8; 100_000]));
        // Deliver the bytes a few at a time.
        let (mut tx, rx) = tokio::io::duplex(7);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            tx.write_all(&wire).await.unwrap();
        });
        let mut demux = Demuxer::new(rx);
        assert_eq!(
            demux.next().await.unwrap(),
            Some(Frame::Stdout(Bytes::from_static(b"\x01\x02out")))
        );
        assert_eq!(
            demux.next().await.unwrap(),
            Some(Frame::Stderr(Bytes::from_static(b"err")))
        );
        let big = demux.next().await.unwrap().unwrap();
        assert!(matches!(&big, Frame::Stdout(b) if b.len() == 100_000));
        writer.await.unwrap();
        assert_eq!(demux.next().await.unwrap(), None);
    }

    #[tokio::test]
    async fn truncated_and_oversized_frames_are_errors() {
        let mut demux = Demuxer::new(&[1u8, 0, 0, 0, 0, 0, 0, 9, b'a'][..]);
        assert!(demux.next().await.is_err());
        let mut demux = Demuxer::new(&[1u8, 0, 0, 0, 0xff, 0xff, 0xff, 0xff][..]);
        assert!(demux.next().await.is_err());
    }

    #[test]
    fn encoded_frames_read_back() {
        let frames = [
            Frame::Stdout(Bytes::from_static(b"out")),
            Frame::Stderr(Bytes::from_static(b"")),
        ];
        let wire: Vec<u8> = frames.iter().flat_map(encode).collect();
        let mut demux = Demuxer::new(wire.as_slice());
        let mut got = Vec::new();
        while let Some(frame) = futures_util::FutureExt::now_or_never(demux.next())
            .expect("an in-memory reader never waits")
            .unwrap()
        {
            got.push(frame);
        }
        assert_eq!(got, frames);
    }

    /// Every truncation and every one-byte corruption of a stream: frames,
    /// then an end or an error, never a panic or a wait; a truncation is an
    /// error exactly when it cuts a frame.
    #[test]
    fn damaged_streams_give_frames_then_an_end_or_an_error() {
        let frames = [
            Frame::Stdout(Bytes::from_static(b"out")),
            Frame::Stderr(Bytes::new()),
            Frame::Stdout((0..=255u8).collect()),
        ];
        let mut wire = Vec::new();
        let mut boundaries = vec![0];
        for frame in &frames {
            wire.extend(encode(frame));
            boundaries.push(wire.len());
        }
        let decode = |input: &[u8]| {
            let mut demux = Demuxer::new(input);
            let mut count = 0;
            loop {
                match futures_util::FutureExt::now_or_never(demux.next())
                    .expect("an in-memory reader never waits")
                {
                    Ok(Some(_)) => count += 1,
                    Ok(None) => return Ok(count),
                    Err(err) => return Err(err.kind()),
                }
                // Each frame takes its 8-byte header at least.
                assert!(count <= input.len() / 8);
            }
        };
        for cut in 0..=wire.len() {
            let got = decode(&wire[..cut]);
            match boundaries.iter().position(|b| *b == cut) {
                Some(whole) => assert_eq!(got, Ok(whole), "cut at {cut}"),
                None => assert_eq!(got, Err(std::io::ErrorKind::UnexpectedEof), "cut at {cut}"),
            }
        }
        for at in 0..wire.len() {
            for value in [0x00, 0x01, 0x02, 0x7f, 0xff] {
                let mut damaged = wire.clone();
                damaged[at] = value;
                let _ = decode(&damaged);
            }
        }
    }
}
