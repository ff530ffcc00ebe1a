//! Image references as the kubelet passes them (`PullImage`, container
//! configs) and as Docker reports them (`RepoTags`, `RepoDigests`).
//!
//! Checks: no panic; a parsed reference formats to a string that parses to
//! the same reference and names the same repository; splitting off a
//! repository never panics and yields a prefix.

#![no_main]

use dockershim::image::reference::{Reference, repository_of};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    assert!(input.starts_with(repository_of(input)));
    let Ok(reference) = Reference::parse(input) else {
        return;
    };
    let text = reference.to_string();
    let again = Reference::parse(&text)
        .unwrap_or_else(|e| panic!("{text:?} (from {input:?}) does not parse: {e}"));
    assert_eq!(again, reference, "{text:?} from {input:?}");
    assert!(reference.same_repository(&text));
    assert!(text.starts_with(repository_of(&text)));
});
