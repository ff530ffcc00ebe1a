//! The pod infra (pause) image: the configured one when Docker has it or can
//! pull it, otherwise the shim's built-in image, imported from the static
//! pause program compiled into the shim. A pod therefore starts on a host
//! with no registry access at all.

use std::time::Duration;

use tokio::sync::Mutex;

use super::reference::Reference;
use crate::docker::{DockerApi, DockerError};
use crate::error::{DockerContext, Result};

/// The static pause executable built by `build.rs` from `src/pause/pause.rs`.
const PAUSE_PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));

/// Repository of the built-in pause image.
pub const BUILTIN_REPOSITORY: &str = "localhost/dockershim/pause";
/// Tag of the built-in pause image: the shim's version, so an upgraded shim
/// brings its own program.
pub const BUILTIN_TAG: &str = env!("CARGO_PKG_VERSION");

/// Chooses, and if needed provides, the image of pause containers.
pub struct PauseImage {
    configured: String,
    pull_timeout: Duration,
    /// Set once pulling the configured image failed, so that later pods do
    /// not wait for another failing pull.
    fell_back: Mutex<bool>,
}

impl PauseImage {
    /// `configured` is `--pod-infra-container-image`.
    pub fn new(configured: String, pull_timeout: Duration) -> Self {
        Self {
            configured,
            pull_timeout,
            fell_back: Mutex::new(false),
        }
    }

    /// The configured image reference.
    pub fn configured(&self) -> &str {
        &self.configured
    }

    /// `repository:tag` of the built-in image.
    pub fn builtin() -> String {
        format!("{BUILTIN_REPOSITORY}:{BUILTIN_TAG}")
    }

    /// True when `repo_tag` (as Docker lists it) is a pause image the shim
    /// uses, so image garbage collection must keep it.
    pub fn is_pause_tag(&self, repo_tag: &str) -> bool {
        let same = |a: &str, b: &str| match (Reference::parse(a), Reference::parse(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => a == b,
        };
        same(repo_tag, &self.configured) || same(repo_tag, &Self::builtin())
    }

    /// Returns the image to create a pause container from, making sure Docker
    /// has it.
    pub async fn ensure(&self, docker: &dyn DockerApi) -> Result<String> {
        // Serialises concurrent sandbox starts so the image is pulled or
        // imported once.
        let mut fell_back = self.fell_back.lock().await;
        match docker.inspect_image(&self.configured).await {
            Ok(_) => return Ok(self.configured.clone()),
            Err(err) if err.is_not_found() => {}
            Err(err) => return Err(err).context(|| format!("inspect image {}", self.configured)),
        }
        if !*fell_back {
            match self.pull_configured(docker).await {
                Ok(()) => return Ok(self.configured.clone()),
                Err(err) => {
                    tracing::warn!(
                        image = %self.configured,
                        error = %err,
                        builtin = %Self::builtin(),
                        "cannot pull the pod infra image; using the built-in pause image"
                    );
                    *fell_back = true;
                }
            }
        }
        self.ensure_builtin(docker).await
    }

    async fn pull_configured(
        &self,
        docker: &dyn DockerApi,
    ) -> std::result::Result<(), DockerError> {
        let reference =
            Reference::parse(&self.configured).map_err(|e| DockerError::Stream(e.to_string()))?;
        let repository = reference.repository();
        let pull = docker.pull_image(&repository, reference.tag_or_digest(), None);
        match tokio::time::timeout(self.pull_timeout, pull).await {
            Ok(result) => result,
            Err(_) => Err(DockerError::Timeout(self.pull_timeout)),
        }
    }

    async fn ensure_builtin(&self, docker: &dyn DockerApi) -> Result<String> {
        let builtin = Self::builtin();
        match docker.inspect_image(&builtin).await {
            Ok(_) => return Ok(builtin),
            Err(err) if err.is_not_found() => {}
            Err(err) => return Err(err).context(|| format!("inspect image {builtin}")),
        }
        let rootfs = rootfs_tar().map_err(|e| {
            crate::error::Error::Internal(format!("build the pause image's root filesystem: {e}"))
        })?;
        let changes = vec![
            r#"ENTRYPOINT ["/pause"]"#.to_string(),
            "LABEL io.kubernetes.dockershim.pause=true".to_string(),
        ];
        docker
            .import_image(rootfs, BUILTIN_REPOSITORY, BUILTIN_TAG, changes)
            .await
            .context(|| format!("import the built-in pause image {builtin}"))?;
        tracing::info!(image = %builtin, "imported the built-in pause image");
        Ok(builtin)
    }
}

/// A root filesystem holding only `/pause`.
fn rootfs_tar() -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(PAUSE_PROGRAM.len() as u64);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, "pause", PAUSE_PROGRAM)?;
    tar.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rootfs_holds_an_executable_static_pause() {
        let tar = rootfs_tar().unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let entries: Vec<_> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                    e.size(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            vec![("pause".to_string(), 0o755, PAUSE_PROGRAM.len() as u64)]
        );
        // An ELF executable.
        assert_eq!(&PAUSE_PROGRAM[..4], b"\x7fELF");
    }

    #[test]
    fn pause_tags_are_recognised_in_any_spelling() {
        let pause = PauseImage::new("registry.k8s.io/pause:3.10".into(), Duration::from_secs(1));
        assert!(pause.is_pause_tag("registry.k8s.io/pause:3.10"));
        assert!(pause.is_pause_tag(&PauseImage::builtin()));
        assert!(!pause.is_pause_tag("busybox:latest"));
        let short = PauseImage::new("busybox".into(), Duration::from_secs(1));
        assert!(short.is_pause_tag("docker.io/library/busybox:latest"));
    }
}
