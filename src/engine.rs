//! What the Docker Engine the shim talks to can do, decided once at start
//! from its negotiated API version, the kernel it runs on and `docker
//! info`. Every "can this engine do X" question is answered here, so the
//! version quirks live in one place, each with its test per engine version;
//! the code that translates CRI requests asks [`EngineFeatures`] instead of
//! comparing versions.

use std::fmt;

use crate::error::{Error, Result};

/// A Docker Engine API version, e.g. 1.44; ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    /// Always 1 so far.
    pub major: u32,
    /// The number that grows with each Docker release.
    pub minor: u32,
}

impl ApiVersion {
    /// The oldest API the shim speaks: Docker 20.10's (the client refuses
    /// an older engine).
    pub const MIN: ApiVersion = ApiVersion::new(
        crate::docker::client::MIN_API_VERSION.0 as u32,
        crate::docker::client::MIN_API_VERSION.1 as u32,
    );

    /// `major.minor`.
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// `1.44` (or `1.44.x`); an unreadable version counts as the oldest the
    /// shim speaks.
    pub fn parse(version: &str) -> Self {
        let (major, minor) = leading_pair(version).unwrap_or((Self::MIN.major, Self::MIN.minor));
        Self::new(major, minor)
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The first two dot-separated numbers of a version, each read up to its
/// first non-digit: `6.1.0-13-amd64` is (6, 1), `5.12+rc1` is (5, 12).
fn leading_pair(version: &str) -> Option<(u32, u32)> {
    let number = |s: &str| -> Option<u32> {
        let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        s[..digits].parse().ok()
    };
    let mut parts = version.split('.');
    parts
        .next()
        .and_then(number)
        .zip(parts.next().and_then(number))
}

/// Something a CRI request may ask for that older engines lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Read-only bind mounts that stay non-recursive
    /// (`BindOptions.ReadOnlyNonRecursive`, API 1.44): from 1.44 Docker
    /// makes a plain read-only bind recursive.
    ReadOnlyNonRecursive,
    /// Recursive read-only bind mounts (`ReadOnlyForceRecursive`, API 1.44),
    /// which also need the kernel's `mount_setattr` (Linux 5.12).
    RecursiveReadOnly,
    /// Image volumes as Docker image mounts (API 1.48, Docker 28).
    ImageMounts,
    /// A sub-path of an image mount (API 1.49).
    ImageMountSubpaths,
    /// Device requests with the `cdi` driver (API 1.44, Docker 25); whether
    /// CDI is on is [`CdiSupport`]'s question.
    CdiDeviceRequests,
}

impl Feature {
    /// The oldest API that carries it.
    pub fn min_api(self) -> ApiVersion {
        match self {
            Feature::ReadOnlyNonRecursive
            | Feature::RecursiveReadOnly
            | Feature::CdiDeviceRequests => ApiVersion::new(1, 44),
            Feature::ImageMounts => ApiVersion::new(1, 48),
            Feature::ImageMountSubpaths => ApiVersion::new(1, 49),
        }
    }

    /// Its name in messages ("... need Docker API 1.44 or newer").
    pub fn name(self) -> &'static str {
        match self {
            Feature::ReadOnlyNonRecursive => "non-recursive read-only mounts",
            Feature::RecursiveReadOnly => "recursive read-only mounts",
            Feature::ImageMounts => "image volumes",
            Feature::ImageMountSubpaths => "image volume sub-paths",
            Feature::CdiDeviceRequests => "CDI devices",
        }
    }
}

/// The kernel `mount_setattr` first came with, which recursive read-only
/// mounts need.
const MOUNT_SETATTR_KERNEL: (u32, u32) = (5, 12);

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
    pub fn of(api: ApiVersion, spec_dirs: Option<&[String]>) -> Self {
        match spec_dirs {
            _ if api < Feature::CdiDeviceRequests.min_api() => CdiSupport::Unsupported,
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

/// What the engine can do; none of it changes while the daemon runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineFeatures {
    api: ApiVersion,
    kernel: (u32, u32),
    cdi: CdiSupport,
}

impl EngineFeatures {
    /// From the negotiated API version, the kernel version `docker info`
    /// reports, and the CDI spec directories it lists (if it lists any).
    pub fn new(api: ApiVersion, kernel_version: &str, cdi_spec_dirs: Option<&[String]>) -> Self {
        Self {
            api,
            kernel: leading_pair(kernel_version).unwrap_or((0, 0)),
            cdi: CdiSupport::of(api, cdi_spec_dirs),
        }
    }

    /// The negotiated API version.
    pub fn api(&self) -> ApiVersion {
        self.api
    }

    /// Whether the engine (and, for recursive read-only mounts, the kernel)
    /// can do `feature`.
    pub fn has(&self, feature: Feature) -> bool {
        self.api >= feature.min_api()
            && (feature != Feature::RecursiveReadOnly || self.kernel >= MOUNT_SETATTR_KERNEL)
    }

    /// Fails clearly when the engine cannot do `feature`, instead of sending
    /// a field Docker would ignore.
    pub fn require(&self, feature: Feature) -> Result<()> {
        if self.has(feature) {
            return Ok(());
        }
        if self.api >= feature.min_api() {
            let (major, minor) = MOUNT_SETATTR_KERNEL;
            return Err(Error::FailedPrecondition(format!(
                "{} need Linux {major}.{minor} or newer; this kernel is {}.{}",
                feature.name(),
                self.kernel.0,
                self.kernel.1
            )));
        }
        Err(Error::FailedPrecondition(format!(
            "{} need Docker API {} or newer; this Docker speaks {}",
            feature.name(),
            feature.min_api(),
            self.api
        )))
    }

    /// Whether Docker injects CDI devices, and from where.
    pub fn cdi(&self) -> &CdiSupport {
        &self.cdi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engines the test command runs: API, a kernel, CDI spec dirs.
    fn engine(api: &str) -> EngineFeatures {
        let dirs = vec!["/etc/cdi".to_string()];
        EngineFeatures::new(ApiVersion::parse(api), "6.1.0-13-amd64", Some(&dirs))
    }

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(ApiVersion::parse("1.44"), ApiVersion::new(1, 44));
        assert_eq!(ApiVersion::parse("1.51.0"), ApiVersion::new(1, 51));
        assert_eq!(ApiVersion::parse("garbage"), ApiVersion::MIN);
        assert!(ApiVersion::new(1, 9) < ApiVersion::new(1, 41));
        assert_eq!(ApiVersion::new(1, 44).to_string(), "1.44");
        assert_eq!(leading_pair("5.12+rc1"), Some((5, 12)));
    }

    #[test]
    fn docker_20_10_has_none_of_the_newer_features() {
        let e = engine("1.41");
        for feature in [
            Feature::ReadOnlyNonRecursive,
            Feature::RecursiveReadOnly,
            Feature::ImageMounts,
            Feature::ImageMountSubpaths,
            Feature::CdiDeviceRequests,
        ] {
            assert!(!e.has(feature), "{feature:?}");
        }
        assert_eq!(e.cdi(), &CdiSupport::Unsupported);
        let err = e.require(Feature::RecursiveReadOnly).unwrap_err();
        assert_eq!(
            err.to_string(),
            "recursive read-only mounts need Docker API 1.44 or newer; this Docker speaks 1.41"
        );
    }

    #[test]
    fn docker_26_has_the_mount_options_and_cdi_but_no_image_mounts() {
        let e = engine("1.45");
        assert!(e.has(Feature::ReadOnlyNonRecursive));
        assert!(e.has(Feature::RecursiveReadOnly));
        assert!(e.has(Feature::CdiDeviceRequests));
        assert!(!e.has(Feature::ImageMounts));
        assert!(!e.has(Feature::ImageMountSubpaths));
        assert_eq!(e.cdi().state(), "on");
    }

    #[test]
    fn docker_28_and_29_have_everything() {
        for api in ["1.51", "1.56"] {
            let e = engine(api);
            assert!(e.has(Feature::ImageMounts) && e.has(Feature::ImageMountSubpaths));
            assert!(e.require(Feature::ImageMountSubpaths).is_ok());
        }
        // Docker 28.0 (API 1.48) mounts images, without sub-paths.
        let e = engine("1.48");
        assert!(e.has(Feature::ImageMounts) && !e.has(Feature::ImageMountSubpaths));
    }

    #[test]
    fn recursive_read_only_also_needs_linux_5_12() {
        let old_kernel = EngineFeatures::new(ApiVersion::new(1, 51), "5.10.0-28-amd64", None);
        assert!(!old_kernel.has(Feature::RecursiveReadOnly));
        assert!(old_kernel.has(Feature::ReadOnlyNonRecursive));
        let err = old_kernel.require(Feature::RecursiveReadOnly).unwrap_err();
        assert!(err.to_string().contains("Linux 5.12"), "{err}");
    }

    #[test]
    fn cdi_support_follows_the_api_and_the_spec_dirs() {
        let dirs = vec!["/etc/cdi".to_string()];
        assert_eq!(
            CdiSupport::of(ApiVersion::new(1, 41), Some(&dirs)),
            CdiSupport::Unsupported
        );
        assert_eq!(
            CdiSupport::of(ApiVersion::new(1, 44), None),
            CdiSupport::Unreported
        );
        assert_eq!(
            CdiSupport::of(ApiVersion::new(1, 51), Some(&[])),
            CdiSupport::Off
        );
        let on = CdiSupport::of(ApiVersion::new(1, 51), Some(&dirs));
        assert_eq!(on.state(), "on");
        assert_eq!(on.spec_dirs(), dirs.as_slice());
    }
}
