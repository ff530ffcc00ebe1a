//! Network configuration: discovery of the node's CNI config in the config
//! directory (the way cri-dockerd and libcni pick it), parsing of `.conf` and
//! `.conflist` files, and the per-plugin config a plugin receives on stdin.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::bin_dirs::{find_plugin, join_dirs};
use super::{CniError, CniSettings};

/// File name extensions considered config files, as in cri-dockerd.
const CONFIG_EXTENSIONS: [&str; 3] = ["conf", "conflist", "json"];

/// Highest spec version this client knows; used to pick from `cniVersions`.
const MAX_KNOWN_VERSION: (u64, u64, u64) = (1, 1, 0);

/// A network: a named chain of plugins run in order for ADD.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    /// Network name; part of the cache file name.
    pub name: String,
    /// Spec version every plugin is called with.
    pub cni_version: String,
    /// `disableCheck`: CHECK is skipped for this network.
    pub disable_check: bool,
    /// The plugins, in ADD order.
    pub plugins: Vec<PluginConfig>,
    /// The list as JSON (a `.conf` is first wrapped into a list); this is
    /// what the result cache stores so the attachment can be deleted later
    /// even if the file changes.
    pub bytes: Vec<u8>,
    /// File the network was loaded from; empty for built-in networks.
    pub source: PathBuf,
}

/// One plugin of a network.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    /// The `type`: the name of the plugin binary.
    pub plugin_type: String,
    /// Capabilities the plugin declares (`portMappings`, `bandwidth`, ...).
    pub capabilities: BTreeMap<String, bool>,
    /// The plugin's config object as written, including `type` and
    /// `capabilities`.
    pub raw: Map<String, Value>,
}

/// Loads the node's network: the first valid file in name order among
/// `*.conf`, `*.conflist` and `*.json` in the config dir.
///
/// A file is valid when it parses, names the network and its spec version,
/// has at least one plugin with a `type`, and every plugin binary exists in
/// a bin dir. The error lists why each file was rejected.
pub fn load_network(settings: &CniSettings) -> Result<NetworkConfigList, CniError> {
    let dir = &settings.conf_dir;
    let entries = fs::read_dir(dir).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => CniError::NoConfig(format!(
            "cni config directory {} does not exist",
            dir.display()
        )),
        _ => CniError::NoConfig(format!("read cni config directory {}: {e}", dir.display())),
    })?;

    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| extension(path).is_some_and(|ext| CONFIG_EXTENSIONS.contains(&ext)))
        // Follows symlinks: config managers often link files into place.
        .filter(|path| path.is_file())
        .collect();
    files.sort();

    let mut rejected = Vec::new();
    for path in files {
        match load_file(&path, &settings.bin_dirs) {
            Ok(net) => {
                tracing::debug!(file = %path.display(), network = %net.name, "loaded cni network config");
                return Ok(net);
            }
            Err(reason) => {
                tracing::debug!(file = %path.display(), %reason, "skipping cni config file");
                rejected.push(format!("{}: {reason}", path.display()));
            }
        }
    }
    if rejected.is_empty() {
        Err(CniError::NoConfig(format!(
            "no network config found in {} (looked for *.conf, *.conflist, *.json)",
            dir.display()
        )))
    } else {
        Err(CniError::NoConfig(format!(
            "no valid network config in {}: {}",
            dir.display(),
            rejected.join("; ")
        )))
    }
}

/// The name of [`loopback_network`], as cri-dockerd names it.
pub const LOOPBACK_NETWORK: &str = "cni-loopback";

/// The built-in loopback network, run for every pod besides the node's
/// network, as cri-dockerd does.
pub fn loopback_network() -> NetworkConfigList {
    let bytes = br#"{"cniVersion":"0.3.1","name":"cni-loopback","plugins":[{"type":"loopback"}]}"#;
    let mut raw = Map::new();
    raw.insert("type".into(), Value::String("loopback".into()));
    NetworkConfigList {
        name: LOOPBACK_NETWORK.into(),
        cni_version: "0.3.1".into(),
        disable_check: false,
        plugins: vec![PluginConfig {
            plugin_type: "loopback".into(),
            capabilities: BTreeMap::new(),
            raw,
        }],
        bytes: bytes.to_vec(),
        source: PathBuf::new(),
    }
}

fn extension(path: &Path) -> Option<&str> {
    path.extension().and_then(|e| e.to_str())
}

fn load_file(path: &Path, bin_dirs: &[PathBuf]) -> Result<NetworkConfigList, String> {
    let bytes = fs::read(path).map_err(|e| format!("read: {e}"))?;
    let net = match extension(path) {
        Some("conflist") => NetworkConfigList::from_list_bytes(&bytes, path),
        Some("conf") => NetworkConfigList::from_conf_bytes(&bytes, path),
        // cri-dockerd reads *.json as a single plugin; a list is accepted too
        // because people do write conflists with that extension.
        _ => NetworkConfigList::from_bytes(&bytes, path),
    }
    .map_err(|e| match e {
        CniError::Invalid(msg) => msg,
        other => other.to_string(),
    })?;
    for plugin in &net.plugins {
        if find_plugin(&plugin.plugin_type, bin_dirs).is_none() {
            return Err(format!(
                "plugin binary {:?} not found in {}",
                plugin.plugin_type,
                join_dirs(bin_dirs).to_string_lossy()
            ));
        }
    }
    Ok(net)
}

impl NetworkConfigList {
    /// Parses a list or a single plugin config, told apart by a `plugins` key.
    pub fn from_bytes(bytes: &[u8], source: &Path) -> Result<Self, CniError> {
        let obj = parse_object(bytes)?;
        if obj.contains_key("plugins") {
            Self::from_list_object(obj, bytes.to_vec(), source)
        } else {
            Self::from_conf_object(obj, source)
        }
    }

    /// Parses a network config list (`.conflist`).
    pub fn from_list_bytes(bytes: &[u8], source: &Path) -> Result<Self, CniError> {
        Self::from_list_object(parse_object(bytes)?, bytes.to_vec(), source)
    }

    /// Parses a single plugin config (`.conf`) and wraps it into a list.
    pub fn from_conf_bytes(bytes: &[u8], source: &Path) -> Result<Self, CniError> {
        Self::from_conf_object(parse_object(bytes)?, source)
    }

    fn from_list_object(
        obj: Map<String, Value>,
        bytes: Vec<u8>,
        source: &Path,
    ) -> Result<Self, CniError> {
        let name = network_name(&obj)?;
        let cni_version = list_version(&obj)?;
        let disable_check = match obj.get("disableCheck") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            // Newer libcni accepts the string form as well.
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
            Some(other) => {
                return Err(CniError::Invalid(format!(
                    "disableCheck must be a boolean, not {other}"
                )));
            }
        };
        let items = match obj.get("plugins") {
            Some(Value::Array(items)) if !items.is_empty() => items,
            Some(Value::Array(_)) => {
                return Err(CniError::Invalid("plugins list is empty".into()));
            }
            _ => return Err(CniError::Invalid("missing plugins list".into())),
        };
        let plugins = items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(raw) => PluginConfig::from_object(raw.clone())
                    .map_err(|e| CniError::Invalid(format!("plugins[{i}]: {}", invalid_msg(e)))),
                _ => Err(CniError::Invalid(format!("plugins[{i}] is not an object"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            name,
            cni_version,
            disable_check,
            plugins,
            bytes,
            source: source.to_path_buf(),
        })
    }

    fn from_conf_object(obj: Map<String, Value>, source: &Path) -> Result<Self, CniError> {
        let name = network_name(&obj)?;
        let cni_version = list_version(&obj)?;
        let plugin = PluginConfig::from_object(obj.clone())?;
        let mut list = Map::new();
        list.insert("cniVersion".into(), Value::String(cni_version.clone()));
        list.insert("name".into(), Value::String(name.clone()));
        list.insert("plugins".into(), Value::Array(vec![Value::Object(obj)]));
        let bytes = serde_json::to_vec(&list)
            .map_err(|e| CniError::Invalid(format!("serialize network list: {e}")))?;
        Ok(Self {
            name,
            cni_version,
            disable_check: false,
            plugins: vec![plugin],
            bytes,
            source: source.to_path_buf(),
        })
    }
}

fn invalid_msg(e: CniError) -> String {
    match e {
        CniError::Invalid(msg) => msg,
        other => other.to_string(),
    }
}

fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, CniError> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(_) => Err(CniError::Invalid("config is not a JSON object".into())),
        Err(e) => Err(CniError::Invalid(format!("invalid JSON: {e}"))),
    }
}

fn network_name(obj: &Map<String, Value>) -> Result<String, CniError> {
    match obj.get("name").and_then(Value::as_str) {
        None | Some("") => Err(CniError::Invalid("missing network name".into())),
        Some(name) => {
            super::validate_network_name(name)?;
            Ok(name.to_owned())
        }
    }
}

/// The version to run the list with: `cniVersion`, or failing that the
/// highest known entry of the 1.1 `cniVersions` array.
fn list_version(obj: &Map<String, Value>) -> Result<String, CniError> {
    if let Some(v) = obj
        .get("cniVersion")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
    {
        return match parse_version(v) {
            Some(_) => Ok(v.to_owned()),
            None => Err(CniError::Invalid(format!("invalid cniVersion {v:?}"))),
        };
    }
    let best = obj
        .get("cniVersions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|v| parse_version(v).map(|parsed| (parsed, v)))
        .filter(|(parsed, _)| *parsed <= MAX_KNOWN_VERSION)
        .max();
    best.map(|(_, v)| v.to_owned())
        .ok_or_else(|| CniError::Invalid("missing cniVersion".into()))
}

/// Parses `major.minor.patch`.
pub(super) fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

/// Whether spec version `v` is at least `min`; an unparseable version is a
/// config error rather than a guess.
pub(super) fn version_at_least(v: &str, min: (u64, u64, u64)) -> Result<bool, CniError> {
    parse_version(v)
        .map(|parsed| parsed >= min)
        .ok_or_else(|| CniError::Invalid(format!("invalid cniVersion {v:?}")))
}

impl PluginConfig {
    /// Reads `type` and `capabilities` from a plugin's config object.
    pub fn from_object(raw: Map<String, Value>) -> Result<Self, CniError> {
        let plugin_type = match raw.get("type").and_then(Value::as_str) {
            None | Some("") => return Err(CniError::Invalid("missing plugin type".into())),
            // The type names a file inside a bin dir, never a path.
            Some(t) if t.contains('/') || t == "." || t == ".." => {
                return Err(CniError::Invalid(format!("invalid plugin type {t:?}")));
            }
            Some(t) => t.to_owned(),
        };
        let capabilities = match raw.get("capabilities") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(caps)) => caps
                .iter()
                .map(|(k, v)| match v {
                    Value::Bool(b) => Ok((k.clone(), *b)),
                    _ => Err(CniError::Invalid(format!(
                        "plugin {plugin_type}: capability {k:?} is not a boolean"
                    ))),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(CniError::Invalid(format!(
                    "plugin {plugin_type}: capabilities is not an object"
                )));
            }
        };
        Ok(Self {
            plugin_type,
            capabilities,
            raw,
        })
    }

    /// The config this plugin gets on stdin (spec "deriving execution
    /// configuration"): the list's name and version, the capability args it
    /// declared as `runtimeConfig`, and `prevResult` when given.
    pub(super) fn derive(
        &self,
        list: &NetworkConfigList,
        prev_result: Option<&Value>,
        capability_args: &Map<String, Value>,
    ) -> Result<Vec<u8>, CniError> {
        let mut obj = self.raw.clone();
        obj.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
        obj.insert("name".into(), Value::String(list.name.clone()));
        obj.remove("capabilities");
        let runtime_config: Map<String, Value> = self
            .capabilities
            .iter()
            .filter(|(_, enabled)| **enabled)
            .filter_map(|(cap, _)| capability_args.get(cap).map(|v| (cap.clone(), v.clone())))
            .collect();
        // Like libcni, a static runtimeConfig in the file survives when the
        // runtime has nothing to inject.
        if !runtime_config.is_empty() {
            obj.insert("runtimeConfig".into(), Value::Object(runtime_config));
        }
        if let Some(prev) = prev_result {
            obj.insert("prevResult".into(), prev.clone());
        }
        serde_json::to_vec(&obj).map_err(|e| {
            CniError::Invalid(format!(
                "serialize config for plugin {}: {e}",
                self.plugin_type
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    struct Dirs {
        _tmp: tempfile::TempDir,
        settings: CniSettings,
    }

    fn dirs(bins: &[&str]) -> Dirs {
        let tmp = tempfile::tempdir().unwrap();
        let conf = tmp.path().join("net.d");
        let bin_a = tmp.path().join("bin-a");
        let bin_b = tmp.path().join("bin-b");
        for d in [&conf, &bin_a, &bin_b] {
            fs::create_dir_all(d).unwrap();
        }
        // Spread binaries over both dirs to show every bin dir is searched.
        for (i, name) in bins.iter().enumerate() {
            let dir = if i % 2 == 0 { &bin_a } else { &bin_b };
            let path = dir.join(name);
            fs::write(&path, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let settings = CniSettings {
            conf_dir: conf,
            bin_dirs: vec![bin_a, bin_b],
            cache_dir: tmp.path().join("cache"),
            plugin_timeout: Duration::from_secs(5),
        };
        Dirs {
            _tmp: tmp,
            settings,
        }
    }

    fn write_conf(d: &Dirs, name: &str, body: &str) {
        fs::write(d.settings.conf_dir.join(name), body).unwrap();
    }

    #[test]
    fn picks_first_valid_file_in_name_order() {
        let d = dirs(&["bridge", "portmap"]);
        write_conf(&d, "00-broken.conflist", "{not json");
        write_conf(
            &d,
            "05-missing.conflist",
            r#"{"cniVersion":"1.0.0","name":"m","plugins":[{"type":"bridge"},{"type":"flannel"}]}"#,
        );
        write_conf(&d, "07-noversion.conf", r#"{"name":"x","type":"bridge"}"#);
        write_conf(
            &d,
            "08-notype.conflist",
            r#"{"cniVersion":"1.0.0","name":"x","plugins":[{}]}"#,
        );
        write_conf(
            &d,
            "09-ignored.txt",
            r#"{"cniVersion":"1.0.0","name":"t","type":"bridge"}"#,
        );
        write_conf(
            &d,
            "10-good.conflist",
            r#"{"cniVersion":"1.0.0","name":"k8s","disableCheck":true,"plugins":[
                {"type":"bridge","bridge":"cni0"},
                {"type":"portmap","capabilities":{"portMappings":true,"other":false}}]}"#,
        );
        write_conf(
            &d,
            "20-later.conf",
            r#"{"cniVersion":"0.4.0","name":"later","type":"bridge"}"#,
        );

        let net = load_network(&d.settings).unwrap();
        assert_eq!(net.name, "k8s");
        assert_eq!(net.cni_version, "1.0.0");
        assert!(net.disable_check);
        assert_eq!(net.source, d.settings.conf_dir.join("10-good.conflist"));
        let types: Vec<_> = net.plugins.iter().map(|p| p.plugin_type.as_str()).collect();
        assert_eq!(types, ["bridge", "portmap"]);
        assert_eq!(net.plugins[0].raw["bridge"], "cni0");
        assert_eq!(
            net.plugins[1].capabilities,
            BTreeMap::from([
                ("other".to_owned(), false),
                ("portMappings".to_owned(), true)
            ])
        );
        // The list bytes are the file as written.
        assert_eq!(net.bytes, fs::read(&net.source).unwrap());
    }

    #[test]
    fn conf_is_wrapped_into_a_list() {
        let d = dirs(&["bridge"]);
        write_conf(
            &d,
            "10-one.conf",
            r#"{"cniVersion":"0.4.0","name":"one","type":"bridge","ipam":{"type":"host-local"}}"#,
        );
        let net = load_network(&d.settings).unwrap();
        assert_eq!(
            (net.name.as_str(), net.cni_version.as_str()),
            ("one", "0.4.0")
        );
        assert_eq!(net.plugins.len(), 1);
        let list: Value = serde_json::from_slice(&net.bytes).unwrap();
        assert_eq!(
            list,
            json!({"cniVersion":"0.4.0","name":"one","plugins":[
                {"cniVersion":"0.4.0","name":"one","type":"bridge","ipam":{"type":"host-local"}}]})
        );
        // The wrapped bytes parse back into the same network.
        let again = NetworkConfigList::from_list_bytes(&net.bytes, Path::new("")).unwrap();
        assert_eq!(again.plugins, net.plugins);
    }

    #[test]
    fn json_extension_accepts_list_or_single() {
        let d = dirs(&["bridge"]);
        write_conf(
            &d,
            "50.json",
            r#"{"cniVersions":["0.4.0","1.0.0","9.9.9"],"name":"j","plugins":[{"type":"bridge"}]}"#,
        );
        let net = load_network(&d.settings).unwrap();
        assert_eq!(
            (net.name.as_str(), net.cni_version.as_str()),
            ("j", "1.0.0")
        );
        write_conf(
            &d,
            "40.json",
            r#"{"cniVersion":"0.3.1","name":"s","type":"bridge"}"#,
        );
        assert_eq!(load_network(&d.settings).unwrap().name, "s");
    }

    #[test]
    fn no_config_explains_why() {
        let d = dirs(&["bridge"]);
        let err = load_network(&d.settings).unwrap_err();
        assert!(
            matches!(&err, CniError::NoConfig(m) if m.contains("no network config found")),
            "{err}"
        );

        write_conf(
            &d,
            "10-a.conflist",
            r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"calico"}]}"#,
        );
        write_conf(&d, "20-b.conf", "[]");
        let err = load_network(&d.settings).unwrap_err().to_string();
        assert!(
            err.contains("10-a.conflist: plugin binary \"calico\" not found in"),
            "{err}"
        );
        assert!(
            err.contains("20-b.conf: config is not a JSON object"),
            "{err}"
        );

        let mut gone = d.settings.clone();
        gone.conf_dir = gone.conf_dir.join("nope");
        let err = load_network(&gone).unwrap_err();
        assert!(
            matches!(&err, CniError::NoConfig(m) if m.contains("does not exist")),
            "{err}"
        );
    }

    #[test]
    fn rejects_bad_fields() {
        for bad in [
            r#"{"cniVersion":"1.0.0","plugins":[{"type":"a"}]}"#,
            r#"{"cniVersion":"1.0.0","name":"a/b","plugins":[{"type":"a"}]}"#,
            r#"{"cniVersion":"one","name":"n","plugins":[{"type":"a"}]}"#,
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#,
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../sbin/x"}]}"#,
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"a","capabilities":{"x":1}}]}"#,
            r#"{"cniVersion":"1.0.0","name":"n","disableCheck":3,"plugins":[{"type":"a"}]}"#,
        ] {
            let r = NetworkConfigList::from_list_bytes(bad.as_bytes(), Path::new("x"));
            assert!(matches!(r, Err(CniError::Invalid(_))), "{bad}: {r:?}");
        }
    }

    #[test]
    fn derive_injects_name_version_runtime_config_and_prev_result() {
        let net = NetworkConfigList::from_list_bytes(
            br#"{"cniVersion":"1.0.0","name":"k8s","plugins":[
                {"type":"portmap","cniVersion":"0.1.0","name":"old","snat":true,
                 "capabilities":{"portMappings":true,"bandwidth":false,"ipRanges":true}},
                {"type":"bridge","runtimeConfig":{"static":1}}]}"#,
            Path::new("x"),
        )
        .unwrap();
        let caps = json!({"portMappings":[{"hostPort":80,"containerPort":8080,"protocol":"tcp"}],
                          "bandwidth":{"ingressRate":1}})
        .as_object()
        .unwrap()
        .clone();
        let prev = json!({"cniVersion":"1.0.0","ips":[]});
        let got: Value =
            serde_json::from_slice(&net.plugins[0].derive(&net, Some(&prev), &caps).unwrap())
                .unwrap();
        assert_eq!(
            got,
            json!({"type":"portmap","cniVersion":"1.0.0","name":"k8s","snat":true,
                   "runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":8080,"protocol":"tcp"}]},
                   "prevResult":{"cniVersion":"1.0.0","ips":[]}})
        );
        let got: Value =
            serde_json::from_slice(&net.plugins[1].derive(&net, None, &caps).unwrap()).unwrap();
        assert_eq!(
            got,
            json!({"type":"bridge","cniVersion":"1.0.0","name":"k8s","runtimeConfig":{"static":1}})
        );
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("1.0.0"), Some((1, 0, 0)));
        assert_eq!(parse_version("0.3"), None);
        assert_eq!(parse_version("1.0.0.0"), None);
        assert!(version_at_least("0.4.0", (0, 4, 0)).unwrap());
        assert!(!version_at_least("0.3.1", (0, 4, 0)).unwrap());
        assert!(version_at_least("x", (0, 4, 0)).is_err());
    }

    #[test]
    fn loopback_is_a_valid_list() {
        let lo = loopback_network();
        let parsed = NetworkConfigList::from_list_bytes(&lo.bytes, Path::new("")).unwrap();
        assert_eq!(parsed, lo);
    }
}
