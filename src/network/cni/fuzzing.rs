//! Entry points for the fuzz targets in `fuzz/`: the CNI decoders that are
//! private to this module (the cache file codec, result conversion), called
//! as they are. Not an API; hidden from the documentation.

use serde_json::Value;

use super::{CachedAttachment, CniError, cache, result};

/// Decodes a libcni result cache file, as `scan` and `read` do.
pub fn parse_cache_file(bytes: &[u8]) -> Result<CachedAttachment, String> {
    cache::parse(bytes)
}

/// Encodes an attachment as `write` stores it.
pub fn encode_cache_file(entry: &CachedAttachment) -> Result<Vec<u8>, CniError> {
    cache::encode(entry)
}

/// Rewrites a raw result into spec version `target`, as ADD does for the
/// next plugin's `prevResult`.
pub fn convert_result(raw: &Value, target: &str) -> Value {
    result::convert(raw, target)
}
