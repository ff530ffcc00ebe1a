//! Application containers: create, start, stop, remove, list, status,
//! resource updates and synchronous exec.

pub mod cdi;
pub mod spec;
pub mod status;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::models::{ContainerInspectResponse, ImageInspect};

use crate::api::{
    ContainerFilter, ContainerStatusResponse, CreateContainerRequest, ExecSyncRequest,
    ExecSyncResponse, LinuxContainerResources,
};
use crate::docker::DockerApi;
use crate::docker::{DockerError, ExecSpec};
use crate::error::{DockerContext, Error, Result};
use crate::exec_output::ExecOutputBudget;
use crate::host::is_running;
use crate::logs::LogWriters;
use crate::sandbox::Sandboxes;
use crate::view::{Kind, ListCache, View};
use crate::{naming, sandbox};

pub use spec::Settings;

/// What the container calls need: Docker, the view, the log writers, the
/// container settings, the ExecSync output budget, the container list cache,
/// and the sandboxes the containers join. `Shim::containers` builds it.
pub struct Containers<'a> {
    /// The Docker Engine.
    pub docker: &'a Arc<dyn DockerApi>,
    /// The live view of the sandboxes and containers.
    pub view: &'a Arc<View>,
    /// Writers of the containers' CRI log files.
    pub logs: &'a LogWriters,
    /// How application containers are made.
    pub settings: &'a Settings,
    /// Docker's default OCI runtime, which a container is not asked for by
    /// name.
    pub default_runtime: &'a str,
    /// ExecSync output held across calls.
    pub exec_output: &'a ExecOutputBudget,
    /// The CRI list of every application container, as of a view
    /// generation.
    pub list_cache: &'a ListCache<crate::api::Container>,
    /// The sandboxes the containers join.
    pub sandboxes: Sandboxes<'a>,
}

pub use crate::exec_output::EXEC_OUTPUT_CAP;

/// Creates a container in a sandbox; returns its id.
pub async fn create(containers: &Containers<'_>, req: CreateContainerRequest) -> Result<String> {
    let mut config = req
        .config
        .ok_or_else(|| Error::InvalidArgument("container config is required".into()))?;
    resolve_image_volumes(containers, &mut config).await?;
    let meta = config
        .metadata
        .as_ref()
        .ok_or_else(|| Error::InvalidArgument("container metadata is required".into()))?;
    naming::check_name_part("container metadata.name", &meta.name)?;
    let sandbox = sandbox::inspect(&containers.sandboxes, &req.pod_sandbox_id)
        .await?
        .inspected;
    let sandbox_name = sandbox.name.as_deref().unwrap_or_default();
    let pod = naming::parse_sandbox_name(sandbox_name).ok_or_else(|| {
        Error::FailedPrecondition(format!("pod sandbox {sandbox_name:?} has no readable name"))
    })?;
    if !is_running(&sandbox) {
        return Err(Error::FailedPrecondition(format!(
            "pod sandbox {} is not ready",
            req.pod_sandbox_id
        )));
    }
    let sandbox_id = sandbox.id.clone().unwrap_or_default();
    let sandbox_host = sandbox.host_config.clone().unwrap_or_default();
    let body = spec::create_body(
        &config,
        &spec::SandboxRef {
            id: &sandbox_id,
            ipc_mode: sandbox_host.ipc_mode.as_deref().unwrap_or_default(),
            network_mode: sandbox_host.network_mode.as_deref().unwrap_or_default(),
            runtime: sandbox_host
                .runtime
                .as_deref()
                .filter(|r| *r != containers.default_runtime),
            cgroup_parent: sandbox_host
                .cgroup_parent
                .as_deref()
                .filter(|p| !p.is_empty()),
        },
        req.sandbox_config.as_ref(),
        containers.settings,
    )?;
    let name = naming::container_name(meta, &pod);
    let id = sandbox::create_named(&containers.sandboxes, &name, body).await?;
    containers.view.refresh(&id).await;
    tracing::info!(container = %id, name = %name, sandbox = %sandbox_id, "container created");
    Ok(id)
}

/// Names each image volume's image by its id, which Docker mounts and
/// `ContainerStatus` reports, and checks that its sub-path exists in the
/// image (Docker would mount an empty directory instead).
async fn resolve_image_volumes(
    containers: &Containers<'_>,
    config: &mut crate::api::ContainerConfig,
) -> Result<()> {
    if !containers
        .settings
        .features
        .has(crate::engine::Feature::ImageMounts)
    {
        return Ok(()); // the spec refuses image volumes with UNIMPLEMENTED
    }
    // How often each image is mounted so far: Docker before 29 names an
    // image mount's layer by the container and the source string only, so
    // a second mount of the same image (two volumes of one image, as a pod
    // may have) fails with "mount already exists with name".
    let mut mounted: HashMap<String, usize> = HashMap::new();
    for mount in &mut config.mounts {
        let Some(image) = mount.image.as_mut().filter(|i| !i.image.is_empty()) else {
            continue;
        };
        let inspected = match containers.docker.inspect_image(&image.image).await {
            Ok(inspected) => inspected,
            Err(DockerError::NotFound(_)) => {
                return Err(Error::NotFound(format!(
                    "image volume at {:?}: image {:?} is not present (pull it first)",
                    mount.container_path, image.image
                )));
            }
            Err(err) => return Err(err).context(|| format!("inspect image {}", image.image)),
        };
        let Some(id) = inspected.id.clone() else {
            continue;
        };
        if !mount.image_sub_path.is_empty()
            && !image_has_sub_path(containers, &inspected, &id, &mount.image_sub_path).await?
        {
            return Err(Error::InvalidArgument(format!(
                "image volume at {:?}: image_sub_path {:?} does not exist in image {}",
                mount.container_path, mount.image_sub_path, id
            )));
        }
        let nth = mounted.entry(id.clone()).or_default();
        image.image = image_mount_source(&id, *nth).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "image volume at {:?}: image {id} is mounted more than {MAX_MOUNTS_OF_ONE_IMAGE} times in one container",
                mount.container_path
            ))
        })?;
        *nth += 1;
    }
    Ok(())
}

/// The most image volumes of one image in one container: each needs its
/// own spelling of the image's id (see [`image_mount_source`]).
const MAX_MOUNTS_OF_ONE_IMAGE: usize = 53;

/// The source string of the `nth` (from 0) mount of image `id` in one
/// container. Every spelling names the same image to Docker, and each is
/// different, so Docker's per-source layer names do not collide: the id
/// itself, then its hex digits alone, then ever shorter prefixes of them
/// (down to 13 digits, longer than a short id). `None` past those.
pub(crate) fn image_mount_source(id: &str, nth: usize) -> Option<String> {
    let hex = match id.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 => hex,
        // Not an id with alternative spellings: only one mount can use it.
        _ => return (nth == 0).then(|| id.to_string()),
    };
    match nth {
        0 => Some(id.to_string()),
        n if n < MAX_MOUNTS_OF_ONE_IMAGE => Some(hex[..hex.len() + 1 - n].to_string()),
        _ => None,
    }
}

/// The image id behind an image mount's source string, undoing
/// [`image_mount_source`]: the first mount of the image in the same
/// container (`sources`) has the full id.
pub(crate) fn image_mount_id<'a>(
    source: &str,
    mut sources: impl Iterator<Item = &'a str>,
) -> String {
    let is_hex = !source.is_empty() && source.bytes().all(|b| b.is_ascii_hexdigit());
    if !is_hex {
        return source.to_string();
    }
    sources
        .find(|s| {
            s.strip_prefix("sha256:")
                .is_some_and(|hex| hex.starts_with(source))
        })
        .map(str::to_string)
        .unwrap_or_else(|| format!("sha256:{source}"))
}

/// Whether `path` exists in image `image_id`: from its overlay2 layer
/// directories when Docker names them here; else (the containerd image
/// store, other drivers, a remote Docker) asked of Docker, through a
/// container created from the image, never started, and removed.
async fn image_has_sub_path(
    containers: &Containers<'_>,
    inspected: &ImageInspect,
    image_id: &str,
    path: &str,
) -> Result<bool> {
    if let Some(found) = image_has_path(inspected, path) {
        return Ok(found);
    }
    let body = bollard::models::ContainerCreateBody {
        image: Some(image_id.to_string()),
        // Never run; Docker only wants a command for an image without one.
        entrypoint: Some(vec!["/".to_string()]),
        network_disabled: Some(true),
        ..Default::default()
    };
    let probe = containers
        .docker
        .create_container("", body)
        .await
        .context(|| format!("create a container to look for {path:?} in image {image_id}"))?;
    let found = match containers.docker.stat_path(&probe, path).await {
        Ok(()) => Ok(true),
        Err(DockerError::NotFound(_)) => Ok(false),
        Err(err) => Err(err).context(|| format!("look for {path:?} in image {image_id}")),
    };
    if let Err(err) = containers.docker.remove_container(&probe).await {
        tracing::warn!(container = %probe, error = %err, "could not remove the container made to look into an image");
    }
    found
}

/// Whether `path` exists in an image, from its overlay2 layer directories;
/// `None` when the storage driver does not say.
fn image_has_path(inspected: &ImageInspect, path: &str) -> Option<bool> {
    let driver = inspected.graph_driver.as_ref()?;
    if driver.name != "overlay2" {
        return None;
    }
    let relative = std::path::Path::new(path.trim_start_matches('/'));
    let dirs: Vec<&str> = driver
        .data
        .get("UpperDir")
        .map(String::as_str)
        .into_iter()
        .chain(
            driver
                .data
                .get("LowerDir")
                .into_iter()
                .flat_map(|l| l.split(':')),
        )
        .collect();
    // A Docker on another host (tcp://) has its layers out of sight.
    if !dirs.iter().any(|dir| std::path::Path::new(dir).is_dir()) {
        return None;
    }
    Some(dirs.iter().any(|dir| {
        std::path::Path::new(dir)
            .join(relative)
            .symlink_metadata()
            .is_ok()
    }))
}

/// Finds an application container by id (or unique prefix); sandboxes and
/// foreign containers are not found.
pub async fn inspect(
    containers: &Containers<'_>,
    id: &str,
) -> Result<Arc<ContainerInspectResponse>> {
    Ok(containers
        .view
        .find(id, Kind::Container, "container")
        .await?
        .inspected)
}

/// Finds an application container that must be running; returns its full
/// id with what Docker reported.
pub async fn inspect_running(
    containers: &Containers<'_>,
    id: &str,
) -> Result<(String, Arc<ContainerInspectResponse>)> {
    let inspected = inspect(containers, id).await?;
    let cid = full_id(&inspected);
    if !is_running(&inspected) {
        return Err(Error::FailedPrecondition(format!(
            "container {cid} is not running"
        )));
    }
    Ok((cid, inspected))
}

fn full_id(inspected: &ContainerInspectResponse) -> String {
    inspected.id.clone().unwrap_or_default()
}

/// Starts a created container, and the writer of its CRI log file. The
/// file exists when this returns, and the container is not reported exited
/// before its output is all in the file (see [`crate::logs`]).
pub async fn start(containers: &Containers<'_>, id: &str) -> Result<()> {
    let inspected = inspect(containers, id).await?;
    let cid = full_id(&inspected);
    let config = inspected.config.clone().unwrap_or_default();
    let location = config
        .labels
        .as_ref()
        .and_then(crate::logs::LogLocation::from_labels)
        .filter(|l| !l.relative.as_os_str().is_empty());
    let log = match location {
        Some(location) => {
            let path = location.path();
            match containers.logs.prepare(&cid, location).await {
                Ok(pending) => pending,
                // Another shim on the same Docker already writes this file.
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => None,
                Err(err) => {
                    return Err(Error::Internal(format!(
                        "start container {cid}: open its log file {}: {err}",
                        path.display()
                    )));
                }
            }
        }
        None => None,
    };
    let started = containers.docker.start_container(&cid).await;
    if started.is_ok()
        && let Some(log) = log
    {
        log.copy(config.tty.unwrap_or(false), true);
    }
    // A failed start leaves Docker's error in the container's state.
    containers.view.refresh(&cid).await;
    started.map_err(|err| match err {
        // Docker's message for a missing binary names runc internals; say it
        // the way the kubelet's users know it.
        DockerError::Api { message, .. } if message.contains("executable file not found") => {
            Error::FailedPrecondition(format!(
                "start container {cid}: executable not found in $PATH: {message}"
            ))
        }
        other => cdi::injection_error(&cid, other, containers.settings.features.cdi())
            .unwrap_or_else(|other| Error::Docker {
                context: format!("start container {cid}"),
                source: other,
            }),
    })?;
    tracing::info!(container = %cid, "container started");
    Ok(())
}

/// Reopens a running container's CRI log file (after the kubelet rotated it).
pub async fn reopen_log(containers: &Containers<'_>, id: &str) -> Result<()> {
    let (cid, _) = inspect_running(containers, id).await?;
    containers.logs.reopen(&cid).await.map_err(|err| match err {
        crate::logs::ReopenError::NotRunning(_) => Error::FailedPrecondition(format!(
            "container {cid} has no log file being written (no log path, or its output ended)"
        )),
        io @ crate::logs::ReopenError::Io { .. } => Error::Internal(io.to_string()),
    })
}

/// Stops a container, giving it `timeout_secs` after the stop signal before
/// it is killed. Stopping a stopped or missing container succeeds: the CRI
/// makes the call idempotent.
pub async fn stop(containers: &Containers<'_>, id: &str, timeout_secs: i64) -> Result<()> {
    let cid = match inspect(containers, id).await {
        Ok(inspected) => full_id(&inspected),
        Err(Error::NotFound(_)) => return Ok(()),
        Err(err) => return Err(err),
    };
    let grace = Duration::from_secs(u64::try_from(timeout_secs).unwrap_or(0));
    match containers.docker.stop_container(&cid, grace).await {
        Ok(()) | Err(DockerError::NotFound(_)) => {}
        Err(err) => return Err(err).context(|| format!("stop container {cid}")),
    }
    containers.view.refresh(&cid).await;
    tracing::info!(container = %cid, "container stopped");
    Ok(())
}

/// Removes a container, running or not. Removing a missing container
/// succeeds.
pub async fn remove(containers: &Containers<'_>, id: &str) -> Result<()> {
    let cid = match inspect(containers, id).await {
        Ok(inspected) => full_id(&inspected),
        Err(Error::NotFound(_)) => return Ok(()),
        Err(err) => return Err(err),
    };
    containers.logs.stop(&cid);
    match containers.docker.remove_container(&cid).await {
        Ok(()) | Err(DockerError::NotFound(_)) => containers.view.forget(&cid),
        Err(err) => return Err(err).context(|| format!("remove container {cid}")),
    }
    tracing::info!(container = %cid, "container removed");
    Ok(())
}

/// Containers matching a filter, from the live view.
pub fn list(
    containers: &Containers<'_>,
    filter: Option<ContainerFilter>,
) -> Vec<crate::api::Container> {
    let filter = filter.unwrap_or_default();
    let wanted_state = filter.state.map(|s| s.state);
    let all = containers.list_cache.get(containers.view.generation(), || {
        Arc::new(
            containers
                .view
                .all(Kind::Container)
                .iter()
                .filter_map(|e| status::container_from_inspect(&e.inspected))
                .collect(),
        )
    });
    all.iter()
        .filter(|c| filter.id.is_empty() || c.id.starts_with(&filter.id))
        .filter(|c| {
            filter.pod_sandbox_id.is_empty() || c.pod_sandbox_id.starts_with(&filter.pod_sandbox_id)
        })
        .filter(|c| wanted_state.is_none_or(|state| c.state == state))
        .filter(|c| {
            filter
                .label_selector
                .iter()
                .all(|(k, v)| c.labels.get(k) == Some(v))
        })
        .cloned()
        .collect()
}

/// The status of one container.
pub async fn container_status(
    containers: &Containers<'_>,
    id: &str,
    verbose: bool,
) -> Result<ContainerStatusResponse> {
    let inspected = inspect(containers, id).await?;
    let image = image_of(containers.view, &inspected).await?;
    Ok(ContainerStatusResponse {
        status: Some(status::status_from_inspect(&inspected, image.as_deref())),
        info: if verbose {
            status::verbose_info(&inspected)
        } else {
            Default::default()
        },
    })
}

/// Applies new resource limits to a container. A request without Linux
/// resources changes nothing.
pub async fn update_resources(
    containers: &Containers<'_>,
    id: &str,
    resources: Option<LinuxContainerResources>,
) -> Result<()> {
    let cid = full_id(inspect(containers, id).await?.as_ref());
    let Some(resources) = resources else {
        return Ok(());
    };
    let limits = spec::Limits::from_cri(Some(&resources), containers.settings.may_lower_oom_score)?;
    containers
        .docker
        .update_container(&cid, limits.update_body())
        .await
        .context(|| format!("update resources of container {cid}"))?;
    containers.view.refresh(&cid).await;
    Ok(())
}

/// The container's image, from the view's cache. The image may have been
/// removed while the container exists.
pub(crate) async fn image_of(
    view: &View,
    inspected: &ContainerInspectResponse,
) -> Result<Option<Arc<ImageInspect>>> {
    match inspected.image.as_deref() {
        Some(image_id) => view
            .image(image_id)
            .await
            .context(|| format!("inspect image {image_id}")),
        None => Ok(None),
    }
}

/// Runs a command in a running container and returns its output and exit
/// code. With a timeout, a command still running when it expires is killed
/// and DEADLINE_EXCEEDED returned.
pub async fn exec_sync(
    containers: &Containers<'_>,
    req: ExecSyncRequest,
) -> Result<ExecSyncResponse> {
    if req.cmd.is_empty() {
        return Err(Error::InvalidArgument("exec command is required".into()));
    }
    let (cid, _) = inspect_running(containers, &req.container_id).await?;
    let spec = ExecSpec {
        cmd: req.cmd.clone(),
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let exec_id = containers
        .docker
        .create_exec(&cid, spec)
        .await
        .context(|| format!("create exec in container {cid}"))?;
    let run = async {
        let streams = containers
            .docker
            .start_exec(&exec_id, false, None)
            .await
            .context(|| format!("start exec {exec_id} in container {cid}"))?;
        crate::exec_output::collect(
            streams.into_output(),
            EXEC_OUTPUT_CAP,
            containers.exec_output,
        )
        .await
        .map_err(|e| Error::Internal(format!("read the output of exec {exec_id}: {e}")))
    };
    let finished = if req.timeout > 0 {
        let limit = Duration::from_secs(u64::try_from(req.timeout).unwrap_or(0));
        tokio::time::timeout(limit, run).await.ok()
    } else {
        Some(run.await)
    };
    let Some(output) = finished else {
        // Dropping the exec's connection does not end the process: kill it,
        // so a hung probe does not pile up processes in the container.
        kill_exec(containers.docker.as_ref(), &exec_id).await;
        return Err(Error::DeadlineExceeded(format!(
            "command {:?} in container {cid} timed out after {}s",
            req.cmd, req.timeout
        )));
    };
    let mut output = output?;
    if output.dropped > 0 {
        tracing::warn!(
            container = %cid,
            exec = %exec_id,
            dropped = output.dropped,
            kept = output.stdout.len() + output.stderr.len(),
            "ExecSync output truncated: over the per-call cap or the node-wide budget"
        );
    }
    let exit_code = exit_code(containers.docker.as_ref(), &exec_id).await?;
    Ok(ExecSyncResponse {
        stdout: std::mem::take(&mut output.stdout),
        stderr: std::mem::take(&mut output.stderr),
        exit_code,
    })
}

/// How long to wait, after an exec's output ends, for Docker to record that
/// its process exited.
const EXEC_EXIT_WAIT: Duration = Duration::from_secs(5);

/// The exit code of a finished exec. Docker may report the exec as running
/// for a moment after its streams close, so this polls briefly.
pub(crate) async fn exit_code(docker: &dyn DockerApi, exec_id: &str) -> Result<i32> {
    let deadline = tokio::time::Instant::now() + EXEC_EXIT_WAIT;
    loop {
        let inspected = docker
            .inspect_exec(exec_id)
            .await
            .context(|| format!("inspect exec {exec_id}"))?;
        if inspected.running != Some(true) {
            let code = inspected.exit_code.unwrap_or_default();
            return Ok(i32::try_from(code).unwrap_or(i32::MAX));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Internal(format!(
                "exec {exec_id} closed its output but still runs after {EXEC_EXIT_WAIT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills an exec's process by its host PID.
pub(crate) async fn kill_exec(docker: &dyn DockerApi, exec_id: &str) {
    let pid = match docker.inspect_exec(exec_id).await {
        Ok(inspected) if inspected.running == Some(true) => inspected.pid.unwrap_or_default(),
        Ok(_) => return,
        Err(err) => {
            tracing::warn!(exec = exec_id, error = %err, "cannot inspect a timed-out exec");
            return;
        }
    };
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    if let Err(err) = rustix::process::kill_process(pid, rustix::process::Signal::KILL) {
        tracing::warn!(exec = exec_id, pid = pid.as_raw_nonzero().get(), error = %err, "cannot kill a timed-out exec");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_mount_of_one_image_gets_its_own_spelling_of_the_id() {
        let hex = "0123456789abcdef".repeat(4);
        let id = format!("sha256:{hex}");
        let sources: Vec<String> = (0..super::MAX_MOUNTS_OF_ONE_IMAGE)
            .map(|n| super::image_mount_source(&id, n).expect("a spelling"))
            .collect();
        assert_eq!(sources[0], id);
        assert_eq!(sources[1], hex);
        assert_eq!(sources[2], hex[..63]);
        let distinct: std::collections::HashSet<_> = sources.iter().collect();
        assert_eq!(distinct.len(), sources.len());
        assert!(sources.iter().all(|s| s.len() >= 13));
        assert_eq!(
            super::image_mount_source(&id, super::MAX_MOUNTS_OF_ONE_IMAGE),
            None
        );
        // Back to the id, as ContainerStatus reports it.
        for source in &sources {
            assert_eq!(
                super::image_mount_id(source, sources.iter().map(String::as_str)),
                id
            );
        }
        assert_eq!(super::image_mount_id(&hex, std::iter::empty()), id);
        // A name that is not an id is used once, as it is.
        assert_eq!(
            super::image_mount_source("busybox:1", 0).as_deref(),
            Some("busybox:1")
        );
        assert_eq!(super::image_mount_source("busybox:1", 1), None);
        assert_eq!(
            super::image_mount_id("busybox:1", std::iter::empty()),
            "busybox:1"
        );
    }

    use super::*;
    use crate::api::ContainerState;
    use crate::docker::fake::Call;
    use crate::testing::{self, create_request, create_started, pod_request};

    fn state_of(shim: &crate::shim::Shim, id: &str) -> i32 {
        list(&shim.containers(), None)
            .into_iter()
            .find(|c| c.id == id)
            .map(|c| c.state)
            .unwrap_or(-1)
    }

    #[tokio::test]
    async fn create_start_stop_remove() {
        let t = testing::shim();
        let sandbox = crate::sandbox::run(&t.shim.sandboxes(), pod_request("web"))
            .await
            .unwrap();
        t.docker.clear_calls();

        let id = create(&t.shim.containers(), create_request(&sandbox, "app"))
            .await
            .unwrap();
        let changes = t.docker.changes();
        assert!(matches!(&changes[..], [Call::Create(name, body)]
            if name == "k8s_app_web_default_uid-web_0"
                && body.image.as_deref() == Some("busybox")
                && body.labels.as_ref().and_then(|l| l.get(naming::SANDBOX_ID_LABEL))
                    == Some(&sandbox)));
        assert_eq!(
            state_of(&t.shim, &id),
            ContainerState::ContainerCreated as i32
        );

        start(&t.shim.containers(), &id).await.unwrap();
        assert_eq!(
            state_of(&t.shim, &id),
            ContainerState::ContainerRunning as i32
        );
        stop(&t.shim.containers(), &id, 5).await.unwrap();
        assert_eq!(
            state_of(&t.shim, &id),
            ContainerState::ContainerExited as i32
        );
        remove(&t.shim.containers(), &id).await.unwrap();
        assert_eq!(state_of(&t.shim, &id), -1);
        assert_eq!(
            t.docker.changes()[1..],
            [
                Call::Start(id.clone()),
                Call::Stop(id.clone(), Duration::from_secs(5)),
                Call::Remove(id),
            ]
        );
    }

    #[tokio::test]
    async fn stopping_or_removing_a_missing_container_succeeds() {
        let t = testing::shim();
        stop(&t.shim.containers(), "0123abcd", 10).await.unwrap();
        remove(&t.shim.containers(), "0123abcd").await.unwrap();
        assert!(t.docker.changes().is_empty());
    }

    #[tokio::test]
    async fn a_name_held_by_a_running_container_is_refused_and_nothing_is_removed() {
        let t = testing::shim();
        let sandbox = crate::sandbox::run(&t.shim.sandboxes(), pod_request("web"))
            .await
            .unwrap();
        let running = create_started(&t.shim, &sandbox, "app").await;
        t.docker.clear_calls();
        let err = create(&t.shim.containers(), create_request(&sandbox, "app"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::AlreadyExists(_)), "{err}");
        assert!(
            !t.docker
                .changes()
                .iter()
                .any(|c| matches!(c, Call::Remove(_) | Call::Stop(..))),
            "{:?}",
            t.docker.changes()
        );
        assert!(t.docker.container(&running).is_some());
    }

    #[tokio::test]
    async fn a_stale_created_holder_of_the_name_is_removed_and_replaced() {
        let t = testing::shim();
        let sandbox = crate::sandbox::run(&t.shim.sandboxes(), pod_request("web"))
            .await
            .unwrap();
        let stale = create(&t.shim.containers(), create_request(&sandbox, "app"))
            .await
            .unwrap();
        t.docker.clear_calls();
        let new = create(&t.shim.containers(), create_request(&sandbox, "app"))
            .await
            .unwrap();
        assert_ne!(new, stale);
        let changes = t.docker.changes();
        let name = "k8s_app_web_default_uid-web_0".to_string();
        assert!(
            matches!(&changes[..], [Call::Create(a, _), Call::Remove(r), Call::Create(b, _)]
            if *a == name && *r == stale && *b == name),
            "{changes:?}"
        );
        assert!(t.docker.container(&stale).is_none());
        assert_eq!(
            state_of(&t.shim, &new),
            ContainerState::ContainerCreated as i32
        );
        assert_eq!(state_of(&t.shim, &stale), -1);
    }

    /// A shim with a running container to exec in; its id.
    async fn exec_target() -> (testing::TestShim, String) {
        let t = testing::shim();
        let sandbox = crate::sandbox::run(&t.shim.sandboxes(), pod_request("web"))
            .await
            .unwrap();
        let id = create_started(&t.shim, &sandbox, "app").await;
        (t, id)
    }

    fn exec_request(id: &str, timeout: i64) -> ExecSyncRequest {
        ExecSyncRequest {
            container_id: id.into(),
            cmd: vec!["probe".into()],
            timeout,
        }
    }

    #[tokio::test]
    async fn exec_sync_keeps_stdout_and_stderr_apart_and_passes_the_exit_code() {
        let (t, id) = exec_target().await;
        let mut script = t.docker.script_exec(false);
        let process = tokio::spawn(async move {
            script.stdout(b"one\n").await.unwrap();
            script.stderr(b"oops\n").await.unwrap();
            script.stdout(b"two").await.unwrap();
            script.exit(42);
        });
        let response = exec_sync(&t.shim.containers(), exec_request(&id, 0))
            .await
            .unwrap();
        process.await.unwrap();
        assert_eq!(response.stdout, b"one\ntwo");
        assert_eq!(response.stderr, b"oops\n");
        assert_eq!(response.exit_code, 42);
        assert!(t.docker.calls().contains(&Call::CreateExec(
            id,
            crate::docker::ExecSpec {
                cmd: vec!["probe".into()],
                stdout: true,
                stderr: true,
                ..Default::default()
            }
        )));
    }

    #[tokio::test]
    async fn exec_sync_output_over_the_cap_is_cut_and_the_command_still_answers() {
        let (t, id) = exec_target().await;
        let mut script = t.docker.script_exec(false);
        const PRINTED: usize = EXEC_OUTPUT_CAP + 100_000;
        let process = tokio::spawn(async move {
            let chunk = vec![b'x'; 32 * 1024];
            let mut left = PRINTED;
            while left > 0 {
                let n = left.min(chunk.len());
                script.stdout(&chunk[..n]).await.unwrap();
                left -= n;
            }
            script.stderr(b"late\n").await.unwrap();
            script.exit(0);
        });
        let response = exec_sync(&t.shim.containers(), exec_request(&id, 0))
            .await
            .unwrap();
        process.await.unwrap();
        assert_eq!(response.stdout.len(), EXEC_OUTPUT_CAP);
        assert!(response.stderr.is_empty());
        assert_eq!(response.exit_code, 0);
    }

    #[tokio::test]
    async fn exec_sync_past_its_timeout_is_deadline_exceeded_and_the_process_is_looked_up_to_kill()
    {
        let (t, id) = exec_target().await;
        let mut script = t.docker.script_exec(false);
        script.stdout(b"started\n").await.unwrap();
        let started = tokio::time::Instant::now();
        let err = tokio::time::timeout(
            Duration::from_secs(10),
            exec_sync(&t.shim.containers(), exec_request(&id, 1)),
        )
        .await
        .expect("the timeout ends the call")
        .unwrap_err();
        assert!(matches!(err, Error::DeadlineExceeded(_)), "{err}");
        assert!(started.elapsed() >= Duration::from_secs(1));
        // The exec still runs: the shim asked Docker for its PID to kill it
        // (the fake's exec has none, so nothing is killed).
        assert!(
            t.docker
                .calls()
                .iter()
                .any(|c| matches!(c, Call::InspectExec(_))),
            "{:?}",
            t.docker.calls()
        );
        script.exit(137);
    }

    #[tokio::test]
    async fn exec_sync_whose_start_fails_is_an_error() {
        let (t, id) = exec_target().await;
        // Nothing scripted: the fake refuses to start the exec.
        let err = exec_sync(&t.shim.containers(), exec_request(&id, 0))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("start exec"), "{err}");
    }
}
