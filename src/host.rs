//! Facts about the Docker Engine the shim talks to, learned once at start:
//! its version, negotiated API version, cgroup driver, OCI runtimes, data
//! directory, image store, the directory holding the images and what it can
//! do ([`crate::engine`]), and whether this process may lower oom scores;
//! and how to read a few facts off what Docker reports.
//!
//! They sit here, below every domain module, so the code that translates
//! CRI requests and the code that reports status read the same facts
//! without importing each other or the shared state.

use std::sync::Arc;
use std::time::Duration;

use bollard::models::{SystemInfo, SystemInfoCgroupDriverEnum};

pub use crate::api::CgroupDriver;

use crate::docker::DockerApi;
use crate::engine::{ApiVersion, EngineFeatures};
use crate::error::{DockerContext, Error, Result};

/// Where Docker keeps images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageStore {
    /// Docker's own store: layers of a graph driver (overlay2) under its data
    /// root.
    Classic,
    /// The containerd image store: content and snapshots in containerd,
    /// unpacked by the named snapshotter.
    Containerd {
        /// The snapshotter, e.g. `overlayfs`.
        snapshotter: String,
    },
}

/// The driver status Docker reports when a containerd snapshotter holds the
/// images.
const SNAPSHOTTER_DRIVER_TYPE: &str = "io.containerd.snapshotter.v1";

impl ImageStore {
    /// The store `docker info` describes: its `DriverStatus` names the
    /// snapshotter type when the containerd store is on, and `Driver` is
    /// then the snapshotter.
    pub fn of(info: &SystemInfo) -> Self {
        let snapshotter = info
            .driver_status
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|pair| {
                pair.first().map(String::as_str) == Some("driver-type")
                    && pair.get(1).map(String::as_str) == Some(SNAPSHOTTER_DRIVER_TYPE)
            });
        match (snapshotter, info.driver.as_deref()) {
            (true, Some(driver)) if !driver.is_empty() => ImageStore::Containerd {
                snapshotter: driver.to_string(),
            },
            _ => ImageStore::Classic,
        }
    }
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
    /// The image store Docker uses.
    pub image_store: ImageStore,
    /// The directory whose filesystem holds the images and the containers'
    /// writable layers: Docker's data directory for the classic store, the
    /// snapshotter's directory in containerd for the containerd store.
    pub image_fs_dir: String,
    /// Docker's default log driver.
    pub log_driver: String,
    /// What the engine can do (mount options, image mounts, CDI).
    pub features: EngineFeatures,
    /// True when this process may ask for negative oom_score_adj values:
    /// its capability bounding set holds CAP_SYS_RESOURCE.
    pub may_lower_oom_score: bool,
}

impl HostFacts {
    /// Asks Docker.
    pub async fn discover(docker: &dyn DockerApi, api_version: String) -> Result<Self> {
        let version = docker.version().await.context(|| "docker version".into())?;
        let info = docker.info().await.context(|| "docker info".into())?;
        let docker_root_dir = info
            .docker_root_dir
            .clone()
            .unwrap_or_else(|| "/var/lib/docker".into());
        let image_store = ImageStore::of(&info);
        let image_fs_dir = image_fs_dir(&info, &image_store, &docker_root_dir).await?;
        let cgroup_driver = match info.cgroup_driver {
            Some(SystemInfoCgroupDriverEnum::SYSTEMD) => CgroupDriver::Systemd,
            _ => CgroupDriver::Cgroupfs,
        };
        let mut runtimes: Vec<String> = info
            .runtimes
            .map(|r| r.into_keys().collect())
            .unwrap_or_default();
        runtimes.sort();
        let features = EngineFeatures::new(
            ApiVersion::parse(&api_version),
            info.kernel_version.as_deref().unwrap_or_default(),
            info.cdi_spec_dirs.as_deref(),
        );
        Ok(Self {
            features,
            docker_version: version.version.unwrap_or_default(),
            api_version,
            cgroup_driver,
            cgroup_version: info
                .cgroup_version
                .map(|v| v.to_string())
                .unwrap_or_default(),
            default_runtime: info.default_runtime.unwrap_or_else(|| "runc".into()),
            runtimes,
            docker_root_dir,
            image_store,
            image_fs_dir,
            log_driver: info.logging_driver.unwrap_or_default(),
            may_lower_oom_score: has_cap_sys_resource(),
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

/// Where the images are, for the store in use. For the containerd store,
/// only containerd knows its snapshotter's directory; Docker names the
/// containerd it uses (API 1.46 on). Not knowing it is an error: the
/// kubelet's image garbage collection would read the wrong filesystem.
async fn image_fs_dir(
    info: &SystemInfo,
    store: &ImageStore,
    docker_root_dir: &str,
) -> Result<String> {
    let ImageStore::Containerd { snapshotter } = store else {
        return Ok(docker_root_dir.to_string());
    };
    let address = info
        .containerd
        .as_ref()
        .and_then(|c| c.address.clone())
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            Error::Internal(
                "docker uses the containerd image store but does not say which containerd (API 1.46 or newer needed)".into(),
            )
        })?;
    crate::containerd::snapshotter_root(&address, snapshotter)
        .await
        .map_err(|e| {
            Error::Internal(format!(
                "where the containerd image store keeps its images: {e}"
            ))
        })
}

/// How long an answer of Docker's `/version` is fresh. The kubelet asks
/// `Version` about once a second and Docker answers slowly when busy; its
/// version changes only across a restart, which this bounds how late the
/// shim reports (plus the one call that starts the refresh).
pub const DOCKER_VERSION_TTL: Duration = Duration::from_secs(10);
/// How long an answer is given at all. Between the TTL and this age the
/// answer is given at once while Docker is asked again behind it, so a
/// busy dockerd's latency does not reach the kubelet's `Version` calls;
/// past it a call waits for Docker, so one that stopped answering shows.
pub const DOCKER_VERSION_MAX_AGE: Duration = Duration::from_secs(60);

/// Docker's version string, asked of Docker at most once per
/// [`DOCKER_VERSION_TTL`] and refreshed behind the callers' backs; callers
/// arriving while it is being asked wait for that one answer instead of
/// asking again.
#[derive(Default)]
pub struct DockerVersion {
    inner: Arc<VersionCache>,
}

#[derive(Default)]
struct VersionCache {
    last: std::sync::Mutex<Option<(tokio::time::Instant, String)>>,
    /// Held while Docker is asked: one question at a time.
    asking: tokio::sync::Mutex<()>,
}

impl DockerVersion {
    /// Docker's version: the last answer while it is under
    /// [`DOCKER_VERSION_MAX_AGE`] (asking again behind it once past the
    /// TTL), else Docker's answer now.
    pub async fn get(&self, docker: &Arc<dyn DockerApi>) -> Result<String> {
        if let Some((age, version)) = self.inner.cached()
            && age < DOCKER_VERSION_MAX_AGE
        {
            if age >= DOCKER_VERSION_TTL {
                let (inner, docker) = (self.inner.clone(), docker.clone());
                tokio::spawn(async move {
                    if let Err(err) = inner.ask(docker.as_ref()).await {
                        tracing::debug!(error = %err, "cannot refresh Docker's version");
                    }
                });
            }
            return Ok(version);
        }
        self.inner.ask(docker.as_ref()).await
    }
}

impl VersionCache {
    /// The last answer and its age.
    fn cached(&self) -> Option<(Duration, String)> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.as_ref()
            .map(|(at, version)| (at.elapsed(), version.clone()))
    }

    /// Asks Docker, unless another caller got a fresh answer while this
    /// one waited its turn.
    async fn ask(&self, docker: &dyn DockerApi) -> Result<String> {
        let _turn = self.asking.lock().await;
        if let Some((age, version)) = self.cached()
            && age < DOCKER_VERSION_TTL
        {
            return Ok(version);
        }
        let version = docker
            .version()
            .await
            .context(|| "docker version".into())?
            .version
            .unwrap_or_default();
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((tokio::time::Instant::now(), version.clone()));
        Ok(version)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::fake::{Call, FakeDocker};

    #[tokio::test(start_paused = true)]
    async fn docker_version_is_asked_once_per_ttl_and_shared_by_concurrent_callers() {
        let fake = Arc::new(FakeDocker::new());
        let docker: Arc<dyn DockerApi> = fake.clone();
        let cache = DockerVersion::default();
        let asked = || {
            fake.calls()
                .iter()
                .filter(|c| matches!(c, Call::Version))
                .count()
        };
        let (a, b) = tokio::join!(cache.get(&docker), cache.get(&docker));
        assert_eq!(
            (a.unwrap(), b.unwrap()),
            ("20.10.24".into(), "20.10.24".into())
        );
        assert_eq!(asked(), 1);
        tokio::time::advance(DOCKER_VERSION_TTL - Duration::from_millis(1)).await;
        cache.get(&docker).await.unwrap();
        assert_eq!(asked(), 1, "reused while fresh");

        // Past the TTL: answered from the last answer, Docker asked behind
        // it, once however many calls arrive meanwhile.
        tokio::time::advance(Duration::from_millis(1)).await;
        let (a, b) = tokio::join!(cache.get(&docker), cache.get(&docker));
        assert_eq!(
            (a.unwrap(), b.unwrap()),
            ("20.10.24".into(), "20.10.24".into())
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(asked(), 2, "refreshed once behind the callers");
        cache.get(&docker).await.unwrap();
        tokio::task::yield_now().await;
        assert_eq!(asked(), 2, "fresh again after the refresh");

        // Past the longest age: the call waits for Docker.
        tokio::time::advance(DOCKER_VERSION_MAX_AGE).await;
        assert_eq!(cache.get(&docker).await.unwrap(), "20.10.24");
        assert_eq!(asked(), 3, "asked before answering once too old");
        tokio::task::yield_now().await;
        assert_eq!(asked(), 3);
    }

    #[test]
    fn the_image_store_is_read_off_docker_info() {
        let classic = SystemInfo {
            driver: Some("overlay2".into()),
            driver_status: Some(vec![vec!["Backing Filesystem".into(), "extfs".into()]]),
            ..Default::default()
        };
        assert_eq!(ImageStore::of(&classic), ImageStore::Classic);
        let containerd = SystemInfo {
            driver: Some("overlayfs".into()),
            driver_status: Some(vec![vec![
                "driver-type".into(),
                SNAPSHOTTER_DRIVER_TYPE.into(),
            ]]),
            ..Default::default()
        };
        assert_eq!(
            ImageStore::of(&containerd),
            ImageStore::Containerd {
                snapshotter: "overlayfs".into()
            }
        );
    }
}
