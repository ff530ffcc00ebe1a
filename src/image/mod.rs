//! Images: list, status, pull with registry credentials, removal and the
//! image filesystem's usage, all on Docker's image store.

pub mod pause;
pub mod reference;

use std::collections::HashMap;

use base64::Engine;
use bollard::models::{ImageInspect, ImageSummary};

use crate::api::{
    AuthConfig, FilesystemIdentifier, FilesystemUsage, Image, ImageFilter, ImageSpec,
    ImageStatusResponse, Int64Value, UInt64Value,
};
use crate::docker::{DockerApi, Filters};
use crate::docker::{DockerError, RegistryAuth};
use crate::error::{DockerContext, Error, Result};
use crate::view::View;
use reference::Reference;

/// What the image calls need of the shim's state; borrowed from it with
/// `Shim::images`, so this module does not depend on the
/// whole shared state.
pub struct Images<'a> {
    /// The Docker Engine.
    pub docker: &'a dyn DockerApi,
    /// The live view, which caches Docker's image list and inspects.
    pub view: &'a View,
    /// The pause image in use, reported pinned.
    pub pause: &'a pause::PauseImage,
    /// The directory whose filesystem holds the images, for the store in
    /// use (`HostFacts::image_fs_dir`).
    pub image_fs_dir: &'a str,
}

/// Docker lists untagged images with these placeholders.
const NONE_TAG: &str = "<none>:<none>";
const NONE_DIGEST: &str = "<none>@<none>";

/// Images Docker holds, optionally only the one a filter names.
pub async fn list(images: &Images<'_>, filter: Option<ImageFilter>) -> Result<Vec<Image>> {
    let wanted = match filter
        .and_then(|f| f.image)
        .map(|s| s.image)
        .filter(|s| !s.is_empty())
    {
        Some(name) => match images.docker.inspect_image(&name).await {
            Ok(image) => Some(image.id.unwrap_or_default()),
            Err(DockerError::NotFound(_)) => return Ok(Vec::new()),
            Err(err) => return Err(err).context(|| format!("inspect image {name}")),
        },
        None => None,
    };
    let summaries = images
        .view
        .image_list()
        .await
        .context(|| "list images".into())?;
    Ok(summaries
        .iter()
        .filter(|i| wanted.as_ref().is_none_or(|id| &i.id == id))
        .map(|i| image_from_summary(images, i))
        .collect())
}

fn real_refs(refs: &[String], placeholder: &str) -> Vec<String> {
    refs.iter()
        .filter(|r| r.as_str() != placeholder)
        .cloned()
        .collect()
}

fn image_from_summary(images: &Images<'_>, summary: &ImageSummary) -> Image {
    let repo_tags = real_refs(&summary.repo_tags, NONE_TAG);
    let pinned = repo_tags.iter().any(|t| images.pause.is_pause_tag(t));
    Image {
        id: summary.id.clone(),
        repo_digests: real_refs(&summary.repo_digests, NONE_DIGEST),
        size: u64::try_from(summary.size).unwrap_or_default(),
        spec: Some(ImageSpec {
            image: repo_tags
                .first()
                .cloned()
                .unwrap_or_else(|| summary.id.clone()),
            ..Default::default()
        }),
        repo_tags,
        pinned,
        ..Default::default()
    }
}

/// The status of one image; a missing image is an empty answer, not an
/// error, as the CRI asks.
pub async fn status(
    images: &Images<'_>,
    image: Option<ImageSpec>,
    verbose: bool,
) -> Result<ImageStatusResponse> {
    let name = image
        .map(|s| s.image)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::InvalidArgument("image is required".into()))?;
    let inspected = match images.docker.inspect_image(&name).await {
        Ok(inspected) => inspected,
        Err(DockerError::NotFound(_)) => return Ok(ImageStatusResponse::default()),
        Err(err) => return Err(err).context(|| format!("inspect image {name}")),
    };
    let info = if verbose {
        verbose_info(&inspected)
    } else {
        HashMap::new()
    };
    Ok(ImageStatusResponse {
        image: Some(image_from_inspect(images, &inspected)),
        info,
    })
}

fn image_from_inspect(images: &Images<'_>, inspected: &ImageInspect) -> Image {
    let id = inspected.id.clone().unwrap_or_default();
    let repo_tags = real_refs(inspected.repo_tags.as_deref().unwrap_or_default(), NONE_TAG);
    let user = inspected
        .config
        .as_ref()
        .and_then(|c| c.user.clone())
        .unwrap_or_default();
    let (uid, username) = image_user(&user);
    Image {
        pinned: repo_tags.iter().any(|t| images.pause.is_pause_tag(t)),
        spec: Some(ImageSpec {
            image: repo_tags.first().cloned().unwrap_or_else(|| id.clone()),
            ..Default::default()
        }),
        id,
        repo_digests: real_refs(
            inspected.repo_digests.as_deref().unwrap_or_default(),
            NONE_DIGEST,
        ),
        repo_tags,
        size: u64::try_from(inspected.size.unwrap_or_default()).unwrap_or_default(),
        uid,
        username,
    }
}

/// The image's default user: a numeric uid, or a name to resolve in the
/// container. A `user:group` form counts by its user part.
fn image_user(user: &str) -> (Option<Int64Value>, String) {
    let user = user.split(':').next().unwrap_or_default();
    if user.is_empty() {
        return (None, String::new());
    }
    match user.parse::<i64>() {
        Ok(value) => (Some(Int64Value { value }), String::new()),
        Err(_) => (None, user.to_string()),
    }
}

fn verbose_info(inspected: &ImageInspect) -> HashMap<String, String> {
    let info = serde_json::json!({
        "imageSpec": {
            "created": inspected.created,
            "architecture": inspected.architecture,
            "os": inspected.os,
            "config": inspected.config,
            "rootfs": inspected.root_fs,
        },
        "labels": inspected.config.as_ref().and_then(|c| c.labels.clone()),
    });
    HashMap::from([("info".to_string(), info.to_string())])
}

/// Pulls an image and returns its id (`sha256:…`): the reference that
/// `ListImages`, `ImageStatus` and `ContainerStatus.image_id` report, the
/// same whichever registry or name it was pulled by (as the in-tree
/// dockershim and containerd answer).
pub async fn pull(
    images: &Images<'_>,
    image: Option<ImageSpec>,
    auth: Option<AuthConfig>,
) -> Result<String> {
    let name = image
        .map(|s| s.image)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::InvalidArgument("image is required".into()))?;
    let reference = Reference::parse(&name)?;
    let auth = auth.map(|a| registry_auth(a, &reference)).transpose()?;
    let repository = reference.repository();
    images
        .docker
        .pull_image(&repository, reference.tag_or_digest(), auth)
        .await
        .context(|| format!("pull image {reference}"))?;
    images.view.invalidate_images();
    let inspected = images
        .docker
        .inspect_image(&reference.to_string())
        .await
        .context(|| format!("inspect pulled image {reference}"))?;
    tracing::info!(image = %reference, "image pulled");
    inspected.id.filter(|id| !id.is_empty()).ok_or_else(|| {
        Error::Internal(format!("docker reports no id for pulled image {reference}"))
    })
}

/// Docker credentials from a CRI auth config. `auth` (base64 `user:pass`)
/// is unpacked, since Docker's header wants user and password apart.
fn registry_auth(auth: AuthConfig, reference: &Reference) -> Result<RegistryAuth> {
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    let (mut username, mut password) = (non_empty(auth.username), non_empty(auth.password));
    if !auth.auth.is_empty() {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.auth.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                Error::InvalidArgument("auth.auth is not base64 of \"user:password\"".into())
            })?;
        let (user, pass) = decoded.split_once(':').ok_or_else(|| {
            Error::InvalidArgument("auth.auth is not base64 of \"user:password\"".into())
        })?;
        username = Some(user.to_string());
        password = Some(pass.to_string());
    }
    Ok(RegistryAuth {
        username,
        password,
        server_address: non_empty(auth.server_address).or_else(|| Some(reference.domain.clone())),
        identity_token: non_empty(auth.identity_token),
        registry_token: non_empty(auth.registry_token),
    })
}

/// Removes an image. By id, the image goes with every name it has; by name,
/// only that name goes (and the image with it if it was the last). A
/// missing image is not an error.
pub async fn remove(images: &Images<'_>, image: Option<ImageSpec>) -> Result<()> {
    let name = image
        .map(|s| s.image)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::InvalidArgument("image is required".into()))?;
    let inspected = match images.docker.inspect_image(&name).await {
        Ok(inspected) => inspected,
        Err(DockerError::NotFound(_)) => return Ok(()),
        Err(err) => return Err(err).context(|| format!("inspect image {name}")),
    };
    let id = inspected.id.clone().unwrap_or_default();
    let by_id = id == name
        || id
            .strip_prefix("sha256:")
            .is_some_and(|hex| hex.starts_with(&name));
    let mut names = if by_id {
        let mut all = real_refs(inspected.repo_tags.as_deref().unwrap_or_default(), NONE_TAG);
        all.extend(real_refs(
            inspected.repo_digests.as_deref().unwrap_or_default(),
            NONE_DIGEST,
        ));
        all
    } else {
        vec![name.clone()]
    };
    if by_id {
        names.push(id.clone());
    }
    if by_id {
        refuse_if_in_use(images, &name, &id).await?;
    }
    for target in names {
        match images.docker.remove_image(&target).await {
            Ok(()) | Err(DockerError::NotFound(_)) => images.view.invalidate_images(),
            Err(err) => return Err(err).context(|| format!("remove image {target}")),
        }
    }
    tracing::info!(image = %name, "image removed");
    Ok(())
}

/// Refuses to remove, by id, an image that a container (running or stopped)
/// was made from, before any of its names is removed: Docker refuses only
/// the last name, after the others are gone, which would leave the image
/// half removed. (Removing one name is a single Docker call, which Docker
/// refuses whole when it would remove an image in use.)
async fn refuse_if_in_use(images: &Images<'_>, name: &str, id: &str) -> Result<()> {
    let users = images
        .docker
        .list_containers(Filters::from([(
            "ancestor".to_string(),
            vec![id.to_string()],
        )]))
        .await
        .context(|| format!("list the containers of image {name}"))?;
    let Some(user) = users.first() else {
        return Ok(());
    };
    let user_id = user.id.as_deref().unwrap_or_default();
    let user_name = user
        .names
        .iter()
        .flatten()
        .next()
        .map(|n| n.trim_start_matches('/'))
        .unwrap_or(user_id);
    Err(Error::FailedPrecondition(format!(
        "image {name} is in use by container {user_name} ({}){}: remove the container first",
        user_id.get(..12).unwrap_or(user_id),
        match users.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        }
    )))
}

/// Usage of Docker's image store: bytes of the images (shared layers counted
/// once) and inodes used on the filesystem holding them (Docker's data root,
/// or containerd's snapshotter directory with the containerd store).
pub async fn fs_info(images: &Images<'_>) -> Result<Vec<FilesystemUsage>> {
    let summaries = images
        .view
        .image_list()
        .await
        .context(|| "list images".into())?;
    let root = images.image_fs_dir.to_string();
    let stat = rustix::fs::statvfs(root.as_str())
        .map_err(|e| Error::Internal(format!("statvfs {root}: {e}")))?;
    let inodes_used = stat.f_files.saturating_sub(stat.f_ffree);
    Ok(vec![FilesystemUsage {
        timestamp: chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
        fs_id: Some(FilesystemIdentifier { mountpoint: root }),
        used_bytes: Some(UInt64Value {
            value: images_bytes(&summaries),
        }),
        inodes_used: Some(UInt64Value { value: inodes_used }),
    }])
}

/// Bytes the images take. Docker reports each image's size including the
/// layers it shares with others, and the shared part apart; the unique parts
/// are summed and the shared layers counted once, estimated by the largest
/// shared part any image reports.
fn images_bytes(images: &[ImageSummary]) -> u64 {
    let unique: i64 = images
        .iter()
        .map(|i| (i.size - i.shared_size.max(0)).max(0))
        .sum();
    let shared = images
        .iter()
        .map(|i| i.shared_size.max(0))
        .max()
        .unwrap_or(0);
    u64::try_from(unique + shared).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_users_split_into_uid_or_name() {
        assert_eq!(image_user(""), (None, String::new()));
        assert_eq!(
            image_user("1000"),
            (Some(Int64Value { value: 1000 }), String::new())
        );
        assert_eq!(
            image_user("1000:50"),
            (Some(Int64Value { value: 1000 }), String::new())
        );
        assert_eq!(image_user("nginx"), (None, "nginx".to_string()));
    }

    #[test]
    fn basic_auth_is_unpacked_for_docker() {
        let reference = Reference::parse("127.0.0.1:5001/app:v1").unwrap();
        let auth = AuthConfig {
            auth: base64::engine::general_purpose::STANDARD.encode("alice:s3cret:x"),
            ..Default::default()
        };
        let docker = registry_auth(auth, &reference).unwrap();
        assert_eq!(docker.username.as_deref(), Some("alice"));
        assert_eq!(docker.password.as_deref(), Some("s3cret:x"));
        assert_eq!(docker.server_address.as_deref(), Some("127.0.0.1:5001"));

        let bad = AuthConfig {
            auth: "not base64!".into(),
            ..Default::default()
        };
        assert!(matches!(
            registry_auth(bad, &reference),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn shared_layers_count_once() {
        let image = |size, shared_size| ImageSummary {
            size,
            shared_size,
            ..Default::default()
        };
        // Two images of 100 sharing a 60-byte base: 40 + 40 + 60.
        assert_eq!(images_bytes(&[image(100, 60), image(100, 60)]), 140);
        // Docker reports -1 when it did not compute shared sizes.
        assert_eq!(images_bytes(&[image(100, -1)]), 100);
    }

    use crate::docker::fake::Call;
    use crate::testing;

    fn spec(image: &str) -> Option<ImageSpec> {
        Some(ImageSpec {
            image: image.into(),
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn pull_answers_the_pulled_image_id() {
        let t = testing::shim();
        let images = t.shim.images();
        let id = pull(&images, spec("busybox"), None).await.unwrap();
        assert!(id.starts_with("sha256:"), "{id}");
        assert!(t.docker.has_image(&id));
        assert_eq!(
            t.docker.changes(),
            [Call::Pull(
                "docker.io/library/busybox".into(),
                "latest".into(),
                false
            )]
        );
        let listed = list(&images, None).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, id);
        assert!(!listed[0].pinned);
    }

    #[tokio::test]
    async fn a_failed_pull_names_the_image() {
        let t = testing::shim();
        t.docker.fail_next(
            crate::docker::fake::Op::Pull,
            DockerError::Unauthorized("denied".into()),
        );
        let err = pull(&t.shim.images(), spec("busybox"), None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("busybox"), "{err}");
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }

    #[tokio::test]
    async fn remove_by_name_removes_that_name_and_by_id_every_name() {
        let t = testing::shim();
        let images = t.shim.images();
        let id = t.docker.add_image("busybox:latest");

        remove(&images, spec("busybox:latest")).await.unwrap();
        assert_eq!(
            t.docker.changes(),
            [Call::RemoveImage("busybox:latest".into())]
        );
        assert!(!t.docker.has_image(&id));

        let id = t.docker.add_image("busybox:1.36");
        t.docker.clear_calls();
        remove(&images, spec(&id)).await.unwrap();
        assert_eq!(
            t.docker.changes(),
            [
                Call::RemoveImage("busybox:1.36".into()),
                Call::RemoveImage(id.clone())
            ]
        );
        assert!(!t.docker.has_image(&id));

        // Removing what is not there succeeds.
        t.docker.clear_calls();
        remove(&images, spec("busybox:gone")).await.unwrap();
        assert!(t.docker.changes().is_empty());
    }

    #[tokio::test]
    async fn an_image_in_use_is_refused_by_id_before_any_name_goes() {
        let t = testing::shim();
        let images = t.shim.images();
        let id = t.docker.add_image("busybox:1.36");
        t.docker.tag_image(&id, "busybox:stable");
        let body = bollard::models::ContainerCreateBody {
            image: Some("busybox:1.36".into()),
            ..Default::default()
        };
        t.docker.create_container("user", body).await.unwrap();
        t.docker.clear_calls();

        let err = remove(&images, spec(&id)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err}");
        assert!(
            err.to_string().contains("in use by container user"),
            "{err}"
        );
        assert!(t.docker.changes().is_empty(), "{:?}", t.docker.changes());
        assert!(t.docker.has_image("busybox:1.36"));

        // One name of several goes, as Docker untags it.
        remove(&images, spec("busybox:1.36")).await.unwrap();
        assert!(t.docker.has_image("busybox:stable"));
        assert!(!t.docker.has_image("busybox:1.36"));
    }
}
