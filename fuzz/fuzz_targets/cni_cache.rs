//! libcni result cache files (`cachedInfo`, kind `cniCacheV1`), written by
//! us, by cri-dockerd's libcni, or left torn or foreign in the shared cache
//! directory.
//!
//! Checks: no panic; a file that parses is written back (as `write` does)
//! to bytes that parse to the same attachment; its stored network config is
//! read without panicking.

#![no_main]

use dockershim::network::cni::fuzzing::{encode_cache_file, parse_cache_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(entry) = parse_cache_file(data) else {
        return;
    };
    let bytes = encode_cache_file(&entry).expect("a parsed attachment can be written");
    let again = parse_cache_file(&bytes).expect("a written attachment parses");
    assert_eq!(again, entry);
    let _ = entry.network();
});
