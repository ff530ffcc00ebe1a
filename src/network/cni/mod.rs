//! Our own libcni: the runtime side of the Container Network Interface.
//!
//! It finds the node's network config the way cri-dockerd does (first valid
//! file in the config dir), runs the plugin chain for ADD, DEL and CHECK as
//! the CNI spec (1.0/1.1) and Go libcni do, and keeps libcni's result cache
//! in libcni's format and place, so pods networked by cri-dockerd can be torn
//! down by us, and the other way round.
//!
//! # Rules kept here, not by callers
//!
//! - ADD runs the plugins in order, each getting the previous one's result as
//!   `prevResult` (lists of version 0.3.0 and later, which introduced
//!   chaining); the final result is cached.
//! - DEL runs them in reverse with the cached result as `prevResult`
//!   (version 0.4.0 and later) and then drops the cache entry. The reference
//!   plugins are idempotent, so DEL of a gone attachment succeeds.
//! - CHECK (0.4.0 and later, unless `disableCheck`) runs in order with the
//!   cached result.
//! - Operations on one container never overlap.
//!
//! A failed ADD is not undone here: as the spec says, the caller runs DEL.

mod bin_dirs;
mod cache;
mod config;
mod exec;
#[doc(hidden)]
pub mod fuzzing;
mod result;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

pub use cache::CachedAttachment;
pub use config::{
    LOOPBACK_NETWORK, NetworkConfigList, PluginConfig, load_network, loopback_network,
};
pub use result::{CniResult, Interface, IpConfig};

use config::version_at_least;
use exec::{CniCommand, Invocation};

/// Where CNI things live, and how long a plugin may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniSettings {
    /// Network config dir (`--cni-conf-dir`).
    pub conf_dir: PathBuf,
    /// Plugin binary dirs, searched in order (`--cni-bin-dir`).
    pub bin_dirs: Vec<PathBuf>,
    /// Result cache dir (`--cni-cache-dir`); files go in `results/` below.
    pub cache_dir: PathBuf,
    /// Limit for a single plugin invocation.
    pub plugin_timeout: Duration,
}

impl Default for CniSettings {
    /// cri-dockerd's defaults, and its 220 s network operation timeout.
    fn default() -> Self {
        Self {
            conf_dir: PathBuf::from("/etc/cni/net.d"),
            bin_dirs: vec![PathBuf::from("/opt/cni/bin")],
            cache_dir: PathBuf::from("/var/lib/cni/cache"),
            plugin_timeout: Duration::from_secs(220),
        }
    }
}

/// What went wrong in a CNI operation.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// No usable network config; the message says why (directory missing,
    /// each file's defect, plugin binaries not found).
    #[error("{0}")]
    NoConfig(String),
    /// A plugin failed. `code`, `msg` and `details` come from its CNI error
    /// JSON; when it printed none, `code` is 0, `msg` is its stderr (or
    /// stdout) and `details` its exit status.
    #[error("cni plugin {plugin} failed ({command}): {msg}{}", fmt_code_details(*.code, .details))]
    Plugin {
        /// Plugin type.
        plugin: String,
        /// CNI command (ADD, DEL, CHECK, VERSION).
        command: String,
        /// CNI error code (0 when the plugin gave none).
        code: u32,
        /// Error message.
        msg: String,
        /// Extra detail.
        details: String,
    },
    /// A plugin ran longer than the settings allow; it has been killed.
    #[error("cni plugin {plugin} timed out ({command}) after {after:?}")]
    Timeout {
        /// Plugin type.
        plugin: String,
        /// CNI command.
        command: String,
        /// The limit that was hit.
        after: Duration,
    },
    /// A file or process operation failed; `context` says which.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Bad input: a config, result or cache file that does not parse, or a
    /// runtime conf that breaks the spec's rules.
    #[error("{0}")]
    Invalid(String),
}

fn fmt_code_details(code: u32, details: &str) -> String {
    match (code, details.is_empty()) {
        (0, true) => String::new(),
        (0, false) => format!(" ({details})"),
        (_, true) => format!(" (code {code})"),
        (_, false) => format!(" (code {code}: {details})"),
    }
}

/// The per-attachment arguments of an operation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConf {
    /// Container (sandbox) id; `CNI_CONTAINERID`.
    pub container_id: String,
    /// Netns path; required for ADD and CHECK, may be absent for DEL.
    pub netns: Option<PathBuf>,
    /// Interface to create inside the container, e.g. `eth0`.
    pub ifname: String,
    /// `CNI_ARGS` pairs, e.g. `K8S_POD_NAME`.
    pub args: Vec<(String, String)>,
    /// Capability args (`portMappings`, `bandwidth`, `ipRanges`, ...); each
    /// plugin sees those it declares.
    pub capability_args: Map<String, Value>,
}

type LockMap = Mutex<HashMap<String, Arc<AsyncMutex<()>>>>;

/// The CNI client. Clones share the per-container locks.
#[derive(Debug, Clone)]
pub struct Cni {
    settings: Arc<CniSettings>,
    locks: Arc<LockMap>,
}

impl Cni {
    /// A client using `settings`.
    pub fn new(settings: CniSettings) -> Self {
        Self {
            settings: Arc::new(settings),
            locks: Arc::default(),
        }
    }

    /// The settings this client uses.
    pub fn settings(&self) -> &CniSettings {
        &self.settings
    }

    /// Attaches the container to the network and caches the result.
    pub async fn add(
        &self,
        net: &NetworkConfigList,
        shim: &RuntimeConf,
    ) -> Result<CniResult, CniError> {
        validate_network(net)?;
        validate_runtime_conf(shim, true)?;
        let _lock = self.lock_container(&shim.container_id).await;
        let chain = version_at_least(&net.cni_version, (0, 3, 0))?;
        let inv = invocation(CniCommand::Add, shim);

        let mut prev: Option<Value> = None;
        for plugin in &net.plugins {
            let stdin =
                plugin.derive(net, prev.as_ref().filter(|_| chain), &shim.capability_args)?;
            let stdout =
                exec::run_plugin(&self.settings, &plugin.plugin_type, &inv, &stdin).await?;
            prev = Some(add_result(&stdout, &net.cni_version, &plugin.plugin_type)?);
        }
        let raw =
            prev.ok_or_else(|| CniError::Invalid(format!("network {} has no plugins", net.name)))?;
        let result = CniResult::from_value(raw).map_err(|e| {
            CniError::Invalid(format!(
                "network {}: invalid final ADD result: {e}",
                net.name
            ))
        })?;

        cache::write(
            &self.settings.cache_dir,
            &CachedAttachment {
                network_name: net.name.clone(),
                container_id: shim.container_id.clone(),
                ifname: shim.ifname.clone(),
                netns: shim.netns.as_ref().map(|p| p.display().to_string()),
                config: net.bytes.clone(),
                cni_args: shim.args.clone(),
                capability_args: shim.capability_args.clone(),
                result: Some(result.clone()),
            },
        )?;
        Ok(result)
    }

    /// Detaches the container from the network and drops the cache entry.
    /// Safe to repeat.
    pub async fn del(&self, net: &NetworkConfigList, shim: &RuntimeConf) -> Result<(), CniError> {
        validate_network(net)?;
        validate_runtime_conf(shim, false)?;
        let _lock = self.lock_container(&shim.container_id).await;
        let cached = if version_at_least(&net.cni_version, (0, 4, 0))? {
            match cache::read(
                &self.settings.cache_dir,
                &net.name,
                &shim.container_id,
                &shim.ifname,
            ) {
                Ok(entry) => entry.and_then(|e| e.result),
                // A corrupt entry must not block teardown; the plugins cope
                // without prevResult and the entry goes away below.
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring unreadable cni cache entry");
                    None
                }
            }
        } else {
            None
        };
        self.run_del(net, shim, cached.as_ref()).await?;
        cache::remove(
            &self.settings.cache_dir,
            &net.name,
            &shim.container_id,
            &shim.ifname,
        )?;
        Ok(())
    }

    /// Detaches an attachment using only its cache entry: the config, args
    /// and result recorded at ADD. This tears down pods whose network config
    /// has since changed, and those set up by cri-dockerd. `netns` is the
    /// sandbox's namespace as the caller knows it now; without one, the
    /// cached netns is used only if it is a pinned file that still exists
    /// (see [`CachedAttachment::runtime_conf`]). `Ok(false)` when there is
    /// no entry.
    pub async fn del_cached(
        &self,
        network_name: &str,
        container_id: &str,
        ifname: &str,
        netns: Option<&Path>,
    ) -> Result<bool, CniError> {
        validate_key(network_name, container_id, ifname)?;
        let _lock = self.lock_container(container_id).await;
        let Some(entry) =
            cache::read(&self.settings.cache_dir, network_name, container_id, ifname)?
        else {
            return Ok(false);
        };
        let net = entry.network()?;
        validate_network(&net)?;
        let mut shim = entry.runtime_conf();
        if let Some(netns) = netns {
            shim.netns = Some(netns.to_path_buf());
        }
        validate_runtime_conf(&shim, false)?;
        let prev = if version_at_least(&net.cni_version, (0, 4, 0))? {
            entry.result.as_ref()
        } else {
            None
        };
        self.run_del(&net, &shim, prev).await?;
        cache::remove(&self.settings.cache_dir, network_name, container_id, ifname)?;
        Ok(true)
    }

    /// Asks every plugin whether the attachment is still as ADD left it.
    /// Does nothing for networks with `disableCheck` or before 0.4.0.
    pub async fn check(&self, net: &NetworkConfigList, shim: &RuntimeConf) -> Result<(), CniError> {
        validate_network(net)?;
        validate_runtime_conf(shim, true)?;
        if net.disable_check || !version_at_least(&net.cni_version, (0, 4, 0))? {
            return Ok(());
        }
        let _lock = self.lock_container(&shim.container_id).await;
        let cached = cache::read(
            &self.settings.cache_dir,
            &net.name,
            &shim.container_id,
            &shim.ifname,
        )?
        .and_then(|e| e.result);
        let prev = cached.map(|r| result::convert(&r.raw, &net.cni_version));
        let inv = invocation(CniCommand::Check, shim);
        for plugin in &net.plugins {
            let stdin = plugin.derive(net, prev.as_ref(), &shim.capability_args)?;
            exec::run_plugin(&self.settings, &plugin.plugin_type, &inv, &stdin).await?;
        }
        Ok(())
    }

    /// Removes what writes of the container's cache entries left half done
    /// when the shim died during them; returns how many files. For when
    /// the container's attachments are torn down.
    pub async fn remove_unfinished(&self, container_id: &str) -> Result<usize, CniError> {
        validate_container_id(container_id)?;
        let _lock = self.lock_container(container_id).await;
        cache::remove_unfinished(&self.settings.cache_dir, container_id)
    }

    /// The cache entry of one attachment, if any.
    pub fn cached(
        &self,
        network_name: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<CachedAttachment>, CniError> {
        validate_key(network_name, container_id, ifname)?;
        cache::read(&self.settings.cache_dir, network_name, container_id, ifname)
    }

    /// Every readable cache entry of a container, in file name order.
    pub fn cached_for_container(
        &self,
        container_id: &str,
    ) -> Result<Vec<CachedAttachment>, CniError> {
        validate_container_id(container_id)?;
        cache::scan(&self.settings.cache_dir, container_id)
    }

    async fn run_del(
        &self,
        net: &NetworkConfigList,
        shim: &RuntimeConf,
        cached: Option<&CniResult>,
    ) -> Result<(), CniError> {
        let prev = cached.map(|r| result::convert(&r.raw, &net.cni_version));
        let inv = invocation(CniCommand::Del, shim);
        for plugin in net.plugins.iter().rev() {
            let stdin = plugin.derive(net, prev.as_ref(), &shim.capability_args)?;
            exec::run_plugin(&self.settings, &plugin.plugin_type, &inv, &stdin).await?;
        }
        Ok(())
    }

    async fn lock_container(&self, container_id: &str) -> ContainerLock<'_> {
        let entry = {
            let mut map = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(map.entry(container_id.to_owned()).or_default())
        };
        // Built before waiting so that a cancelled wait still cleans up.
        let mut lock = ContainerLock {
            locks: &self.locks,
            key: container_id.to_owned(),
            entry,
            guard: None,
        };
        lock.guard = Some(Arc::clone(&lock.entry).lock_owned().await);
        lock
    }
}

/// Holds one container's operation lock; drops the map entry when no one
/// else holds or waits for it, so the map does not grow with every pod.
struct ContainerLock<'a> {
    locks: &'a LockMap,
    key: String,
    entry: Arc<AsyncMutex<()>>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Drop for ContainerLock<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        // Clones are only made under the map lock, so the count cannot grow
        // under us: two means the map's copy and ours.
        if Arc::strong_count(&self.entry) == 2
            && map
                .get(&self.key)
                .is_some_and(|e| Arc::ptr_eq(e, &self.entry))
        {
            map.remove(&self.key);
        }
    }
}

fn invocation(command: CniCommand, shim: &RuntimeConf) -> Invocation<'_> {
    Invocation {
        command,
        container_id: &shim.container_id,
        netns: shim.netns.as_deref(),
        ifname: &shim.ifname,
        args: &shim.args,
    }
}

/// Checks an ADD's stdout and fills in a missing `cniVersion` with the
/// config's, as libcni does for plugins that leave it out.
fn add_result(stdout: &[u8], version: &str, plugin: &str) -> Result<Value, CniError> {
    if stdout.iter().all(u8::is_ascii_whitespace) {
        return Err(CniError::Invalid(format!(
            "cni plugin {plugin} printed no ADD result"
        )));
    }
    let mut value: Value = serde_json::from_slice(stdout).map_err(|e| {
        CniError::Invalid(format!(
            "cni plugin {plugin}: ADD result is not valid JSON: {e}"
        ))
    })?;
    if value.is_null() {
        value = Value::Object(Map::new());
    }
    let obj = value.as_object_mut().ok_or_else(|| {
        CniError::Invalid(format!(
            "cni plugin {plugin}: ADD result is not a JSON object"
        ))
    })?;
    if obj
        .get("cniVersion")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        obj.insert("cniVersion".into(), Value::String(version.to_owned()));
    }
    Ok(value)
}

fn validate_network(net: &NetworkConfigList) -> Result<(), CniError> {
    validate_network_name(&net.name)?;
    if net.plugins.is_empty() {
        return Err(CniError::Invalid(format!(
            "network {} has no plugins",
            net.name
        )));
    }
    Ok(())
}

fn validate_key(network_name: &str, container_id: &str, ifname: &str) -> Result<(), CniError> {
    validate_network_name(network_name)?;
    validate_container_id(container_id)?;
    validate_ifname(ifname)
}

/// Network names become part of a cache file name.
fn validate_network_name(name: &str) -> Result<(), CniError> {
    if name.is_empty() || name.contains('/') || name.contains('\0') {
        return Err(CniError::Invalid(format!("invalid network name {name:?}")));
    }
    Ok(())
}

/// The spec's container id rule: alphanumeric, then `[A-Za-z0-9_.-]`.
fn validate_container_id(id: &str) -> Result<(), CniError> {
    let mut chars = id.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        return Err(CniError::Invalid(format!("invalid container id {id:?}")));
    }
    Ok(())
}

/// The kernel's interface name rules, as libcni checks them.
fn validate_ifname(name: &str) -> Result<(), CniError> {
    let why = if name.is_empty() {
        "is empty"
    } else if name.len() > 15 {
        "is longer than 15 bytes"
    } else if name == "." || name == ".." {
        "is . or .."
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        "contains / or : or whitespace"
    } else {
        return Ok(());
    };
    Err(CniError::Invalid(format!("interface name {name:?} {why}")))
}

fn validate_runtime_conf(shim: &RuntimeConf, needs_netns: bool) -> Result<(), CniError> {
    validate_container_id(&shim.container_id)?;
    validate_ifname(&shim.ifname)?;
    match &shim.netns {
        None if needs_netns => {
            return Err(CniError::Invalid(format!(
                "container {}: netns path is required",
                shim.container_id
            )));
        }
        // The path is stored in the JSON cache, so it must be text.
        Some(p) if p.to_str().is_none_or(str::is_empty) => {
            return Err(CniError::Invalid(format!(
                "invalid netns path {}",
                p.display()
            )));
        }
        _ => {}
    }
    for (k, v) in &shim.args {
        // Plugins split CNI_ARGS on ';' and then on '=', expecting two parts.
        if k.is_empty() || k.contains(['=', ';']) || v.contains(['=', ';']) {
            return Err(CniError::Invalid(format!(
                "invalid CNI_ARGS pair {k:?}={v:?}"
            )));
        }
    }
    Ok(())
}
