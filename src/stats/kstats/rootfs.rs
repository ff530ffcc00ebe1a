//! The writable layer of a running container, from the overlay mount at the
//! root of its mount namespace. Docker names that directory only for its own
//! overlay2 driver; with the containerd image store the snapshot directory
//! is known only to containerd, but the kernel shows it in the mount.

use std::path::PathBuf;

/// The `upperdir` of the overlay mounted at `/` in the mount namespace of
/// process `pid`; `None` when that root is not an overlay or the process is
/// gone.
pub fn overlay_upper_dir_of_pid(pid: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    root_upper_dir(&text)
}

/// The `upperdir` of the topmost overlay mounted at `/` in a mountinfo text.
fn root_upper_dir(mountinfo: &str) -> Option<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (mount, fs) = line.split_once(" - ")?;
            let mount_point = mount.split(' ').nth(4)?;
            let mut fs = fs.split(' ');
            let (fs_type, _source, options) = (fs.next()?, fs.next()?, fs.next()?);
            (mount_point == "/" && fs_type == "overlay").then_some(options)
        })
        .next_back()?
        .split(',')
        .find_map(|option| option.strip_prefix("upperdir="))
        .map(|dir| PathBuf::from(unescape(dir)))
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 4);
        match code.and_then(|c| u8::from_str_radix(c, 8).ok()) {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upper_dir_of_the_root_overlay_is_found() {
        let text = "\
75 51 0:40 / / rw,relatime master:2 - overlay overlay rw,lowerdir=/c/snapshots/4/fs:/c/snapshots/1/fs,upperdir=/c/snap\\040shots/5/fs,workdir=/c/snapshots/5/work
76 75 0:43 / /proc rw,nosuid - proc proc rw
77 75 0:44 / /data rw - overlay overlay rw,upperdir=/elsewhere,workdir=/w
";
        assert_eq!(
            root_upper_dir(text),
            Some(PathBuf::from("/c/snap shots/5/fs"))
        );
        let not_overlay = "75 51 8:1 / / rw - ext4 /dev/sda1 rw\n";
        assert_eq!(root_upper_dir(not_overlay), None);
    }
}
