//! cri-dockerd's sandbox checkpoint files, written so that a node can go
//! back from dockershim to cri-dockerd.
//!
//! cri-dockerd keeps, per pod, `<root>/sandbox/<sandbox id>`: the pod's name,
//! namespace, port mappings and whether it is on the host's network. It
//! reads the port mappings from there for the CNI DEL (without them the
//! portmap plugin leaves the pod's DNAT rules behind) and the name for
//! `StopPodSandbox` once the container is gone. dockershim itself needs none
//! of it (Docker's labels carry the same facts), so it only writes and
//! deletes these files, in cri-dockerd's format: JSON, with a checksum that
//! is FNV-1a (32 bits) of the Go `spew` rendering of the data, which
//! cri-dockerd verifies.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::api::PodSandboxConfig;
use crate::naming;

/// One pod's checkpoint, in cri-dockerd's field order.
#[derive(Debug, Serialize)]
struct Checkpoint<'a> {
    version: &'static str,
    name: &'a str,
    namespace: &'a str,
    data: Data,
    checksum: u64,
}

#[derive(Debug, Default, Serialize)]
struct Data {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    port_mappings: Vec<Port>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    host_network: bool,
}

#[derive(Debug, Serialize)]
struct Port {
    protocol: &'static str,
    container_port: i32,
    host_port: i32,
    #[serde(skip_serializing_if = "String::is_empty")]
    host_ip: String,
}

impl Data {
    fn of(config: &PodSandboxConfig, host_network: bool) -> Self {
        Data {
            port_mappings: config
                .port_mappings
                .iter()
                .map(|p| Port {
                    protocol: naming::protocol_name(p.protocol),
                    container_port: p.container_port,
                    host_port: p.host_port,
                    host_ip: p.host_ip.clone(),
                })
                .collect(),
            host_network,
        }
    }

    /// What cri-dockerd hashes: `spew.Sprintf("%#v", data)` of its Go
    /// `core.CheckpointData`.
    fn spew(&self) -> String {
        let ports = if self.port_mappings.is_empty() {
            "<nil>".to_string()
        } else {
            let items: Vec<String> = self
                .port_mappings
                .iter()
                .map(|p| {
                    format!(
                        "<*>{{Protocol:(*config.Protocol){} ContainerPort:(*int32){} HostPort:(*int32){} HostIP:(string){}}}",
                        p.protocol, p.container_port, p.host_port, p.host_ip
                    )
                })
                .collect();
            format!("[{}]", items.join(" "))
        };
        format!(
            "(core.CheckpointData){{PortMappings:([]*config.PortMapping){ports} HostNetwork:(bool){}}}",
            self.host_network
        )
    }

    fn checksum(&self) -> u64 {
        u64::from(fnv1a32(self.spew().as_bytes()))
    }
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash: u32, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

/// The checkpoint file of a sandbox under the state directory `root`.
fn path(root: &Path, sandbox_id: &str) -> PathBuf {
    root.join("sandbox").join(sandbox_id)
}

/// Writes a pod's checkpoint atomically (a hidden temporary file, synced,
/// then renamed), mode 0600 as cri-dockerd writes it.
pub fn write(
    root: &Path,
    sandbox_id: &str,
    config: &PodSandboxConfig,
    host_network: bool,
) -> io::Result<()> {
    let meta = config.metadata.clone().unwrap_or_default();
    let data = Data::of(config, host_network);
    let checkpoint = Checkpoint {
        version: "v1",
        name: &meta.name,
        namespace: &meta.namespace,
        checksum: data.checksum(),
        data,
    };
    let json = serde_json::to_vec(&checkpoint).map_err(io::Error::other)?;
    let dir = root.join("sandbox");
    std::fs::create_dir_all(&dir)?;
    let temp = dir.join(format!(".{sandbox_id}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temp)?;
    file.write_all(&json)?;
    file.sync_all()?;
    std::fs::rename(&temp, path(root, sandbox_id))
}

/// Deletes a pod's checkpoint; a missing one is fine.
pub fn remove(root: &Path, sandbox_id: &str) -> io::Result<()> {
    match std::fs::remove_file(path(root, sandbox_id)) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{PodSandboxMetadata, PortMapping, Protocol};

    fn pod(ports: Vec<PortMapping>) -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "web-7d4b9".into(),
                namespace: "default".into(),
                ..Default::default()
            }),
            port_mappings: ports,
            ..Default::default()
        }
    }

    /// Checksums of files cri-dockerd wrote (../shared/reference).
    #[test]
    fn checksums_match_the_files_cri_dockerd_writes() {
        let ports = vec![
            PortMapping {
                protocol: Protocol::Tcp as i32,
                container_port: 80,
                host_port: 18080,
                host_ip: "127.0.0.1".into(),
            },
            PortMapping {
                protocol: Protocol::Udp as i32,
                container_port: 53,
                host_port: 0,
                host_ip: String::new(),
            },
        ];
        assert_eq!(Data::of(&pod(ports), false).checksum(), 1_702_579_739);
        assert_eq!(Data::of(&pod(Vec::new()), true).checksum(), 12_315_789);
        assert_eq!(Data::of(&pod(Vec::new()), false).checksum(), 2_305_795_928);
    }

    #[test]
    fn files_are_written_in_cri_dockerds_format_and_removed() {
        let root = tempfile::tempdir().unwrap();
        let id = "ab".repeat(32);
        let ports = vec![PortMapping {
            protocol: Protocol::Tcp as i32,
            container_port: 80,
            host_port: 18080,
            host_ip: "127.0.0.1".into(),
        }];
        write(root.path(), &id, &pod(ports), false).unwrap();
        let file = root.path().join("sandbox").join(&id);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!(
                r#"{{"version":"v1","name":"web-7d4b9","namespace":"default","data":{{"port_mappings":[{{"protocol":"tcp","container_port":80,"host_port":18080,"host_ip":"127.0.0.1"}}]}},"checksum":{}}}"#,
                Data::of(
                    &pod(vec![PortMapping {
                        protocol: 0,
                        container_port: 80,
                        host_port: 18080,
                        host_ip: "127.0.0.1".into()
                    }]),
                    false
                )
                .checksum()
            )
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        write(root.path(), &id, &pod(Vec::new()), true).unwrap();
        assert!(
            std::fs::read_to_string(&file)
                .unwrap()
                .contains(r#""data":{"host_network":true},"checksum":12315789"#)
        );
        remove(root.path(), &id).unwrap();
        assert!(!file.exists());
        remove(root.path(), &id).unwrap();
    }
}
