//! The state every CRI handler shares: the Docker client, the settings and
//! the facts about Docker and the host learned once at start.

use std::sync::Arc;
use std::time::Duration;

use bollard::models::SystemInfoCgroupDriverEnum;

use crate::config::Config;
use crate::docker::DockerApi;
use crate::error::{DockerContext, Error, Result};
use crate::image::pause::PauseImage;
use crate::store::{Entry, Kind, Lookup};

/// Settings the handlers need, taken from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// oom_score_adj for pause containers; `None` when the host does not let
    /// us lower scores.
    pub sandbox_oom_score_adj: Option<i64>,
    /// True when the shim may ask for negative oom_score_adj values.
    pub may_lower_oom_score: bool,
    /// Docker log configuration of application containers: a driver the
    /// shim can read back, with a size bound.
    pub log_config: bollard::models::HostConfigLogConfig,
    /// The negotiated Docker Engine API version.
    pub docker_api: (u32, u32),
}

impl Settings {
    /// Fails clearly when a feature needs a newer Docker API than the
    /// engine speaks, instead of sending a field Docker would ignore.
    pub fn require_api(&self, needed: (u32, u32), what: &str) -> crate::error::Result<()> {
        if self.docker_api >= needed {
            return Ok(());
        }
        Err(crate::error::Error::FailedPrecondition(format!(
            "{what} need Docker API {}.{} or newer; this Docker speaks {}.{}",
            needed.0, needed.1, self.docker_api.0, self.docker_api.1
        )))
    }
}

/// The cgroup driver Docker uses, as the CRI names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupDriver {
    /// Docker manages cgroups through cgroupfs.
    Cgroupfs,
    /// Docker manages cgroups through systemd.
    Systemd,
}

/// What Docker told us about itself at start. None of it changes while the
/// daemon runs.
#[derive(Debug, Clone)]
pub struct HostFacts {
    /// Docker Engine version, e.g. `20.10.24`.
    pub docker_version: String,
    /// Negotiated Engine API version, e.g. `1.41`.
    pub api_version: String,
    /// Docker's cgroup driver.
    pub cgroup_driver: CgroupDriver,
    /// cgroup version (1 or 2).
    pub cgroup_version: String,
    /// Docker's default OCI runtime (usually `runc`).
    pub default_runtime: String,
    /// All OCI runtimes Docker knows; the CRI runtime handlers.
    pub runtimes: Vec<String>,
    /// Docker's data directory.
    pub docker_root_dir: String,
    /// Docker's default log driver.
    pub log_driver: String,
    /// Whether Docker can make a bind mount read-only recursively: it takes
    /// the request from API 1.44 on, and the kernel needs `mount_setattr`
    /// (Linux 5.12).
    pub recursive_read_only: bool,
}

impl HostFacts {
    /// Asks Docker.
    pub async fn discover(docker: &dyn DockerApi, api_version: String) -> Result<Self> {
        let version = docker.version().await.context(|| "docker version".into())?;
        let info = docker.info().await.context(|| "docker info".into())?;
        let cgroup_driver = match info.cgroup_driver {
            Some(SystemInfoCgroupDriverEnum::SYSTEMD) => CgroupDriver::Systemd,
            _ => CgroupDriver::Cgroupfs,
        };
        let mut runtimes: Vec<String> = info
            .runtimes
            .map(|r| r.into_keys().collect())
            .unwrap_or_default();
        runtimes.sort();
        let kernel = info
            .kernel_version
            .as_deref()
            .map(parse_api_version)
            .unwrap_or((0, 0));
        let recursive_read_only = parse_api_version(&api_version) >= (1, 44) && kernel >= (5, 12);
        Ok(Self {
            recursive_read_only,
            docker_version: version.version.unwrap_or_default(),
            api_version,
            cgroup_driver,
            cgroup_version: info
                .cgroup_version
                .map(|v| v.to_string())
                .unwrap_or_default(),
            default_runtime: info.default_runtime.unwrap_or_else(|| "runc".into()),
            runtimes,
            docker_root_dir: info
                .docker_root_dir
                .unwrap_or_else(|| "/var/lib/docker".into()),
            log_driver: info.logging_driver.unwrap_or_default(),
        })
    }
}

/// Shared handler state.
pub struct Runtime {
    /// The Docker Engine.
    pub docker: Arc<dyn DockerApi>,
    /// Settings from the command line.
    pub settings: Settings,
    /// Facts about Docker.
    pub host: HostFacts,
    /// The pause image in use.
    pub pause: PauseImage,
    /// Writers of the containers' CRI log files.
    pub logs: Arc<crate::logs::LogWriters>,
    /// The live view of the shim's sandboxes and containers.
    pub view: Arc<crate::store::View>,
    /// Kernel statistics of containers and pods.
    pub stats: crate::stats::Stats,
    /// Pod networking (Docker's bridge or CNI).
    pub network: Arc<crate::network::Network>,
    /// The command line, for verbose status.
    pub config: Config,
}

impl Runtime {
    /// Builds the state from the configuration and a connected Docker.
    pub async fn new(
        config: Config,
        docker: Arc<dyn DockerApi>,
        api_version: String,
    ) -> Result<Self> {
        let host = HostFacts::discover(docker.as_ref(), api_version).await?;
        let may_lower_oom_score = has_cap_sys_resource();
        if !may_lower_oom_score {
            tracing::warn!(
                "this host withholds CAP_SYS_RESOURCE: negative oom_score_adj values are raised to 0"
            );
        }
        let log_config = bollard::models::HostConfigLogConfig {
            typ: Some(config.docker_log_driver.as_str().to_string()),
            config: Some(std::collections::HashMap::from([
                ("max-size".to_string(), config.docker_log_max_size.clone()),
                (
                    "max-file".to_string(),
                    config.docker_log_max_files.to_string(),
                ),
            ])),
        };
        let settings = Settings {
            sandbox_oom_score_adj: Some(config.sandbox_oom_score_adj)
                .filter(|adj| *adj >= 0 || may_lower_oom_score),
            may_lower_oom_score,
            log_config,
            docker_api: parse_api_version(&host.api_version),
        };
        let network =
            Arc::new(crate::network::Network::new(&config).map_err(Error::InvalidArgument)?);
        network.watch();
        let pause = PauseImage::new(
            config.pod_infra_container_image.clone(),
            Duration::from_secs(config.pod_infra_pull_timeout),
        );
        let logs = Arc::new(crate::logs::LogWriters::new(docker.clone()));
        Ok(Self {
            view: Arc::new(crate::store::View::new(docker.clone(), logs.clone())),
            logs,
            stats: crate::stats::Stats::new(&host.docker_root_dir),
            network,
            docker,
            settings,
            host,
            pause,
            config,
        })
    }
}

/// Whether this process's capability bounding set holds CAP_SYS_RESOURCE,
/// which Docker's runc needs to lower a container's oom_score_adj.
fn has_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|bits| bits & (1 << CAP_SYS_RESOURCE) != 0)
}

impl Runtime {
    /// Finds a container by id (or unique prefix) that must be of `kind` (a
    /// sandbox or an application container), from the live view; an id the
    /// view does not hold is asked of Docker once. Anything else is reported
    /// as not found, named as `what`.
    pub async fn find(&self, id: &str, kind: Kind, what: &str) -> Result<Entry> {
        if id.is_empty() {
            return Err(Error::InvalidArgument(format!("{what} id is required")));
        }
        let not_found = || Error::NotFound(format!("{what} {id:?} not found"));
        let entry = match self.view.lookup(id) {
            Lookup::Found(entry) => Some(entry),
            Lookup::Ambiguous => {
                return Err(Error::InvalidArgument(format!(
                    "{what} id prefix {id:?} is ambiguous"
                )));
            }
            Lookup::Missing => self
                .view
                .refresh(id)
                .await
                .context(|| format!("inspect {what} {id}"))?,
        };
        entry.filter(|e| e.kind == kind).ok_or_else(not_found)
    }

    /// Re-reads a container the shim just changed, so its next answer shows
    /// the change; a failure only delays that to Docker's event.
    pub async fn refresh(&self, id: &str) {
        if let Err(err) = self.view.refresh(id).await {
            tracing::warn!(container = id, error = %err, "cannot inspect after a change");
        }
    }
}

/// Whether Docker reports the container running.
pub fn is_running(inspected: &bollard::models::ContainerInspectResponse) -> bool {
    inspected
        .state
        .as_ref()
        .and_then(|s| s.running)
        .unwrap_or(false)
}

/// `1.41` as (1, 41), and a kernel's `6.1.0-13-amd64` as (6, 1); an
/// unreadable version counts as the oldest supported API.
fn parse_api_version(version: &str) -> (u32, u32) {
    let number = |s: &str| -> Option<u32> {
        let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        s[..digits].parse().ok()
    };
    let mut parts = version.split('.');
    parts
        .next()
        .and_then(number)
        .zip(parts.next().and_then(number))
        .unwrap_or((1, 41))
}

#[cfg(test)]
mod tests {
    use super::parse_api_version;

    #[test]
    fn api_and_kernel_versions_parse_to_major_and_minor() {
        assert_eq!(parse_api_version("1.44"), (1, 44));
        assert_eq!(parse_api_version("6.1.0-13-amd64"), (6, 1));
        assert_eq!(parse_api_version("5.12+rc1"), (5, 12));
        assert_eq!(parse_api_version("garbage"), (1, 41));
    }
}
