//! SPDY/3 wire format: frame types, header blocks, the per-direction zlib
//! header contexts and a `tokio_util` codec that turns bytes into [`Frame`]s
//! and back.
//!
//! Only what Kubernetes streaming (moby/spdystream peers) needs is modelled,
//! but every SPDY/3 control frame is parsed so that a peer using the rest of
//! the protocol cannot confuse the connection. Everything read from the wire is
//! bounded by [`FrameLimits`]; malformed input yields a [`SpdyError`], never a
//! panic.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

mod compress;
pub use compress::{
    HEADER_DICTIONARY, HEADER_DICTIONARY_ID, HEADER_DICTIONARY_LEN, HeaderCompressor,
    HeaderDecompressor,
};

/// The only protocol version spoken here.
pub const VERSION: u16 = 3;
/// Largest length the 24-bit length field can carry.
pub const MAX_FRAME_LEN: usize = 0x00FF_FFFF;
/// Stream ids are 31 bits.
pub const MAX_STREAM_ID: u32 = 0x7FFF_FFFF;
/// FIN flag (DATA, SYN_STREAM, SYN_REPLY, HEADERS).
pub const FLAG_FIN: u8 = 0x01;
/// UNIDIRECTIONAL flag (SYN_STREAM only).
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// SETTINGS frame flag asking the peer to drop persisted settings.
pub const FLAG_SETTINGS_CLEAR: u8 = 0x01;

const FRAME_HEADER_LEN: usize = 8;
const RESERVE_STEP: usize = 64 * 1024;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// Errors from framing, header compression and the connection layer.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("unsupported SPDY version {0} (only version 3 is spoken)")]
    UnsupportedVersion(u16),
    #[error("{kind} frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        kind: &'static str,
        len: usize,
        max: usize,
    },
    #[error("invalid {frame} frame: {reason}")]
    InvalidFrame {
        frame: &'static str,
        reason: &'static str,
    },
    #[error("decompressed header block exceeds the limit of {max} bytes")]
    HeaderBlockTooLarge { max: usize },
    #[error("header block declares {count} headers, more than the limit of {max}")]
    TooManyHeaders { count: u32, max: usize },
    #[error("header value of {len} bytes exceeds the limit of {max} bytes")]
    HeaderValueTooLong { len: usize, max: usize },
    #[error("decoded headers would take more than {max} bytes of memory")]
    DecodedHeadersTooLarge { max: usize },
    #[error("malformed header block: {0}")]
    MalformedHeaderBlock(&'static str),
    #[error("invalid header {name:?}: {reason}")]
    InvalidHeader { name: String, reason: &'static str },
    #[error("header compression failed: {0}")]
    Compression(String),
    #[error("header decompression failed: {0}")]
    Decompression(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("stream {id} was reset ({status:?})")]
    StreamReset { id: u32, status: RstStatus },
    #[error("stream {0} is closed for sending")]
    StreamClosed(u32),
    #[error("connection closed")]
    ConnectionClosed,
    #[error("connection is going away; no new streams")]
    GoingAway,
    #[error("too many concurrent streams (limit {0})")]
    TooManyStreams(usize),
    #[error("stream ids exhausted")]
    StreamIdsExhausted,
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}

/// RST_STREAM status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RstStatus {
    ProtocolError,
    InvalidStream,
    RefusedStream,
    UnsupportedVersion,
    Cancel,
    InternalError,
    FlowControlError,
    StreamInUse,
    StreamAlreadyClosed,
    InvalidCredentials,
    FrameTooLarge,
    /// A code this implementation does not know; kept so it can be echoed or logged.
    Other(u32),
}

impl RstStatus {
    pub fn from_u32(code: u32) -> Self {
        match code {
            1 => Self::ProtocolError,
            2 => Self::InvalidStream,
            3 => Self::RefusedStream,
            4 => Self::UnsupportedVersion,
            5 => Self::Cancel,
            6 => Self::InternalError,
            7 => Self::FlowControlError,
            8 => Self::StreamInUse,
            9 => Self::StreamAlreadyClosed,
            10 => Self::InvalidCredentials,
            11 => Self::FrameTooLarge,
            other => Self::Other(other),
        }
    }

    pub fn as_u32(self) -> u32 {
        match self {
            Self::ProtocolError => 1,
            Self::InvalidStream => 2,
            Self::RefusedStream => 3,
            Self::UnsupportedVersion => 4,
            Self::Cancel => 5,
            Self::InternalError => 6,
            Self::FlowControlError => 7,
            Self::StreamInUse => 8,
            Self::StreamAlreadyClosed => 9,
            Self::InvalidCredentials => 10,
            Self::FrameTooLarge => 11,
            Self::Other(code) => code,
        }
    }
}

/// GOAWAY status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GoAwayStatus {
    Ok,
    ProtocolError,
    InternalError,
    Other(u32),
}

impl GoAwayStatus {
    pub fn from_u32(code: u32) -> Self {
        match code {
            0 => Self::Ok,
            1 => Self::ProtocolError,
            2 => Self::InternalError,
            other => Self::Other(other),
        }
    }

    pub fn as_u32(self) -> u32 {
        match self {
            Self::Ok => 0,
            Self::ProtocolError => 1,
            Self::InternalError => 2,
            Self::Other(code) => code,
        }
    }
}

/// One SETTINGS entry. `id` is 24 bits on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub flags: u8,
    pub id: u32,
    pub value: u32,
}

/// A decoded SPDY/3 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_stream_id: u32,
        /// 0 (highest) ..= 7.
        priority: u8,
        slot: u8,
        fin: bool,
        unidirectional: bool,
        headers: HeaderBlock,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: HeaderBlock,
    },
    RstStream {
        stream_id: u32,
        status: RstStatus,
    },
    Settings {
        clear_previous: bool,
        entries: Vec<Setting>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: GoAwayStatus,
    },
    Headers {
        stream_id: u32,
        fin: bool,
        headers: HeaderBlock,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
}

/// Header names a Go SPDY peer refuses in a SYN_STREAM (hop-by-hop HTTP/1 headers).
const INVALID_REQUEST_HEADERS: &[&str] = &[
    "connection",
    "host",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
];

/// What one decoded value costs beyond its bytes (its `String`).
const VALUE_OVERHEAD: usize = std::mem::size_of::<String>();
/// What one decoded name costs beyond its bytes (its entry and value list).
const NAME_OVERHEAD: usize = std::mem::size_of::<(String, Vec<String>)>();

/// Ordered header map with lower-case names and one or more values per name.
///
/// On the wire multiple values of one name are joined with NUL, which is why
/// values may not contain NUL themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderBlock {
    entries: Vec<(String, Vec<String>)>,
}

impl HeaderBlock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a value; the name is lower-cased because SPDY/3 requires it.
    pub fn insert(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.position(name) {
            Some(i) => self.entries[i].1.push(value),
            None => self.entries.push((name.to_ascii_lowercase(), vec![value])),
        }
    }

    /// Replaces all values of `name` with `value`.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.position(name) {
            Some(i) => self.entries[i].1 = vec![value],
            None => self.entries.push((name.to_ascii_lowercase(), vec![value])),
        }
    }

    /// First value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_all(name).first().map(String::as_str)
    }

    /// All values of `name` (case-insensitive); empty if absent.
    pub fn get_all(&self, name: &str) -> &[String] {
        match self.position(name) {
            Some(i) => &self.entries[i].1,
            None => &[],
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    pub fn remove(&mut self, name: &str) -> Option<Vec<String>> {
        self.position(name).map(|i| self.entries.remove(i).1)
    }

    /// Number of distinct names.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// Memory the decoded block holds, counting every name and value with
    /// its allocation overhead: a block of many empty values (NUL
    /// separators only) is small on the wire but costs a `String` each.
    pub fn cost(&self) -> usize {
        self.entries
            .iter()
            .map(|(name, values)| {
                values
                    .iter()
                    .map(|v| VALUE_OVERHEAD + v.len())
                    .fold(NAME_OVERHEAD + name.len(), usize::saturating_add)
            })
            .fold(0, usize::saturating_add)
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Checks that the block can be encoded unambiguously.
    pub fn validate(&self) -> Result<(), SpdyError> {
        for (name, values) in &self.entries {
            let bad = |reason| {
                Err(SpdyError::InvalidHeader {
                    name: name.clone(),
                    reason,
                })
            };
            if name.is_empty() {
                return bad("empty name");
            }
            if name.bytes().any(|b| b == 0 || b.is_ascii_uppercase()) {
                return bad("name must be lower-case and contain no NUL");
            }
            if values.is_empty() {
                return bad("no value");
            }
            if values.iter().any(|v| v.as_bytes().contains(&0)) {
                return bad("value contains NUL");
            }
        }
        Ok(())
    }

    /// [`validate`](Self::validate) plus the hop-by-hop names Go peers reject in SYN_STREAM.
    pub fn validate_request(&self) -> Result<(), SpdyError> {
        self.validate()?;
        for (name, _) in &self.entries {
            if INVALID_REQUEST_HEADERS.contains(&name.as_str()) {
                return Err(SpdyError::InvalidHeader {
                    name: name.clone(),
                    reason: "hop-by-hop header not allowed in SPDY",
                });
            }
        }
        Ok(())
    }

    fn encode_plain(&self, out: &mut Vec<u8>) -> Result<(), SpdyError> {
        let too_long = || SpdyError::MalformedHeaderBlock("header too long to encode");
        let count = u32::try_from(self.entries.len()).map_err(|_| too_long())?;
        out.extend_from_slice(&count.to_be_bytes());
        for (name, values) in &self.entries {
            let name_len = u32::try_from(name.len()).map_err(|_| too_long())?;
            out.extend_from_slice(&name_len.to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            let joined = values.join("\0");
            let value_len = u32::try_from(joined.len()).map_err(|_| too_long())?;
            out.extend_from_slice(&value_len.to_be_bytes());
            out.extend_from_slice(joined.as_bytes());
        }
        Ok(())
    }

    /// Parses a decompressed block. The memory the result will hold is
    /// charged value by value against `limits.max_header_block_len` as it is
    /// built, so a block is refused before it grows, not after.
    fn decode_plain(mut buf: &[u8], limits: &FrameLimits) -> Result<Self, SpdyError> {
        let max_headers = limits.max_headers;
        fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], SpdyError> {
            if buf.len() < n {
                return Err(SpdyError::MalformedHeaderBlock("truncated"));
            }
            let (head, rest) = buf.split_at(n);
            *buf = rest;
            Ok(head)
        }
        fn take_u32(buf: &mut &[u8]) -> Result<u32, SpdyError> {
            let b = take(buf, 4)?;
            Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        }

        let count = take_u32(&mut buf)?;
        if count as usize > max_headers {
            return Err(SpdyError::TooManyHeaders {
                count,
                max: max_headers,
            });
        }
        // Every entry needs two length fields, so a count the remaining bytes
        // cannot hold is rejected before anything is allocated for it.
        if (count as usize).saturating_mul(8) > buf.len() {
            return Err(SpdyError::MalformedHeaderBlock(
                "header count larger than the block",
            ));
        }
        let mut block = HeaderBlock {
            entries: Vec::with_capacity(count as usize),
        };
        let budget = limits.max_header_block_len;
        let mut cost = 0usize;
        let mut charge = |bytes: usize| {
            cost = cost.saturating_add(bytes);
            if cost > budget {
                return Err(SpdyError::DecodedHeadersTooLarge { max: budget });
            }
            Ok(())
        };
        for _ in 0..count {
            let name_len = take_u32(&mut buf)? as usize;
            let name = take(&mut buf, name_len)?;
            if name.is_empty() {
                return Err(SpdyError::MalformedHeaderBlock("empty header name"));
            }
            let name = std::str::from_utf8(name)
                .map_err(|_| SpdyError::MalformedHeaderBlock("header name is not UTF-8"))?;
            charge(NAME_OVERHEAD + name.len())?;
            let value_len = take_u32(&mut buf)? as usize;
            let value = take(&mut buf, value_len)?;
            let value = std::str::from_utf8(value)
                .map_err(|_| SpdyError::MalformedHeaderBlock("header value is not UTF-8"))?;
            // Lenient on case and repeats: Go writes lower-case names and
            // never repeats one, so merging only matters for odd peers.
            for v in value.split('\0') {
                if v.len() > limits.max_header_value_len {
                    return Err(SpdyError::HeaderValueTooLong {
                        len: v.len(),
                        max: limits.max_header_value_len,
                    });
                }
                charge(VALUE_OVERHEAD + v.len())?;
                block.insert(name, v);
            }
        }
        if !buf.is_empty() {
            return Err(SpdyError::MalformedHeaderBlock(
                "trailing bytes after the last header",
            ));
        }
        Ok(block)
    }
}

impl<N: AsRef<str>, V: Into<String>> FromIterator<(N, V)> for HeaderBlock {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut block = HeaderBlock::new();
        for (n, v) in iter {
            block.insert(n.as_ref(), v);
        }
        block
    }
}

/// Bounds on what the decoder accepts from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest DATA payload (the wire format caps it at 16 MiB - 1).
    pub max_data_frame_len: usize,
    /// Largest control frame body.
    pub max_control_frame_len: usize,
    /// Largest header block after decompression, and the most memory its
    /// decoded names and values may take ([`HeaderBlock::cost`]).
    pub max_header_block_len: usize,
    /// Largest number of header names in one block.
    pub max_headers: usize,
    /// Largest single header value (one of a name's NUL-separated values).
    pub max_header_value_len: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        Self {
            max_data_frame_len: 16 * 1024 * 1024,
            max_control_frame_len: 1024 * 1024,
            max_header_block_len: 256 * 1024,
            max_headers: 256,
            max_header_value_len: 16 * 1024,
        }
    }
}

/// Frame codec for one direction pair of a connection.
///
/// The decoder owns the inbound zlib context and the encoder the outbound
/// one, each created on first use. One codec value must see every frame of
/// its direction in order, because the contexts are shared across blocks. An
/// encode or decode error leaves the context unusable: the connection has to
/// be torn down.
#[derive(Debug)]
pub struct SpdyCodec {
    limits: FrameLimits,
    compressor: Option<HeaderCompressor>,
    decompressor: Option<HeaderDecompressor>,
    scratch: Vec<u8>,
}

impl Default for SpdyCodec {
    fn default() -> Self {
        Self::new(FrameLimits::default())
    }
}

impl SpdyCodec {
    pub fn new(limits: FrameLimits) -> Self {
        Self {
            limits,
            compressor: None,
            decompressor: None,
            scratch: Vec::new(),
        }
    }

    pub fn limits(&self) -> &FrameLimits {
        &self.limits
    }

    fn decode_headers(&mut self, block: &[u8]) -> Result<HeaderBlock, SpdyError> {
        if block.is_empty() {
            return Err(SpdyError::MalformedHeaderBlock("empty compressed block"));
        }
        let plain = self
            .decompressor
            .get_or_insert_with(HeaderDecompressor::new)
            .decompress(block, self.limits.max_header_block_len)?;
        HeaderBlock::decode_plain(&plain, &self.limits)
    }

    fn parse_control(
        &mut self,
        kind: u16,
        flags: u8,
        mut body: Bytes,
    ) -> Result<Option<Frame>, SpdyError> {
        let fin = flags & FLAG_FIN != 0;
        let invalid = |frame, reason| SpdyError::InvalidFrame { frame, reason };
        let frame = match kind {
            TYPE_SYN_STREAM => {
                if body.len() < 10 {
                    return Err(invalid("SYN_STREAM", "shorter than 10 bytes"));
                }
                let stream_id = body.get_u32() & MAX_STREAM_ID;
                let associated_stream_id = body.get_u32() & MAX_STREAM_ID;
                let priority = body.get_u8() >> 5;
                let slot = body.get_u8();
                if stream_id == 0 {
                    return Err(invalid("SYN_STREAM", "stream id 0"));
                }
                Frame::SynStream {
                    stream_id,
                    associated_stream_id,
                    priority,
                    slot,
                    fin,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers: self.decode_headers(&body)?,
                }
            }
            TYPE_SYN_REPLY => {
                if body.len() < 4 {
                    return Err(invalid("SYN_REPLY", "shorter than 4 bytes"));
                }
                let stream_id = body.get_u32() & MAX_STREAM_ID;
                if stream_id == 0 {
                    return Err(invalid("SYN_REPLY", "stream id 0"));
                }
                Frame::SynReply {
                    stream_id,
                    fin,
                    headers: self.decode_headers(&body)?,
                }
            }
            TYPE_RST_STREAM => {
                if body.len() != 8 {
                    return Err(invalid("RST_STREAM", "length is not 8"));
                }
                let stream_id = body.get_u32() & MAX_STREAM_ID;
                let status = RstStatus::from_u32(body.get_u32());
                if stream_id == 0 {
                    return Err(invalid("RST_STREAM", "stream id 0"));
                }
                Frame::RstStream { stream_id, status }
            }
            TYPE_SETTINGS => {
                if body.len() < 4 {
                    return Err(invalid("SETTINGS", "shorter than 4 bytes"));
                }
                let count = body.get_u32() as usize;
                if count.checked_mul(8) != Some(body.len()) {
                    return Err(invalid("SETTINGS", "entry count does not match length"));
                }
                let mut entries = Vec::with_capacity(count);
                for _ in 0..count {
                    let flag_id = body.get_u32();
                    entries.push(Setting {
                        flags: (flag_id >> 24) as u8,
                        id: flag_id & 0x00FF_FFFF,
                        value: body.get_u32(),
                    });
                }
                Frame::Settings {
                    clear_previous: flags & FLAG_SETTINGS_CLEAR != 0,
                    entries,
                }
            }
            TYPE_PING => {
                if body.len() != 4 {
                    return Err(invalid("PING", "length is not 4"));
                }
                Frame::Ping { id: body.get_u32() }
            }
            TYPE_GOAWAY => {
                if body.len() != 8 {
                    return Err(invalid("GOAWAY", "length is not 8"));
                }
                Frame::GoAway {
                    last_good_stream_id: body.get_u32() & MAX_STREAM_ID,
                    status: GoAwayStatus::from_u32(body.get_u32()),
                }
            }
            TYPE_HEADERS => {
                if body.len() < 4 {
                    return Err(invalid("HEADERS", "shorter than 4 bytes"));
                }
                let stream_id = body.get_u32() & MAX_STREAM_ID;
                if stream_id == 0 {
                    return Err(invalid("HEADERS", "stream id 0"));
                }
                Frame::Headers {
                    stream_id,
                    fin,
                    headers: self.decode_headers(&body)?,
                }
            }
            TYPE_WINDOW_UPDATE => {
                if body.len() != 8 {
                    return Err(invalid("WINDOW_UPDATE", "length is not 8"));
                }
                Frame::WindowUpdate {
                    stream_id: body.get_u32() & MAX_STREAM_ID,
                    delta: body.get_u32() & 0x7FFF_FFFF,
                }
            }
            other => {
                // The spec says to ignore unknown control frames (NOOP,
                // CREDENTIAL and extensions among them).
                tracing::trace!(
                    frame_type = other,
                    len = body.len(),
                    "skipping unknown SPDY control frame"
                );
                return Ok(None);
            }
        };
        Ok(Some(frame))
    }

    fn encode_with_headers(
        &mut self,
        kind: u16,
        flags: u8,
        prefix: &[u8],
        headers: &HeaderBlock,
        dst: &mut BytesMut,
    ) -> Result<(), SpdyError> {
        // Validate before touching the compressor: a block that is compressed
        // but never sent would desynchronise the peer's inflate context.
        headers.validate()?;
        self.scratch.clear();
        headers.encode_plain(&mut self.scratch)?;
        let compressor = match &mut self.compressor {
            Some(c) => c,
            None => self.compressor.insert(HeaderCompressor::new()?),
        };
        let mut compressed = Vec::new();
        compressor.compress(&self.scratch, &mut compressed)?;
        let len = prefix.len() + compressed.len();
        put_control_header(dst, kind, flags, len)?;
        dst.extend_from_slice(prefix);
        dst.extend_from_slice(&compressed);
        Ok(())
    }
}

fn put_control_header(
    dst: &mut BytesMut,
    kind: u16,
    flags: u8,
    len: usize,
) -> Result<(), SpdyError> {
    if len > MAX_FRAME_LEN {
        return Err(SpdyError::FrameTooLarge {
            kind: "control",
            len,
            max: MAX_FRAME_LEN,
        });
    }
    dst.reserve(FRAME_HEADER_LEN + len);
    dst.put_u16(0x8000 | VERSION);
    dst.put_u16(kind);
    dst.put_u8(flags);
    dst.put_uint(len as u64, 3);
    Ok(())
}

fn check_stream_id(frame: &'static str, id: u32) -> Result<(), SpdyError> {
    if id == 0 || id > MAX_STREAM_ID {
        return Err(SpdyError::InvalidFrame {
            frame,
            reason: "stream id must be in 1..=2^31-1",
        });
    }
    Ok(())
}

impl Decoder for SpdyCodec {
    type Item = Frame;
    type Error = SpdyError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        loop {
            if src.len() < FRAME_HEADER_LEN {
                src.reserve(FRAME_HEADER_LEN - src.len());
                return Ok(None);
            }
            let head = [src[0], src[1], src[2], src[3], src[4]];
            let flags = head[4];
            let len =
                (usize::from(src[5]) << 16) | (usize::from(src[6]) << 8) | usize::from(src[7]);
            let control = head[0] & 0x80 != 0;
            if control {
                let version = u16::from_be_bytes([head[0] & 0x7F, head[1]]);
                if version != VERSION {
                    return Err(SpdyError::UnsupportedVersion(version));
                }
                if len > self.limits.max_control_frame_len {
                    return Err(SpdyError::FrameTooLarge {
                        kind: "control",
                        len,
                        max: self.limits.max_control_frame_len,
                    });
                }
            } else if len > self.limits.max_data_frame_len {
                return Err(SpdyError::FrameTooLarge {
                    kind: "data",
                    len,
                    max: self.limits.max_data_frame_len,
                });
            }
            if src.len() < FRAME_HEADER_LEN + len {
                // Grow with the data actually received, so a header that merely
                // announces a large frame does not allocate it up front.
                src.reserve((FRAME_HEADER_LEN + len - src.len()).min(RESERVE_STEP));
                return Ok(None);
            }
            src.advance(FRAME_HEADER_LEN);
            if control {
                let body = src.split_to(len).freeze();
                let kind = u16::from_be_bytes([head[2], head[3]]);
                match self.parse_control(kind, flags, body)? {
                    Some(frame) => return Ok(Some(frame)),
                    None => continue,
                }
            }
            // Copied out rather than split off: a split-off payload keeps the
            // whole read buffer it came from alive while it waits for its
            // stream's owner, so a trickle of one-byte frames would pin a
            // buffer each while being charged a byte each.
            let body = Bytes::copy_from_slice(&src[..len]);
            src.advance(len);
            let stream_id =
                u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & MAX_STREAM_ID;
            if stream_id == 0 {
                return Err(SpdyError::InvalidFrame {
                    frame: "DATA",
                    reason: "stream id 0",
                });
            }
            return Ok(Some(Frame::Data {
                stream_id,
                fin: flags & FLAG_FIN != 0,
                data: body,
            }));
        }
    }
}

impl Encoder<Frame> for SpdyCodec {
    type Error = SpdyError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), SpdyError> {
        let fin_flag = |fin: bool| if fin { FLAG_FIN } else { 0 };
        match frame {
            Frame::SynStream {
                stream_id,
                associated_stream_id,
                priority,
                slot,
                fin,
                unidirectional,
                headers,
            } => {
                check_stream_id("SYN_STREAM", stream_id)?;
                if associated_stream_id > MAX_STREAM_ID || priority > 7 {
                    return Err(SpdyError::InvalidFrame {
                        frame: "SYN_STREAM",
                        reason: "associated id or priority out of range",
                    });
                }
                let mut prefix = [0u8; 10];
                prefix[..4].copy_from_slice(&stream_id.to_be_bytes());
                prefix[4..8].copy_from_slice(&associated_stream_id.to_be_bytes());
                prefix[8] = priority << 5;
                prefix[9] = slot;
                let flags = fin_flag(fin)
                    | if unidirectional {
                        FLAG_UNIDIRECTIONAL
                    } else {
                        0
                    };
                self.encode_with_headers(TYPE_SYN_STREAM, flags, &prefix, &headers, dst)
            }
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            } => {
                check_stream_id("SYN_REPLY", stream_id)?;
                self.encode_with_headers(
                    TYPE_SYN_REPLY,
                    fin_flag(fin),
                    &stream_id.to_be_bytes(),
                    &headers,
                    dst,
                )
            }
            Frame::Headers {
                stream_id,
                fin,
                headers,
            } => {
                check_stream_id("HEADERS", stream_id)?;
                self.encode_with_headers(
                    TYPE_HEADERS,
                    fin_flag(fin),
                    &stream_id.to_be_bytes(),
                    &headers,
                    dst,
                )
            }
            Frame::RstStream { stream_id, status } => {
                check_stream_id("RST_STREAM", stream_id)?;
                put_control_header(dst, TYPE_RST_STREAM, 0, 8)?;
                dst.put_u32(stream_id);
                dst.put_u32(status.as_u32());
                Ok(())
            }
            Frame::Settings {
                clear_previous,
                entries,
            } => {
                let len = entries
                    .len()
                    .checked_mul(8)
                    .and_then(|n| n.checked_add(4))
                    .unwrap_or(usize::MAX);
                let flags = if clear_previous {
                    FLAG_SETTINGS_CLEAR
                } else {
                    0
                };
                put_control_header(dst, TYPE_SETTINGS, flags, len)?;
                dst.put_u32(entries.len() as u32);
                for s in entries {
                    if s.id > 0x00FF_FFFF {
                        return Err(SpdyError::InvalidFrame {
                            frame: "SETTINGS",
                            reason: "setting id exceeds 24 bits",
                        });
                    }
                    dst.put_u32((u32::from(s.flags) << 24) | s.id);
                    dst.put_u32(s.value);
                }
                Ok(())
            }
            Frame::Ping { id } => {
                put_control_header(dst, TYPE_PING, 0, 4)?;
                dst.put_u32(id);
                Ok(())
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                put_control_header(dst, TYPE_GOAWAY, 0, 8)?;
                dst.put_u32(last_good_stream_id & MAX_STREAM_ID);
                dst.put_u32(status.as_u32());
                Ok(())
            }
            Frame::WindowUpdate { stream_id, delta } => {
                put_control_header(dst, TYPE_WINDOW_UPDATE, 0, 8)?;
                dst.put_u32(stream_id & MAX_STREAM_ID);
                dst.put_u32(delta & 0x7FFF_FFFF);
                Ok(())
            }
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                check_stream_id("DATA", stream_id)?;
                if data.len() > MAX_FRAME_LEN {
                    return Err(SpdyError::FrameTooLarge {
                        kind: "data",
                        len: data.len(),
                        max: MAX_FRAME_LEN,
                    });
                }
                dst.reserve(FRAME_HEADER_LEN + data.len());
                dst.put_u32(stream_id);
                dst.put_u8(fin_flag(fin));
                dst.put_uint(data.len() as u64, 3);
                dst.extend_from_slice(&data);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streaming::spdy::fuzz_decode;

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    fn adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in data {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }

    fn encode(codec: &mut SpdyCodec, frame: Frame) -> BytesMut {
        let mut buf = BytesMut::new();
        codec.encode(frame, &mut buf).unwrap();
        buf
    }

    fn decode_all(codec: &mut SpdyCodec, buf: &mut BytesMut) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(f) = codec.decode(buf).unwrap() {
            out.push(f);
        }
        out
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderBlock {
        pairs.iter().map(|(n, v)| (*n, *v)).collect()
    }

    #[test]
    fn dictionary_matches_spec_length_and_dictid() {
        assert_eq!(HEADER_DICTIONARY.len(), 1423);
        assert_eq!(adler32(&HEADER_DICTIONARY), HEADER_DICTIONARY_ID);
        assert_eq!(&HEADER_DICTIONARY[..11], b"\0\0\0\x07options");
        assert!(HEADER_DICTIONARY.ends_with(b",enq=0."));
    }

    // SYN_REPLY from Chromium's SPDY/3 framer tests: stream 1, headers
    // bar=foo and foo=bar, zlib window 11 bits.
    #[test]
    fn known_answer_chromium_syn_reply() {
        let wire = hex(
            "80030002 00000031 00000001 38eae3c6 a7c202e5 0e50c24b 4a04e50b 6680004a
             cbcf0708 20109596 9f0fa200 022829b1 08208000 000000ff ff",
        );
        let mut codec = SpdyCodec::default();
        let mut buf = BytesMut::from(&wire[..]);
        let frames = decode_all(&mut codec, &mut buf);
        assert!(buf.is_empty());
        assert_eq!(
            frames,
            vec![Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: headers(&[("bar", "foo"), ("foo", "bar")]),
            }]
        );
    }

    // SYN_REPLY with FIN from a .NET SPDY implementation's tests, compressed
    // with a best-compression zlib stream (header 78 bb, like Go's framer).
    #[test]
    fn known_answer_best_compression_syn_reply() {
        let wire = hex(
            "80030002 0100006a 0000007b 78bbe3c6 a7c202e5 0ea4f280 a524154c a3668030
             dffcaacc 9c9c447d 533d0305 0ddfc4e4 ccbc92fc e20c6b70 04e500c3 3559c13f
             582142c1 d040cfd2 5aa1a8cc 4ac1d440 cf4053c1 3d35393b 5f415f01 9838c189
             54c10d58 0ca5e557 0085400a 00000000 ffff",
        );
        let mut codec = SpdyCodec::default();
        let mut buf = BytesMut::from(&wire[..]);
        let frames = decode_all(&mut codec, &mut buf);
        let agent = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.9; rv: 50.0) Gecko / 20100101 Firefox / 50.0";
        assert_eq!(
            frames,
            vec![Frame::SynReply {
                stream_id: 123,
                fin: true,
                headers: headers(&[("host", "test"), ("user-agent", agent)]),
            }]
        );
    }

    #[test]
    fn compressor_writes_best_compression_header_with_dictid() {
        let mut c = HeaderCompressor::new().unwrap();
        let mut out = Vec::new();
        c.compress(b"\0\0\0\0", &mut out).unwrap();
        // CMF 78, FLG f9: FLEVEL=3 (maximum, as Go's BestCompression writes)
        // with FDICT set, then the dictionary's DICTID.
        assert_eq!(&out[..6], &[0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2]);
        assert!(
            out.ends_with(&[0x00, 0x00, 0xff, 0xff]),
            "sync flush marker"
        );
    }

    fn all_frames() -> Vec<Frame> {
        let mut multi = HeaderBlock::new();
        multi.insert("X-Stream-Protocol-Version", "v4.channel.k8s.io");
        multi.insert("x-stream-protocol-version", "v3.channel.k8s.io");
        multi.insert("empty", "");
        vec![
            Frame::SynStream {
                stream_id: 1,
                associated_stream_id: 0,
                priority: 3,
                slot: 0,
                fin: false,
                unidirectional: false,
                headers: headers(&[("streamtype", "error")]),
            },
            Frame::SynStream {
                stream_id: MAX_STREAM_ID,
                associated_stream_id: 7,
                priority: 7,
                slot: 9,
                fin: true,
                unidirectional: true,
                headers: multi.clone(),
            },
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: HeaderBlock::new(),
            },
            Frame::SynReply {
                stream_id: 3,
                fin: true,
                headers: multi,
            },
            Frame::RstStream {
                stream_id: 5,
                status: RstStatus::RefusedStream,
            },
            Frame::RstStream {
                stream_id: 5,
                status: RstStatus::Other(99),
            },
            Frame::Settings {
                clear_previous: true,
                entries: vec![
                    Setting {
                        flags: 1,
                        id: 4,
                        value: 100,
                    },
                    Setting {
                        flags: 0,
                        id: 7,
                        value: 65536,
                    },
                ],
            },
            Frame::Settings {
                clear_previous: false,
                entries: vec![],
            },
            Frame::Ping { id: 0xDEAD_BEEF },
            Frame::GoAway {
                last_good_stream_id: 11,
                status: GoAwayStatus::ProtocolError,
            },
            Frame::Headers {
                stream_id: 9,
                fin: true,
                headers: headers(&[("a", "b")]),
            },
            Frame::WindowUpdate {
                stream_id: 9,
                delta: 1 << 20,
            },
            Frame::Data {
                stream_id: 1,
                fin: false,
                data: Bytes::from_static(b"hello"),
            },
            Frame::Data {
                stream_id: 1,
                fin: true,
                data: Bytes::new(),
            },
        ]
    }

    #[test]
    fn every_frame_type_round_trips() {
        let mut tx = SpdyCodec::default();
        let mut rx = SpdyCodec::default();
        let mut wire = BytesMut::new();
        for f in all_frames() {
            wire.extend_from_slice(&encode(&mut tx, f));
        }
        assert_eq!(decode_all(&mut rx, &mut wire), all_frames());
        assert!(wire.is_empty());
    }

    #[test]
    fn header_blocks_share_one_zlib_context() {
        let mut tx = SpdyCodec::default();
        let h = headers(&[("streamtype", "stdout"), ("port", "8080")]);
        let blocks: Vec<BytesMut> = (0..3)
            .map(|i| {
                encode(
                    &mut tx,
                    Frame::SynStream {
                        stream_id: 1 + 2 * i,
                        associated_stream_id: 0,
                        priority: 0,
                        slot: 0,
                        fin: false,
                        unidirectional: false,
                        headers: h.clone(),
                    },
                )
            })
            .collect();
        // Later blocks reuse history, so they are smaller than the first.
        assert!(blocks[1].len() < blocks[0].len());

        let mut rx = SpdyCodec::default();
        for (i, b) in blocks.iter().enumerate() {
            let mut b = b.clone();
            match rx.decode(&mut b).unwrap() {
                Some(Frame::SynStream {
                    stream_id, headers, ..
                }) => {
                    assert_eq!(stream_id, 1 + 2 * i as u32);
                    assert_eq!(headers, h);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        // A fresh context cannot read the second block on its own.
        let mut fresh = SpdyCodec::default();
        let mut second = blocks[1].clone();
        assert!(fresh.decode(&mut second).is_err());
    }

    #[test]
    fn truncated_input_waits_for_more() {
        let mut tx = SpdyCodec::default();
        let mut wire = BytesMut::new();
        for f in all_frames() {
            wire.extend_from_slice(&encode(&mut tx, f));
        }
        let first_len = encode(&mut SpdyCodec::default(), all_frames().remove(0)).len();
        for cut in 0..first_len {
            let mut rx = SpdyCodec::default();
            let mut partial = BytesMut::from(&wire[..cut]);
            assert_eq!(rx.decode(&mut partial).unwrap(), None, "cut at {cut}");
            assert_eq!(partial.len(), cut, "no bytes consumed from a partial frame");
        }
        // Feeding everything one byte at a time yields the same frames.
        let mut rx = SpdyCodec::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            while let Some(f) = rx.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, all_frames());
    }

    #[test]
    fn oversized_frames_are_rejected() {
        let limits = FrameLimits {
            max_data_frame_len: 1024,
            max_control_frame_len: 64,
            ..FrameLimits::default()
        };
        let mut rx = SpdyCodec::new(limits);
        let mut data = BytesMut::from(&hex("00000001 00000401")[..]);
        assert!(matches!(
            rx.decode(&mut data),
            Err(SpdyError::FrameTooLarge {
                kind: "data",
                len: 1025,
                max: 1024
            })
        ));
        let mut ctrl = BytesMut::from(&hex("80030006 00000041")[..]);
        assert!(matches!(
            rx.decode(&mut ctrl),
            Err(SpdyError::FrameTooLarge {
                kind: "control",
                len: 65,
                ..
            })
        ));
        // Encoding more than the 24-bit length allows is an error too.
        let mut tx = SpdyCodec::default();
        let huge = Frame::Data {
            stream_id: 1,
            fin: false,
            data: Bytes::from(vec![0u8; MAX_FRAME_LEN + 1]),
        };
        assert!(tx.encode(huge, &mut BytesMut::new()).is_err());
    }

    #[test]
    fn oversized_header_blocks_are_rejected() {
        let mut tx = SpdyCodec::default();
        // Compresses to a few hundred bytes but inflates past 256 KiB.
        let big = headers(&[("x", &"a".repeat(300 * 1024))]);
        let mut wire = encode(
            &mut tx,
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: big,
            },
        );
        assert!(wire.len() < 4096);
        let mut rx = SpdyCodec::default();
        assert!(matches!(
            rx.decode(&mut wire),
            Err(SpdyError::HeaderBlockTooLarge { max: 262144 })
        ));

        let many: HeaderBlock = (0..300).map(|i| (format!("h{i}"), "v")).collect();
        let mut wire = encode(
            &mut SpdyCodec::default(),
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: many,
            },
        );
        assert!(matches!(
            SpdyCodec::default().decode(&mut wire),
            Err(SpdyError::TooManyHeaders {
                count: 300,
                max: 256
            })
        ));
    }

    #[test]
    fn malformed_frames_are_errors() {
        let cases: &[(&str, &str)] = &[
            ("wrong version", "80020006 00000004 00000001"),
            ("rst short", "80030003 00000004 00000001"),
            ("ping long", "80030006 00000008 00000001 00000002"),
            ("goaway short", "80030007 00000004 00000001"),
            ("window update short", "80030009 00000004 00000001"),
            (
                "settings count mismatch",
                "80030004 0000000c 00000002 00000004 00000001",
            ),
            ("syn_stream short", "80030001 00000004 00000001"),
            (
                "syn_stream id 0",
                "80030001 0000000c 00000000 00000000 0000 7801",
            ),
            (
                "syn_reply garbage block",
                "80030002 00000008 00000001 deadbeef",
            ),
            ("syn_reply empty block", "80030002 00000004 00000001"),
            ("data stream 0", "00000000 00000001 ff"),
        ];
        for (name, bytes) in cases {
            let mut buf = BytesMut::from(&hex(bytes)[..]);
            assert!(
                SpdyCodec::default().decode(&mut buf).is_err(),
                "{name} should fail"
            );
        }
        let mut v2 = BytesMut::from(&hex("80020006 00000004 00000001")[..]);
        assert!(matches!(
            SpdyCodec::default().decode(&mut v2),
            Err(SpdyError::UnsupportedVersion(2))
        ));
    }

    #[test]
    fn header_block_with_bad_structure_is_rejected() {
        let mut plain = Vec::new();
        plain.extend_from_slice(&1u32.to_be_bytes());
        plain.extend_from_slice(&5u32.to_be_bytes());
        plain.extend_from_slice(b"ab"); // shorter than declared
        let mut compressed = Vec::new();
        HeaderCompressor::new()
            .unwrap()
            .compress(&plain, &mut compressed)
            .unwrap();
        let mut wire = BytesMut::new();
        put_control_header(&mut wire, TYPE_SYN_REPLY, 0, 4 + compressed.len()).unwrap();
        wire.put_u32(1);
        wire.extend_from_slice(&compressed);
        assert!(matches!(
            SpdyCodec::default().decode(&mut wire),
            Err(SpdyError::MalformedHeaderBlock(_))
        ));
    }

    /// A SYN_REPLY whose block is `plain`, compressed as a peer would.
    fn syn_reply_with_plain_block(plain: &[u8]) -> BytesMut {
        let mut compressed = Vec::new();
        HeaderCompressor::new()
            .unwrap()
            .compress(plain, &mut compressed)
            .unwrap();
        let mut wire = BytesMut::new();
        put_control_header(&mut wire, TYPE_SYN_REPLY, 0, 4 + compressed.len()).unwrap();
        wire.put_u32(1);
        wire.extend_from_slice(&compressed);
        wire
    }

    fn plain_block(name: &[u8], value: &[u8]) -> Vec<u8> {
        let mut plain = Vec::new();
        plain.extend_from_slice(&1u32.to_be_bytes());
        plain.extend_from_slice(&(name.len() as u32).to_be_bytes());
        plain.extend_from_slice(name);
        plain.extend_from_slice(&(value.len() as u32).to_be_bytes());
        plain.extend_from_slice(value);
        plain
    }

    /// Issue 21: 250 KiB of NUL separators inflated to a quarter of a
    /// million empty `String`s (some 6 MiB) per header block.
    #[test]
    fn many_empty_values_are_charged_while_decoding() {
        let nuls = vec![0u8; 200 * 1024];
        let mut wire = syn_reply_with_plain_block(&plain_block(b"requestid", &nuls));
        assert!(wire.len() < 4096, "compresses to {} bytes", wire.len());
        assert!(matches!(
            SpdyCodec::default().decode(&mut wire),
            Err(SpdyError::DecodedHeadersTooLarge { max: 262144 })
        ));
        // A few repeats stay well within the budget.
        let mut wire = syn_reply_with_plain_block(&plain_block(b"a", b"x\0y\0z"));
        match SpdyCodec::default().decode(&mut wire).unwrap() {
            Some(Frame::SynReply { headers, .. }) => {
                assert_eq!(headers.get_all("a"), ["x", "y", "z"]);
                assert!(headers.cost() < 256);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn one_long_value_is_refused() {
        let long = vec![b'a'; 16 * 1024 + 1];
        let mut wire = syn_reply_with_plain_block(&plain_block(b"port", &long));
        assert!(matches!(
            SpdyCodec::default().decode(&mut wire),
            Err(SpdyError::HeaderValueTooLong {
                len: 16385,
                max: 16384
            })
        ));
        let mut wire = syn_reply_with_plain_block(&plain_block(b"port", &long[1..]));
        assert!(SpdyCodec::default().decode(&mut wire).unwrap().is_some());
    }

    #[test]
    fn unknown_control_frames_are_skipped() {
        let mut wire = BytesMut::from(&hex("80030005 00000000 8003000a 00000003 010203")[..]);
        wire.extend_from_slice(&encode(&mut SpdyCodec::default(), Frame::Ping { id: 7 }));
        assert_eq!(
            decode_all(&mut SpdyCodec::default(), &mut wire),
            vec![Frame::Ping { id: 7 }]
        );
    }

    #[test]
    fn header_block_validation() {
        let mut h = HeaderBlock::new();
        h.insert("Host", "x");
        assert_eq!(h.get("host"), Some("x"));
        assert!(h.validate().is_ok());
        assert!(h.validate_request().is_err());
        let mut nul = HeaderBlock::new();
        nul.insert("a", "b\0c");
        assert!(nul.validate().is_err());
        let mut empty = HeaderBlock::new();
        empty.insert("", "v");
        assert!(empty.validate().is_err());
        // An invalid block must not advance the compressor.
        let mut tx = SpdyCodec::default();
        let bad = Frame::SynReply {
            stream_id: 1,
            fin: false,
            headers: nul,
        };
        assert!(tx.encode(bad, &mut BytesMut::new()).is_err());
        let mut wire = encode(
            &mut tx,
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: headers(&[("ok", "1")]),
            },
        );
        assert!(SpdyCodec::default().decode(&mut wire).unwrap().is_some());
    }

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn random_and_mutated_input_never_panics() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut valid = BytesMut::new();
        let mut tx = SpdyCodec::default();
        for f in all_frames() {
            valid.extend_from_slice(&encode(&mut tx, f));
        }
        for round in 0..3000 {
            let input: Vec<u8> = if round % 2 == 0 {
                let len = (rng.next() % 600) as usize;
                let mut v: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                // Bias towards plausible control headers so parsers past the
                // version check get exercised.
                if len >= 2 && round % 4 == 0 {
                    v[0] = 0x80;
                    v[1] = 0x03;
                }
                v
            } else {
                let mut v = valid.to_vec();
                for _ in 0..(1 + rng.next() % 4) {
                    let i = (rng.next() as usize) % v.len();
                    v[i] = rng.next() as u8;
                }
                v.truncate((rng.next() as usize) % (v.len() + 1));
                v
            };
            fuzz_decode(&input);
        }
        assert_eq!(fuzz_decode(&valid), all_frames().len());
    }
}
