//! Facts about the Docker Engine the shim talks to, learned once at start:
//! its version, negotiated API version, cgroup driver, OCI runtimes, data
//! directory, image store, the directory holding the images and whether it
//! injects CDI devices; and how to read a few facts off what Docker reports.
//!
//! They sit here, below every domain module, so the code that translates
//! CRI requests and the code that reports status read the same facts
//! without importing each other or the shared state.

use bollard::models::{SystemInfo, SystemInfoCgroupDriverEnum};

pub use crate::api::CgroupDriver;

use crate::docker::DockerApi;
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

/// Whether Docker can inject CDI devices (device requests with the `cdi`
/// driver), read off the negotiated API version and `docker info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CdiSupport {
    /// The API is older than 1.44, which first carries CDI device requests
    /// (Docker 25).
    Unsupported,
    /// Docker reports no CDI spec directory: CDI is off (Docker 25 to 27
    /// keep it behind the `cdi` feature; 28 turns it on by default).
    Off,
    /// CDI is on; Docker reads the specs in these directories.
    On(Vec<String>),
    /// The API carries CDI requests but Docker does not say whether CDI is
    /// on (`CDISpecDirs` is missing from `docker info`); Docker decides at
    /// container start.
    Unreported,
}

impl CdiSupport {
    /// Reads the support off the negotiated API version and the spec
    /// directories `docker info` lists (an empty list means CDI is off).
    pub fn of(api: (u32, u32), spec_dirs: Option<&[String]>) -> Self {
        match spec_dirs {
            _ if api < (1, 44) => CdiSupport::Unsupported,
            None => CdiSupport::Unreported,
            Some([]) => CdiSupport::Off,
            Some(dirs) => CdiSupport::On(dirs.to_vec()),
        }
    }

    /// A word for status output: `on`, `off`, `unsupported` or `unknown`.
    pub fn state(&self) -> &'static str {
        match self {
            CdiSupport::Unsupported => "unsupported",
            CdiSupport::Off => "off",
            CdiSupport::On(_) => "on",
            CdiSupport::Unreported => "unknown",
        }
    }

    /// The spec directories Docker reads, when it says.
    pub fn spec_dirs(&self) -> &[String] {
        match self {
            CdiSupport::On(dirs) => dirs,
            _ => &[],
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
    /// Whether Docker can make a bind mount read-only recursively: it takes
    /// the request from API 1.44 on, and the kernel needs `mount_setattr`
    /// (Linux 5.12).
    pub recursive_read_only: bool,
    /// Whether Docker injects CDI devices, and from which spec directories.
    pub cdi: CdiSupport,
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
        let kernel = info
            .kernel_version
            .as_deref()
            .map(parse_api_version)
            .unwrap_or((0, 0));
        let recursive_read_only = parse_api_version(&api_version) >= (1, 44) && kernel >= (5, 12);
        let cdi = CdiSupport::of(
            parse_api_version(&api_version),
            info.cdi_spec_dirs.as_deref(),
        );
        Ok(Self {
            recursive_read_only,
            cdi,
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
        })
    }
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
pub fn parse_api_version(version: &str) -> (u32, u32) {
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
    use super::*;

    #[test]
    fn api_and_kernel_versions_parse_to_major_and_minor() {
        assert_eq!(parse_api_version("1.44"), (1, 44));
        assert_eq!(parse_api_version("6.1.0-13-amd64"), (6, 1));
        assert_eq!(parse_api_version("5.12+rc1"), (5, 12));
        assert_eq!(parse_api_version("garbage"), (1, 41));
    }

    #[test]
    fn cdi_support_follows_the_api_and_the_reported_spec_dirs() {
        let dirs = vec!["/etc/cdi".to_string(), "/var/run/cdi".to_string()];
        assert_eq!(
            CdiSupport::of((1, 41), Some(&dirs)),
            CdiSupport::Unsupported
        );
        assert_eq!(CdiSupport::of((1, 44), None), CdiSupport::Unreported);
        assert_eq!(CdiSupport::of((1, 51), Some(&[])), CdiSupport::Off);
        let on = CdiSupport::of((1, 51), Some(&dirs));
        assert_eq!(on.spec_dirs(), dirs.as_slice());
        assert_eq!(on.state(), "on");
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
