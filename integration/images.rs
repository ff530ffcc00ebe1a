//! PullImage (with and without registry credentials), ImageStatus,
//! ListImages, RemoveImage and ImageFsInfo against Docker and local
//! registries on 127.0.0.1 (started by integration/test.sh).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{PushImageOptions, RemoveImageOptions};
use dockershim::cri::*;
use futures_util::StreamExt;
use tonic::Code;

use crate::support::*;

fn registry() -> String {
    std::env::var("DOCKERSHIM_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5055".into())
}

fn auth_registry() -> String {
    std::env::var("DOCKERSHIM_TEST_AUTH_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5056".into())
}

const USER: &str = "dockershim";
const PASSWORD: &str = "test-s3cret";

fn require(registry: &str) {
    assert!(
        std::net::TcpStream::connect(registry).is_ok(),
        "no test registry at {registry}: run integration/test.sh, which starts it"
    );
}

/// Builds an image with unique content (so it has its own id), tagged `reference`.
fn unique_image(reference: &str) -> String {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    let content = reference.as_bytes();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    tar.append_data(&mut header, "id", content).unwrap();
    let data = tar.into_inner().unwrap();
    let mut import = Command::new("docker")
        .args(["import", "-", reference])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    import.stdin.take().unwrap().write_all(&data).unwrap();
    let out = import.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `docker tag`.
fn docker_tag(image: &str, name: &str) {
    let tagged = Command::new("docker").args(["tag", image, name]).status();
    assert!(tagged.unwrap().success(), "docker tag {image} {name}");
}

/// Pushes a local image to its registry, then deletes it locally.
async fn push_and_forget(reference: &str, credentials: Option<DockerCredentials>) {
    let docker = docker().await;
    let (repo, tag) = reference.rsplit_once(':').unwrap();
    let mut push = docker.push_image(
        repo,
        Some(PushImageOptions {
            tag: Some(tag.into()),
            ..Default::default()
        }),
        credentials,
    );
    while let Some(info) = push.next().await {
        let info = info.unwrap_or_else(|e| panic!("push {reference}: {e}"));
        assert!(info.error_detail.is_none(), "push {reference}: {info:?}");
    }
    docker
        .remove_image(
            reference,
            Some(RemoveImageOptions {
                force: true,
                ..Default::default()
            }),
            None,
        )
        .await
        .unwrap();
}

async fn image_status(
    images: &mut dockershim::cri::v1::image_service_client::ImageServiceClient<
        tonic::transport::Channel,
    >,
    reference: &str,
) -> Option<Image> {
    images
        .image_status(ImageStatusRequest {
            image: Some(ImageSpec {
                image: reference.into(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .image
}

fn spec(reference: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: reference.into(),
        ..Default::default()
    })
}

#[tokio::test]
async fn pull_list_status_and_remove_through_a_local_registry() {
    require(&registry());
    let shim = Shim::start().await;
    let mut images = shim.images().await;
    let name = unique("img");
    let reference = format!("{}/dockershim-test/{name}:v1", registry());
    let id = unique_image(&reference);
    push_and_forget(&reference, None).await;
    assert_eq!(
        image_status(&mut images, &reference).await,
        None,
        "absent image: empty status"
    );

    let image_ref = images
        .pull_image(PullImageRequest {
            image: spec(&reference),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .image_ref;
    // The pull answers the image id, as ImageStatus and ContainerStatus do.
    assert_eq!(image_ref, id);

    let image = image_status(&mut images, &reference)
        .await
        .expect("pulled image");
    assert_eq!(image.id, id);
    assert_eq!(image.repo_tags, vec![reference.clone()]);
    assert_eq!(image.repo_digests.len(), 1, "{:?}", image.repo_digests);
    let digest_ref = image.repo_digests[0].clone();
    assert!(
        digest_ref.starts_with(&format!("{}/dockershim-test/{name}@sha256:", registry())),
        "{digest_ref}"
    );
    assert!(image.size > 0);
    assert!(!image.pinned);
    // The digest reference names the same image, and so does the id.
    assert_eq!(
        image_status(&mut images, &digest_ref).await.map(|i| i.id),
        Some(id.clone())
    );
    assert_eq!(
        image_status(&mut images, &image_ref).await.map(|i| i.id),
        Some(id.clone())
    );

    let listed = images
        .list_images(ListImagesRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .images;
    assert!(
        listed
            .iter()
            .any(|i| i.id == id && i.repo_tags == vec![reference.clone()])
    );
    let filtered = images
        .list_images(ListImagesRequest {
            filter: Some(ImageFilter {
                image: spec(&reference),
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .images;
    assert_eq!(
        filtered.iter().map(|i| i.id.clone()).collect::<Vec<_>>(),
        vec![id.clone()]
    );

    // A tag the registry does not have.
    let missing = format!("{}/dockershim-test/{name}:nope", registry());
    let err = images
        .pull_image(PullImageRequest {
            image: spec(&missing),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    // Removal by id takes every name; a second removal is fine.
    images
        .remove_image(RemoveImageRequest { image: spec(&id) })
        .await
        .unwrap();
    assert_eq!(image_status(&mut images, &reference).await, None);
    assert!(
        docker().await.inspect_image(&id).await.is_err(),
        "image still in Docker"
    );
    images
        .remove_image(RemoveImageRequest { image: spec(&id) })
        .await
        .unwrap();
}

#[tokio::test]
async fn removing_one_name_keeps_the_image_under_its_others() {
    let shim = Shim::start().await;
    let mut images = shim.images().await;
    let first = format!("dockershim-test/{}:a", unique("names"));
    let id = unique_image(&first);
    let second = first.replace(":a", ":b");
    docker_tag(&first, &second);
    images
        .remove_image(RemoveImageRequest {
            image: spec(&first),
        })
        .await
        .unwrap();
    assert_eq!(image_status(&mut images, &first).await, None);
    let kept = image_status(&mut images, &second)
        .await
        .expect("other name kept");
    assert_eq!(kept.id, id);
    images
        .remove_image(RemoveImageRequest {
            image: spec(&second),
        })
        .await
        .unwrap();
    assert!(docker().await.inspect_image(&id).await.is_err());
}

/// An image a container was made from stays whole when RemoveImage by id is
/// refused; one of its names can still go. The same on either image store.
#[tokio::test]
async fn an_image_a_container_uses_is_not_removed_by_id() {
    let shim = Shim::start().await;
    let mut images = shim.images().await;
    let mut rt = shim.runtime().await;
    let cleanup = Cleanup::new();
    let first = format!("dockershim-test/{}:a", unique("in-use"));
    let id = unique_image(&first);
    let second = first.replace(":a", ":b");
    docker_tag(&first, &second);
    let pod = pod_config(&cleanup, "image-in-use");
    let pod_id = run_pod(&mut rt, &pod).await;
    let mut config = container_config(&cleanup, "user", "true");
    config.image = spec(&first);
    let container = create_container(&mut rt, &pod_id, &pod, config).await;

    let err = images
        .remove_image(RemoveImageRequest { image: spec(&id) })
        .await
        .expect_err("RemoveImage of an image in use");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains(&container[..12]),
        "the message names the container: {}",
        err.message()
    );
    for name in [&first, &second] {
        let kept = image_status(&mut images, name).await;
        assert_eq!(kept.map(|i| i.id), Some(id.clone()), "{name} kept");
    }

    // One of its names goes; the container keeps its image.
    images
        .remove_image(RemoveImageRequest {
            image: spec(&second),
        })
        .await
        .expect("RemoveImage of one name of an image in use");
    assert_eq!(image_status(&mut images, &second).await, None);
    assert_eq!(
        container_status(&mut rt, &container).await.image_id,
        id,
        "the container still reports its image"
    );

    // Once the container is gone, the image goes by id.
    stop_and_remove_pod(&mut rt, &pod_id).await;
    images
        .remove_image(RemoveImageRequest { image: spec(&id) })
        .await
        .expect("RemoveImage after the container went");
    assert!(docker().await.inspect_image(&id).await.is_err());
}

#[tokio::test]
async fn pulls_from_a_registry_that_requires_credentials() {
    let registry = auth_registry();
    require(&registry);
    let shim = Shim::start().await;
    let mut images = shim.images().await;
    let reference = format!("{registry}/dockershim-test/{}:v1", unique("private"));
    let id = unique_image(&reference);
    let credentials = DockerCredentials {
        username: Some(USER.into()),
        password: Some(PASSWORD.into()),
        serveraddress: Some(registry.clone()),
        ..Default::default()
    };
    push_and_forget(&reference, Some(credentials)).await;

    let err = images
        .pull_image(PullImageRequest {
            image: spec(&reference),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let err = images
        .pull_image(PullImageRequest {
            image: spec(&reference),
            auth: Some(AuthConfig {
                username: USER.into(),
                password: "wrong".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    images
        .pull_image(PullImageRequest {
            image: spec(&reference),
            auth: Some(AuthConfig {
                username: USER.into(),
                password: PASSWORD.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        image_status(&mut images, &reference).await.map(|i| i.id),
        Some(id.clone())
    );
    images
        .remove_image(RemoveImageRequest {
            image: spec(&reference),
        })
        .await
        .unwrap();
    assert_eq!(image_status(&mut images, &reference).await, None);

    // The `auth` form (base64 user:password), as `crictl pull --auth` sends it.
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    images
        .pull_image(PullImageRequest {
            image: spec(&reference),
            auth: Some(AuthConfig {
                auth,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        image_status(&mut images, &reference).await.map(|i| i.id),
        Some(id.clone())
    );
    images
        .remove_image(RemoveImageRequest { image: spec(&id) })
        .await
        .unwrap();
}

/// Imports an image holding one empty file, `name`, tagged `reference`.
fn image_with_file(reference: &str, name: &str) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(0);
    header.set_mode(0o644);
    tar.append_data(&mut header, name, std::io::empty())
        .unwrap();
    let data = tar.into_inner().unwrap();
    let mut import = Command::new("docker")
        .args(["import", "-", reference])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    import.stdin.take().unwrap().write_all(&data).unwrap();
    assert!(
        import.wait().unwrap().success(),
        "docker import {reference}"
    );
}

/// `df` of `dir`: the filesystem's mount point, bytes used and inodes used.
fn df(dir: &str) -> (String, u64, u64) {
    let out = Command::new("df")
        .args(["--output=target,used,iused", "-B1", dir])
        .output()
        .unwrap();
    assert!(out.status.success(), "df {dir}: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let fields: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(fields.len(), 3, "df {dir}: {text}");
    (
        fields[0].to_string(),
        fields[1].parse().unwrap(),
        fields[2].parse().unwrap(),
    )
}

/// ImageFsInfo names the directory that holds the images of the store in
/// use (Docker's data root with the classic store, the snapshotter's
/// directory in containerd with the containerd store): the layer of an image
/// just imported is unpacked under it, and its figures agree with `df` of it.
#[tokio::test]
async fn image_fs_info_reports_the_filesystem_holding_the_images() {
    let shim = Shim::start().await;
    let mut images = shim.images().await;
    let marker = unique("fsinfo-marker");
    let reference = format!("dockershim-test/{marker}:latest");
    image_with_file(&reference, &marker);

    let answer = images
        .image_fs_info(ImageFsInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    let fs = answer.image_filesystems;
    assert_eq!(fs.len(), 1);
    let dir = fs[0].fs_id.as_ref().unwrap().mountpoint.clone();
    // The writable layers are kept beside the images, whichever store.
    let layers = answer.container_filesystems;
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0].fs_id.as_ref().unwrap().mountpoint, dir);
    let used_bytes = fs[0].used_bytes.as_ref().unwrap().value;
    let inodes_used = fs[0].inodes_used.as_ref().unwrap().value;
    assert!(fs[0].timestamp > 0);

    let info = docker().await.info().await.unwrap();
    if containerd_image_store().await {
        let snapshotter = info.driver.unwrap();
        assert!(
            dir.ends_with(&format!("/io.containerd.snapshotter.v1.{snapshotter}")),
            "containerd store: {dir} is not the {snapshotter} snapshotter's directory"
        );
    } else {
        assert_eq!(dir, info.docker_root_dir.unwrap());
    }
    let found = Command::new("find")
        .args([&dir, "-xdev", "-name", &marker, "-print", "-quit"])
        .output()
        .unwrap();
    assert!(
        !found.stdout.is_empty(),
        "the imported image's file {marker} is not under {dir}"
    );

    let (target, df_used, df_inodes) = df(&dir);
    assert!(used_bytes > 0);
    assert!(
        used_bytes <= df_used,
        "images take {used_bytes} bytes, more than df reports used on {target}: {df_used}"
    );
    // Other programs may create or delete files between the two readings.
    let slack = (df_inodes / 20).max(1000);
    assert!(
        inodes_used.abs_diff(df_inodes) <= slack,
        "ImageFsInfo reports {inodes_used} inodes used, df of {dir} ({target}) {df_inodes}"
    );

    images
        .remove_image(RemoveImageRequest {
            image: spec(&reference),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn the_pause_image_is_pinned_and_invalid_references_are_refused() {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let mut images = shim.images().await;
    let pod = run_pod(&mut rt, &pod_config(&cleanup, &unique("pin"))).await;
    let listed = images
        .list_images(ListImagesRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .images;
    let pause = listed
        .iter()
        .find(|i| {
            i.repo_tags
                .iter()
                .any(|t| t == "localhost/dockershim/pause:0.1.0")
        })
        .expect("built-in pause image listed");
    assert!(pause.pinned, "image GC must keep the pause image");
    let test_image = listed
        .iter()
        .find(|i| i.repo_tags.iter().any(|t| t == TEST_IMAGE))
        .unwrap();
    assert!(!test_image.pinned);

    for bad in ["Upper/Case", "busybox:", "a//b"] {
        let err = images
            .pull_image(PullImageRequest {
                image: spec(bad),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}: {err:?}");
    }
    let err = images
        .pull_image(PullImageRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod,
    })
    .await
    .unwrap();
}

/// A registry on loopback that serves a manifest and config, then sends a
/// few bytes of the layer and stalls, as a registry or proxy that hangs.
async fn stalling_registry() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sha256 = |data: &[u8]| {
        let mut child = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sha256sum");
        child.stdin.take().unwrap().write_all(data).unwrap();
        let out = child.wait_with_output().unwrap();
        format!("sha256:{}", String::from_utf8_lossy(&out.stdout[..64]))
    };
    let layer_digest = sha256(b"a layer this registry never finishes sending");
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{layer_digest}"]}}}}"#
    );
    let config_digest = sha256(config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{config_digest}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":1048576,"digest":"{layer_digest}"}}]}}"#,
        config.len()
    );
    let manifest_digest = sha256(manifest.as_bytes());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let (manifest, manifest_digest, config, config_digest) = (
                manifest.clone(),
                manifest_digest.clone(),
                config.clone(),
                config_digest.clone(),
            );
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break end + 4;
                        }
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    buf.drain(..head_end);
                    let mut words = head.split_whitespace();
                    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                    let (status, content_type, body): (&str, &str, Vec<u8>) = if path == "/v2/" {
                        ("200 OK", "application/json", b"{}".to_vec())
                    } else if path.contains("/manifests/") {
                        (
                            "200 OK",
                            "application/vnd.docker.distribution.manifest.v2+json",
                            manifest.clone().into_bytes(),
                        )
                    } else if path.ends_with(&config_digest) {
                        (
                            "200 OK",
                            "application/octet-stream",
                            config.clone().into_bytes(),
                        )
                    } else if path.contains("/blobs/") {
                        // A few bytes of the layer, then silence.
                        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n";
                        let _ = conn.write_all(head.as_bytes()).await;
                        let _ = conn.write_all(&[0x1f, 0x8b, 0x08, 0x00]).await;
                        tokio::time::sleep(Duration::from_secs(600)).await;
                        return;
                    } else {
                        ("404 Not Found", "application/json", b"{}".to_vec())
                    };
                    let mut response = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nDocker-Distribution-API-Version: registry/2.0\r\n",
                        body.len()
                    );
                    if path.contains("/manifests/") {
                        response.push_str(&format!("Docker-Content-Digest: {manifest_digest}\r\n"));
                    }
                    response.push_str("\r\n");
                    let mut bytes = response.into_bytes();
                    if method != "HEAD" {
                        bytes.extend_from_slice(&body);
                    }
                    if conn.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, server)
}

#[tokio::test]
async fn a_pull_that_stops_making_progress_is_cancelled_after_the_deadline() {
    let (addr, server) = stalling_registry().await;
    let shim = Shim::start_with(&[
        "--pod-infra-container-image",
        UNPULLABLE_PAUSE,
        "--image-pull-progress-deadline",
        "3s",
    ])
    .await;
    let mut images = shim.images().await;
    let reference = format!("{addr}/dockershim-test/stalled:v1");
    let answer = tokio::time::timeout(
        Duration::from_secs(90),
        images.pull_image(PullImageRequest {
            image: spec(&reference),
            ..Default::default()
        }),
    )
    .await
    .expect("the pull must be cancelled, not hang");
    let status = answer.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains(&reference),
        "{}",
        status.message()
    );
    server.abort();
}
