//! Header compression of SPDY/3: the spec's zlib preset dictionary, and the
//! per-connection compressor and decompressor of header blocks. The frame
//! codec in the parent module uses them; nothing here knows about frames.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::SpdyError;

// The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1). The
// spec lists it as a run of length-prefixed header names and tokens followed
// by a blob of common values; it is rebuilt here in that shape at compile time
// and pinned by its length and Adler-32 (the DICTID every SPDY/3 peer puts in
// its zlib header) in the tests.
const DICTIONARY_WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information",
    "204 No Content",
    "301 Moved Permanently",
    "400 Bad Request",
    "401 Unauthorized",
    "403 Forbidden",
    "404 Not Found",
    "500 Internal Server Error",
    "501 Not Implemented",
    "503 Service Unavailable",
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec",
    " 00:00:00",
    " Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,",
    "application/xhtml+xml,text/plain,text/javascript,public",
    "private",
    "max-age=",
    "gzip,deflate,sdch",
    "charset=utf-8",
    "charset=iso-8859-1,utf-,*,enq=0.",
);

const fn dictionary_len() -> usize {
    let mut len = DICTIONARY_TAIL.len();
    let mut i = 0;
    while i < DICTIONARY_WORDS.len() {
        len += 4 + DICTIONARY_WORDS[i].len();
        i += 1;
    }
    len
}

/// Length of [`HEADER_DICTIONARY`]; the spec's dictionary is 1423 bytes.
pub const HEADER_DICTIONARY_LEN: usize = dictionary_len();
const _: () = assert!(HEADER_DICTIONARY_LEN == 1423);

const fn build_dictionary() -> [u8; HEADER_DICTIONARY_LEN] {
    let mut out = [0u8; HEADER_DICTIONARY_LEN];
    let mut pos = 0;
    let mut i = 0;
    while i < DICTIONARY_WORDS.len() {
        let word = DICTIONARY_WORDS[i].as_bytes();
        let len = (word.len() as u32).to_be_bytes();
        let mut k = 0;
        while k < 4 {
            out[pos] = len[k];
            pos += 1;
            k += 1;
        }
        let mut j = 0;
        while j < word.len() {
            out[pos] = word[j];
            pos += 1;
            j += 1;
        }
        i += 1;
    }
    let tail = DICTIONARY_TAIL.as_bytes();
    let mut j = 0;
    while j < tail.len() {
        out[pos] = tail[j];
        pos += 1;
        j += 1;
    }
    out
}

/// The zlib preset dictionary every SPDY/3 header block is compressed with.
pub static HEADER_DICTIONARY: [u8; HEADER_DICTIONARY_LEN] = build_dictionary();

/// Adler-32 of [`HEADER_DICTIONARY`], i.e. the DICTID a peer's zlib stream asks for.
pub const HEADER_DICTIONARY_ID: u32 = 0xE3C6_A7C2;

/// Sending side of a connection's header compression: one zlib stream for
/// the whole connection, sync-flushed after every block and never reset,
/// which is what the receiving peer's single inflate context expects.
pub struct HeaderCompressor {
    inner: Compress,
}

impl std::fmt::Debug for HeaderCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderCompressor")
            .field("total_out", &self.inner.total_out())
            .finish()
    }
}

impl HeaderCompressor {
    pub fn new() -> Result<Self, SpdyError> {
        // Best compression mirrors Go's framer; the level does not matter to
        // the peer, but matching it keeps captures comparable.
        let mut inner = Compress::new(Compression::best(), true);
        inner
            .set_dictionary(&HEADER_DICTIONARY)
            .map_err(|e| SpdyError::Compression(e.to_string()))?;
        Ok(Self { inner })
    }

    /// Compresses one plain header block and appends exactly the sync-flushed bytes to `out`.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), SpdyError> {
        let mut consumed = 0;
        loop {
            out.reserve(input.len() - consumed + 64);
            let before = self.inner.total_in();
            self.inner
                .compress_vec(&input[consumed..], out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Compression(e.to_string()))?;
            consumed += (self.inner.total_in() - before) as usize;
            // zlib's contract: the flush is complete once all input is taken
            // and the output buffer was not filled to the brim.
            if consumed == input.len() && out.len() < out.capacity() {
                return Ok(());
            }
        }
    }
}

/// Receiving side of a connection's header compression (see [`HeaderCompressor`]).
pub struct HeaderDecompressor {
    inner: Decompress,
}

impl std::fmt::Debug for HeaderDecompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderDecompressor")
            .field("total_in", &self.inner.total_in())
            .finish()
    }
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderDecompressor {
    pub fn new() -> Self {
        Self {
            inner: Decompress::new(true),
        }
    }

    /// Inflates one compressed header block, refusing to produce more than `max_out` bytes.
    pub fn decompress(&mut self, input: &[u8], max_out: usize) -> Result<Vec<u8>, SpdyError> {
        let too_large = SpdyError::HeaderBlockTooLarge { max: max_out };
        let hard_cap = max_out.saturating_add(1);
        let mut out: Vec<u8> =
            Vec::with_capacity(input.len().saturating_mul(4).max(64).min(hard_cap));
        let mut consumed = 0;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= hard_cap {
                    return Err(too_large);
                }
                let grow = out.len().max(256).min(hard_cap - out.len());
                out.reserve_exact(grow);
            }
            let before_in = self.inner.total_in();
            let before_out = out.len();
            let result =
                self.inner
                    .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync);
            consumed += (self.inner.total_in() - before_in) as usize;
            if out.len() > max_out {
                return Err(too_large);
            }
            match result {
                Ok(Status::StreamEnd) => {
                    // A finished zlib stream cannot carry later blocks, and
                    // SPDY never finishes it, so treat this as corruption
                    // unless it is exactly the end of this block.
                    if consumed != input.len() {
                        return Err(SpdyError::Decompression(
                            "data after the end of the zlib stream".into(),
                        ));
                    }
                    return Ok(out);
                }
                Ok(_) => {}
                Err(e) => match e.needs_dictionary() {
                    Some(HEADER_DICTIONARY_ID) => {
                        self.inner
                            .set_dictionary(&HEADER_DICTIONARY)
                            .map_err(|e| SpdyError::Decompression(e.to_string()))?;
                        continue;
                    }
                    Some(other) => {
                        return Err(SpdyError::Decompression(format!(
                            "peer wants unknown dictionary {other:#010x}"
                        )));
                    }
                    None => return Err(SpdyError::Decompression(e.to_string())),
                },
            }
            let spare = out.len() < out.capacity();
            if consumed == input.len() && spare {
                return Ok(out);
            }
            let progressed = self.inner.total_in() != before_in || out.len() != before_out;
            if !progressed && spare {
                return Err(SpdyError::Decompression("inflate made no progress".into()));
            }
        }
    }
}
