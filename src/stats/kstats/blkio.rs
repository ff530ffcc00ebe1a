//! Block I/O of a cgroup per device: v1's `blkio.*_recursive` files and
//! v2's `io.stat`, and how to read them.

/// Block I/O of a cgroup on one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceIo {
    pub major: u64,
    pub minor: u64,
    /// Bytes per operation as the kernel names them in v1 (`Read`, `Write`,
    /// `Sync`, `Async`, `Discard`, `Total`); v2 gives `Read` and `Write`.
    pub bytes: Vec<(String, u64)>,
    /// Completed operations, named likewise.
    pub ops: Vec<(String, u64)>,
}

impl DeviceIo {
    /// Bytes of operation `op` (`Read`, `Write`, ...).
    pub fn bytes_of(&self, op: &str) -> Option<u64> {
        lookup(&self.bytes, op)
    }

    /// Completed operations `op`.
    pub fn ops_of(&self, op: &str) -> Option<u64> {
        lookup(&self.ops, op)
    }
}

fn lookup(pairs: &[(String, u64)], key: &str) -> Option<u64> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

/// v1's `blkio.*io_service_bytes_recursive` and `*io_serviced_recursive`:
/// `MAJ:MIN Op value` lines, ending with a `Total value` line that names no
/// device. Devices come out in first-seen order.
pub(super) fn parse_blkio(bytes: &str, ops: &str) -> Vec<DeviceIo> {
    let mut devices: Vec<DeviceIo> = Vec::new();
    let mut add = |text: &str, is_bytes: bool| {
        for line in text.lines() {
            let mut it = line.split_ascii_whitespace();
            let (Some(dev), Some(op), Some(value)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            let (Some((major, minor)), Ok(value)) = (parse_dev(dev), value.parse::<u64>()) else {
                continue;
            };
            let i = match devices
                .iter()
                .position(|d| d.major == major && d.minor == minor)
            {
                Some(i) => i,
                None => {
                    devices.push(DeviceIo {
                        major,
                        minor,
                        ..DeviceIo::default()
                    });
                    devices.len() - 1
                }
            };
            let list = if is_bytes {
                &mut devices[i].bytes
            } else {
                &mut devices[i].ops
            };
            list.push((op.to_owned(), value));
        }
    };
    add(bytes, true);
    add(ops, false);
    devices
}

/// v2's `io.stat`: `MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. ...` lines.
pub(super) fn parse_io_stat(text: &str) -> Vec<DeviceIo> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.split_ascii_whitespace();
            let (major, minor) = parse_dev(it.next()?)?;
            let mut io = DeviceIo {
                major,
                minor,
                ..DeviceIo::default()
            };
            for field in it {
                let Some((key, value)) = field.split_once('=') else {
                    continue;
                };
                let Ok(value) = value.parse::<u64>() else {
                    continue;
                };
                match key {
                    "rbytes" => io.bytes.push(("Read".into(), value)),
                    "wbytes" => io.bytes.push(("Write".into(), value)),
                    "rios" => io.ops.push(("Read".into(), value)),
                    "wios" => io.ops.push(("Write".into(), value)),
                    _ => {}
                }
            }
            Some(io)
        })
        .collect()
}

/// `MAJ:MIN`.
pub(super) fn parse_dev(dev: &str) -> Option<(u64, u64)> {
    let (major, minor) = dev.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}
