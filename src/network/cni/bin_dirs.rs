//! The plugin search path (`--cni-bin-dir`): finding a plugin program in it,
//! and the path as plugins receive it in `CNI_PATH` and messages show it.
//! Both config validation and plugin execution use it.

use std::ffi::OsString;
use std::path::PathBuf;

/// The first regular file named `plugin_type` in the bin dirs, like libcni's
/// `FindInPath`.
pub(super) fn find_plugin(plugin_type: &str, bin_dirs: &[PathBuf]) -> Option<PathBuf> {
    if plugin_type.is_empty() || plugin_type.contains('/') {
        return None;
    }
    bin_dirs
        .iter()
        .map(|dir| dir.join(plugin_type))
        .find(|path| path.is_file())
}

/// The bin dirs joined with `:`, as `CNI_PATH` carries them (and messages
/// show them).
pub(super) fn join_dirs(dirs: &[PathBuf]) -> OsString {
    let mut out = OsString::new();
    for (i, dir) in dirs.iter().enumerate() {
        if i > 0 {
            out.push(":");
        }
        out.push(dir.as_os_str());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_dirs_join_with_colons() {
        assert_eq!(
            join_dirs(&[PathBuf::from("/a"), PathBuf::from("/b c")]),
            OsString::from("/a:/b c")
        );
        assert_eq!(join_dirs(&[]), OsString::new());
    }

    #[test]
    fn plugin_names_with_a_slash_are_not_searched() {
        assert_eq!(find_plugin("../bridge", &[PathBuf::from("/")]), None);
        assert_eq!(find_plugin("", &[PathBuf::from("/")]), None);
    }
}
