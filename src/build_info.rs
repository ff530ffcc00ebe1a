//! What this binary was built from, recorded by `build.rs`: for
//! `--version`, `--buildinfo` and the `dockershim_build_info` metric, so an
//! operator can tell which commit a node runs.

/// The crate's version (Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit's short hash, `-dirty` when tracked files had changes, or
/// `unknown` when built outside a git checkout (a source tarball).
pub const COMMIT: &str = env!("DOCKERSHIM_GIT_COMMIT");

/// The build date, UTC, RFC 3339 (`SOURCE_DATE_EPOCH` when that was set),
/// or `unknown`.
pub const BUILD_DATE: &str = env!("DOCKERSHIM_BUILD_DATE");

/// `rustc --version` of the compiler that built the shim.
pub const RUSTC: &str = env!("DOCKERSHIM_RUSTC_VERSION");

/// What `--version` prints after the program's name. A constant, because
/// clap takes the version as a `&'static str`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("DOCKERSHIM_GIT_COMMIT"),
    ", built ",
    env!("DOCKERSHIM_BUILD_DATE"),
    ")"
);

/// The compiler's version number alone (`1.88.0` of `rustc 1.88.0 (6b00bc388
/// 2025-06-23)`), short enough for a metric label.
pub fn rustc_release() -> &'static str {
    RUSTC
        .strip_prefix("rustc ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or(RUSTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_long_version_names_version_commit_and_date() {
        assert!(LONG_VERSION.starts_with(&format!("{VERSION} (commit ")));
        assert!(LONG_VERSION.contains(COMMIT));
        assert!(LONG_VERSION.contains(BUILD_DATE));
        assert!(!COMMIT.is_empty() && !BUILD_DATE.is_empty());
    }

    #[test]
    fn the_rustc_release_is_the_version_number() {
        let release = rustc_release();
        assert!(!release.contains(' '), "{release}");
        assert!(
            release == "unknown" || release.starts_with(|c: char| c.is_ascii_digit()),
            "{release}"
        );
    }
}
