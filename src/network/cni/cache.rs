//! The result cache, in Go libcni's on-disk format (`cachedInfo`, kind
//! `cniCacheV1`) and location (`<cache dir>/results/<net>-<container>-<if>`),
//! so attachments made by cri-dockerd can be torn down by us and vice versa.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::config::NetworkConfigList;
use super::result::CniResult;
use super::{CniError, RuntimeConf};

const KIND: &str = "cniCacheV1";
const RESULTS_DIR: &str = "results";

/// One cached attachment: everything needed to delete it later without the
/// config file it was made from.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedAttachment {
    /// Network name, from the list that was added.
    pub network_name: String,
    /// Container (sandbox) id the attachment belongs to.
    pub container_id: String,
    /// Interface name inside the container.
    pub ifname: String,
    /// Netns path used for ADD.
    pub netns: Option<String>,
    /// The network list as JSON bytes, as it was when ADD ran.
    pub config: Vec<u8>,
    /// `CNI_ARGS` pairs used for ADD.
    pub cni_args: Vec<(String, String)>,
    /// Capability args used for ADD (all of them, not only those a plugin
    /// declared).
    pub capability_args: Map<String, Value>,
    /// The final ADD result.
    pub result: Option<CniResult>,
}

impl CachedAttachment {
    /// The network list stored with the attachment.
    pub fn network(&self) -> Result<NetworkConfigList, CniError> {
        NetworkConfigList::from_bytes(&self.config, Path::new("")).map_err(|e| {
            CniError::Invalid(format!(
                "cached config of network {:?} for container {}: {e}",
                self.network_name, self.container_id
            ))
        })
    }

    /// The runtime conf of the ADD, with the netns only when it can still
    /// be trusted: a pinned netns file that exists. A PID-based path
    /// (`/proc/<pid>/ns/net`, what cri-dockerd records) is dropped, because
    /// once the sandbox is gone the PID may belong to another process, even
    /// one in the host's namespace, and DEL would remove that namespace's
    /// interface.
    pub fn runtime_conf(&self) -> RuntimeConf {
        RuntimeConf {
            container_id: self.container_id.clone(),
            netns: self
                .netns
                .as_deref()
                .filter(|p| !p.starts_with("/proc/"))
                .map(PathBuf::from)
                .filter(|p| p.exists()),
            ifname: self.ifname.clone(),
            args: self.cni_args.clone(),
            capability_args: self.capability_args.clone(),
        }
    }
}

/// libcni's `cachedInfo`, field for field and in the same order.
#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    kind: String,
    #[serde(rename = "containerId")]
    container_id: String,
    #[serde(with = "go_bytes", default)]
    config: Vec<u8>,
    #[serde(rename = "ifName")]
    ifname: String,
    #[serde(rename = "networkName")]
    network_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    netns: Option<String>,
    #[serde(rename = "cniArgs", default, skip_serializing_if = "Option::is_none")]
    cni_args: Option<Vec<(String, String)>>,
    #[serde(
        rename = "capabilityArgs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    capability_args: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
}

/// Go marshals `[]byte` as standard base64 and nil as `null`.
mod go_bytes {
    use super::*;

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        match text {
            None => Ok(Vec::new()),
            // Go's decoder skips line breaks inside the string.
            Some(text) => {
                let compact: String = text.chars().filter(|c| *c != '\n' && *c != '\r').collect();
                STANDARD.decode(compact).map_err(serde::de::Error::custom)
            }
        }
    }
}

/// Path of an attachment's cache file.
pub(super) fn file_path(
    cache_dir: &Path,
    network: &str,
    container_id: &str,
    ifname: &str,
) -> PathBuf {
    cache_dir
        .join(RESULTS_DIR)
        .join(format!("{network}-{container_id}-{ifname}"))
}

/// Reads an attachment; `None` when there is no cache file.
pub(super) fn read(
    cache_dir: &Path,
    network: &str,
    container_id: &str,
    ifname: &str,
) -> Result<Option<CachedAttachment>, CniError> {
    let path = file_path(cache_dir, network, container_id, ifname);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CniError::Io {
                context: format!("read cni cache file {}", path.display()),
                source,
            });
        }
    };
    parse(&bytes)
        .map(Some)
        .map_err(|e| CniError::Invalid(format!("cni cache file {}: {e}", path.display())))
}

/// Decodes a cache file's bytes (libcni's `cachedInfo` JSON).
pub(super) fn parse(bytes: &[u8]) -> Result<CachedAttachment, String> {
    let file: CacheFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if file.kind != KIND {
        return Err(format!("unknown kind {:?}", file.kind));
    }
    let result = match file.result {
        None | Some(Value::Null) => None,
        Some(raw) => Some(CniResult::from_value(raw).map_err(|e| format!("result: {e}"))?),
    };
    Ok(CachedAttachment {
        network_name: file.network_name,
        container_id: file.container_id,
        ifname: file.ifname,
        netns: file.netns.filter(|n| !n.is_empty()),
        config: file.config,
        cni_args: file.cni_args.unwrap_or_default(),
        capability_args: file.capability_args.unwrap_or_default(),
        result,
    })
}

/// Encodes an attachment as libcni's `cachedInfo` JSON, the inverse of
/// [`parse`].
pub(super) fn encode(entry: &CachedAttachment) -> Result<Vec<u8>, CniError> {
    let file = CacheFile {
        kind: KIND.to_owned(),
        container_id: entry.container_id.clone(),
        config: entry.config.clone(),
        ifname: entry.ifname.clone(),
        network_name: entry.network_name.clone(),
        netns: entry.netns.clone().filter(|n| !n.is_empty()),
        // Go's omitempty drops empty slices and maps; do the same.
        cni_args: Some(entry.cni_args.clone()).filter(|a| !a.is_empty()),
        capability_args: Some(entry.capability_args.clone()).filter(|a| !a.is_empty()),
        result: entry.result.as_ref().map(|r| r.raw.clone()),
    };
    serde_json::to_vec(&file)
        .map_err(|e| CniError::Invalid(format!("serialize cni cache entry: {e}")))
}

/// Writes an attachment atomically: a reader sees the old file or the new
/// one, never a torn write.
pub(super) fn write(cache_dir: &Path, entry: &CachedAttachment) -> Result<(), CniError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);

    let bytes = encode(entry)?;
    let path = file_path(
        cache_dir,
        &entry.network_name,
        &entry.container_id,
        &entry.ifname,
    );
    let dir = cache_dir.join(RESULTS_DIR);
    let io_err = |context: String| move |source| CniError::Io { context, source };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io_err(format!("create cni cache dir {}", dir.display())))?;

    // Dot-prefixed so directory scans skip it.
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        file_name(&path),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)
    })();
    if let Err(source) = written {
        let _ = fs::remove_file(&tmp);
        return Err(CniError::Io {
            context: format!("write cni cache file {}", path.display()),
            source,
        });
    }
    // Make the rename durable; failure here loses nothing already visible.
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Removes an attachment's cache file; `false` when there was none.
pub(super) fn remove(
    cache_dir: &Path,
    network: &str,
    container_id: &str,
    ifname: &str,
) -> Result<bool, CniError> {
    let path = file_path(cache_dir, network, container_id, ifname);
    match fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(CniError::Io {
            context: format!("remove cni cache file {}", path.display()),
            source,
        }),
    }
}

/// Every readable attachment of `container_id`, in file name order. Files
/// that are unreadable, corrupt, of another kind or another container are
/// skipped: the directory is shared with other runtimes and old versions.
pub(super) fn scan(
    cache_dir: &Path,
    container_id: &str,
) -> Result<Vec<CachedAttachment>, CniError> {
    let dir = cache_dir.join(RESULTS_DIR);
    let mut names: Vec<String> = names_in(&dir)?
        .into_iter()
        // This cheap filter avoids parsing every pod's file.
        .filter(|name| !name.starts_with('.') && names_container(name, container_id))
        .collect();
    names.sort();

    let mut out = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let parsed = fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| parse(&bytes));
        match parsed {
            Ok(entry)
                if entry.container_id == container_id
                    && !entry.ifname.is_empty()
                    && !entry.network_name.is_empty() =>
            {
                out.push(entry);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(file = %path.display(), error = %e, "skipping unreadable cni cache file");
            }
        }
    }
    Ok(out)
}

/// The names of the files in the results directory (none when it does
/// not exist yet); names that are not UTF-8 are not the shim's or libcni's.
fn names_in(dir: &Path) -> Result<Vec<String>, CniError> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(CniError::Io {
            context: format!("read cni cache dir {}", dir.display()),
            source,
        }),
    }
}

/// Whether a cache file name, `<net>-<container>-<if>`, can be one of
/// `container_id`'s: the id sits between the network and interface names,
/// both non-empty.
fn names_container(name: &str, container_id: &str) -> bool {
    let needle = format!("-{container_id}-");
    name.match_indices(&needle)
        .any(|(pos, _)| pos > 0 && pos + needle.len() < name.len())
}

/// Removes the temporary files that writes of `container_id`'s entries
/// left behind because the process died between writing and renaming
/// them (see [`write`]); returns how many. The caller holds the
/// container's lock, so none of them is a write still under way.
pub(super) fn remove_unfinished(cache_dir: &Path, container_id: &str) -> Result<usize, CniError> {
    let dir = cache_dir.join(RESULTS_DIR);
    let mut removed = 0;
    for name in names_in(&dir)? {
        let Some((target, _)) = name
            .strip_prefix('.')
            .and_then(|rest| rest.rsplit_once(".tmp-"))
        else {
            continue;
        };
        if !names_container(target, container_id) {
            continue;
        }
        match fs::remove_file(dir.join(&name)) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(CniError::Io {
                    context: format!("remove unfinished cni cache file {name}"),
                    source,
                });
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
pub(super) mod tests {
    use std::os::unix::fs::PermissionsExt;

    use serde_json::json;

    use super::*;

    /// A cache file as Go libcni v1.1.2 (cri-dockerd) writes it, for a
    /// bridge + portmap list; `config` is the list's base64.
    pub(in super::super) const GO_CACHE_SAMPLE: &str = r#"{"kind":"cniCacheV1","containerId":"4f1c2b3a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a","config":"ewogICJjbmlWZXJzaW9uIjogIjAuNC4wIiwKICAibmFtZSI6ICJrOHMtcG9kLW5ldHdvcmsiLAogICJwbHVnaW5zIjogWwogICAgewogICAgICAidHlwZSI6ICJicmlkZ2UiLAogICAgICAiYnJpZGdlIjogImNuaTAiLAogICAgICAiaXNHYXRld2F5IjogdHJ1ZSwKICAgICAgImlwTWFzcSI6IHRydWUsCiAgICAgICJpcGFtIjogewogICAgICAgICJ0eXBlIjogImhvc3QtbG9jYWwiLAogICAgICAgICJyYW5nZXMiOiBbW3sic3VibmV0IjogIjEwLjI0NC4wLjAvMjQifV1dLAogICAgICAgICJyb3V0ZXMiOiBbeyJkc3QiOiAiMC4wLjAuMC8wIn1dCiAgICAgIH0KICAgIH0sCiAgICB7CiAgICAgICJ0eXBlIjogInBvcnRtYXAiLAogICAgICAiY2FwYWJpbGl0aWVzIjogeyJwb3J0TWFwcGluZ3MiOiB0cnVlfQogICAgfQogIF0KfQo=","ifName":"eth0","networkName":"k8s-pod-network","netns":"/proc/4194304/ns/net","cniArgs":[["IgnoreUnknown","1"],["K8S_POD_NAMESPACE","default"],["K8S_POD_NAME","web-0"],["K8S_POD_INFRA_CONTAINER_ID","4f1c2b3a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"]],"capabilityArgs":{"bandwidth":{"egressBurst":2147483647,"egressRate":1000000,"ingressBurst":2147483647,"ingressRate":1000000},"ipRanges":[[{"subnet":"10.244.0.0/24"}]],"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":""}]},"result":{"cniVersion":"0.4.0","dns":{},"interfaces":[{"mac":"6a:1f:0e:34:22:11","name":"cni0"},{"mac":"f2:5a:9c:11:3b:7e","name":"veth8d2c1e7a"},{"mac":"8e:41:d2:0a:77:19","name":"eth0","sandbox":"/proc/4194304/ns/net"}],"ips":[{"address":"10.244.0.17/24","gateway":"10.244.0.1","interface":2,"version":"4"}],"routes":[{"dst":"0.0.0.0/0"}]}}"#;

    #[test]
    fn sample_config_is_a_pretty_printed_conflist() {
        let go: Value = serde_json::from_str(GO_CACHE_SAMPLE).unwrap();
        let decoded = STANDARD.decode(go["config"].as_str().unwrap()).unwrap();
        assert!(decoded.starts_with(b"{\n  \"cniVersion\": \"0.4.0\""));
        let v: Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(v["plugins"][1]["type"], "portmap");
    }

    #[test]
    fn reads_go_libcni_files() {
        let tmp = tempfile::tempdir().unwrap();
        let cid = "4f1c2b3a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";
        let path = file_path(tmp.path(), "k8s-pod-network", cid, "eth0");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, GO_CACHE_SAMPLE).unwrap();

        let entry = read(tmp.path(), "k8s-pod-network", cid, "eth0")
            .unwrap()
            .unwrap();
        assert_eq!(entry.container_id, cid);
        assert_eq!(entry.netns.as_deref(), Some("/proc/4194304/ns/net"));
        assert_eq!(
            entry.cni_args[2],
            ("K8S_POD_NAME".to_owned(), "web-0".to_owned())
        );
        assert_eq!(entry.capability_args["portMappings"][0]["hostPort"], 8080);
        let result = entry.result.as_ref().unwrap();
        assert_eq!(
            result.pod_ips(),
            vec!["10.244.0.17".parse::<std::net::IpAddr>().unwrap()]
        );
        let net = entry.network().unwrap();
        assert_eq!(
            (net.name.as_str(), net.cni_version.as_str()),
            ("k8s-pod-network", "0.4.0")
        );
        assert_eq!(net.plugins.len(), 2);
        // PID-based netns paths are never reused, pinned ones when present.
        assert_eq!(entry.runtime_conf().netns, None);
        let pinned = tmp.path().join("netns-pinned");
        fs::write(&pinned, "").unwrap();
        let mut with_pinned = entry.clone();
        with_pinned.netns = Some(pinned.display().to_string());
        assert_eq!(with_pinned.runtime_conf().netns, Some(pinned.clone()));
        with_pinned.netns = Some(format!("{}/gone", tmp.path().display()));
        assert_eq!(with_pinned.runtime_conf().netns, None);
        let mut with_proc = entry.clone();
        with_proc.netns = Some("/proc/self/ns/net".into());
        assert_eq!(with_proc.runtime_conf().netns, None);

        // Writing it back yields the same JSON as Go wrote (modulo key order
        // inside maps, which Go sorts and serde_json also sorts).
        fs::remove_file(&path).unwrap();
        write(tmp.path(), &entry).unwrap();
        let ours: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        let go: Value = serde_json::from_str(GO_CACHE_SAMPLE).unwrap();
        assert_eq!(ours, go);
    }

    #[test]
    fn write_is_private_omits_empty_fields_and_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().join("a/b");
        let entry = CachedAttachment {
            network_name: "net".into(),
            container_id: "c1".into(),
            ifname: "eth0".into(),
            netns: None,
            config: b"{}".to_vec(),
            cni_args: vec![],
            capability_args: Map::new(),
            result: None,
        };
        write(&cache, &entry).unwrap();
        let path = file_path(&cache, "net", "c1", "eth0");
        let json: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            json,
            json!({"kind":"cniCacheV1","containerId":"c1","config":"e30=","ifName":"eth0","networkName":"net"})
        );
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(read(&cache, "net", "c1", "eth0").unwrap().unwrap(), entry);
        // Only the final file is left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);

        assert!(remove(&cache, "net", "c1", "eth0").unwrap());
        assert!(!remove(&cache, "net", "c1", "eth0").unwrap());
        assert_eq!(read(&cache, "net", "c1", "eth0").unwrap(), None);
    }

    /// Found by the `cni_cache` fuzz target: serde_json's default float
    /// parsing may be one unit in the last place off, so a number in
    /// capability args or a result changed each time the file was read and
    /// written back (8.08e89 read as 8.079999999999999e89).
    #[test]
    fn numbers_survive_a_read_and_write() {
        let file = format!(
            r#"{{"kind":"cniCacheV1","containerId":"c","ifName":"eth0","networkName":"n",
                "capabilityArgs":{{"x":808{},"y":0.1,"z":1.7976931348623157e308}}}}"#,
            "0".repeat(87)
        );
        let entry = parse(file.as_bytes()).unwrap();
        assert_eq!(entry.capability_args["x"].as_f64(), Some(8.08e89));
        let again = parse(&encode(&entry).unwrap()).unwrap();
        assert_eq!(again, entry);
    }

    #[test]
    fn null_config_and_wrong_kind() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(RESULTS_DIR);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("n-c1-eth0"),
            r#"{"kind":"cniCacheV1","containerId":"c1","config":null,"ifName":"eth0","networkName":"n","cniArgs":null}"#,
        )
        .unwrap();
        let entry = read(tmp.path(), "n", "c1", "eth0").unwrap().unwrap();
        assert!(entry.config.is_empty() && entry.cni_args.is_empty());
        fs::write(
            dir.join("n-c2-eth0"),
            r#"{"kind":"other","containerId":"c2","ifName":"eth0","networkName":"n"}"#,
        )
        .unwrap();
        assert!(matches!(
            read(tmp.path(), "n", "c2", "eth0"),
            Err(CniError::Invalid(_))
        ));
    }

    #[test]
    fn scan_finds_only_this_containers_entries_and_skips_junk() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(scan(tmp.path(), "c1").unwrap().is_empty());
        let mk = |net: &str, cid: &str, ifname: &str| CachedAttachment {
            network_name: net.into(),
            container_id: cid.into(),
            ifname: ifname.into(),
            netns: Some("/proc/1/ns/net".into()),
            config: vec![],
            cni_args: vec![("A".into(), "b".into())],
            capability_args: Map::new(),
            result: None,
        };
        write(tmp.path(), &mk("net-a", "c1", "eth0")).unwrap();
        write(tmp.path(), &mk("cni-loopback", "c1", "lo")).unwrap();
        write(tmp.path(), &mk("net-a", "c10", "eth0")).unwrap();
        write(tmp.path(), &mk("net-a", "x-c1", "eth0")).unwrap();
        let dir = tmp.path().join(RESULTS_DIR);
        fs::write(dir.join("junk-c1-eth1"), "not json").unwrap();
        fs::write(
            dir.join("legacy-c1-eth2"),
            r#"{"cniVersion":"0.3.1","ips":[]}"#,
        )
        .unwrap();
        fs::write(dir.join(".net-c1-eth0.tmp-1-1"), "partial").unwrap();
        fs::create_dir(dir.join("sub-c1-dir")).unwrap();
        // A file named for c1 but holding another container's entry.
        fs::write(
            dir.join("liar-c1-eth0"),
            r#"{"kind":"cniCacheV1","containerId":"c9","ifName":"eth0","networkName":"liar"}"#,
        )
        .unwrap();

        let found = scan(tmp.path(), "c1").unwrap();
        let keys: Vec<_> = found
            .iter()
            .map(|e| (e.network_name.as_str(), e.ifname.as_str()))
            .collect();
        assert_eq!(keys, [("cni-loopback", "lo"), ("net-a", "eth0")]);
        assert_eq!(scan(tmp.path(), "x-c1").unwrap().len(), 1);
    }

    #[test]
    fn unfinished_writes_of_a_container_are_removed_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(remove_unfinished(tmp.path(), "c1").unwrap(), 0);
        let entry = CachedAttachment {
            network_name: "net-a".into(),
            container_id: "c1".into(),
            ifname: "eth0".into(),
            netns: None,
            config: vec![],
            cni_args: vec![],
            capability_args: Map::new(),
            result: None,
        };
        write(tmp.path(), &entry).unwrap();
        let dir = tmp.path().join(RESULTS_DIR);
        // What a write cut short between create and rename leaves.
        for name in [
            ".net-a-c1-eth0.tmp-4242-0",
            ".cni-loopback-c1-lo.tmp-4242-1",
        ] {
            fs::write(dir.join(name), "partial").unwrap();
        }
        let others = [
            ".net-a-c2-eth0.tmp-4242-2",
            ".hidden-c1-eth0",
            "net-a-c2-eth0",
        ];
        for name in others {
            fs::write(dir.join(name), "other").unwrap();
        }

        assert_eq!(remove_unfinished(tmp.path(), "c1").unwrap(), 2);
        let mut left: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut expected: Vec<String> = others.iter().map(|s| s.to_string()).collect();
        expected.push("net-a-c1-eth0".into());
        expected.sort();
        assert_eq!(left, expected);
    }
}
