//! Pod sandboxes: the lifecycle of a pod's pause container, which holds the
//! network, IPC and (when shared) PID namespaces its containers join.

pub mod readiness;
pub mod spec;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bollard::models::ContainerInspectResponse;
use futures_util::future::join_all;

use crate::api::{
    Namespace, NamespaceMode, NamespaceOption, PodIp, PodSandbox, PodSandboxConfig,
    PodSandboxFilter, PodSandboxNetworkStatus, PodSandboxState, PodSandboxStatus,
    PodSandboxStatusResponse, RunPodSandboxRequest,
};
use crate::docker::{DockerApi, DockerError, timestamp_nanos};
use crate::error::{DockerContext, Error, Result};
use crate::host::HostFacts;
use crate::image::pause::PauseImage;
use crate::logs::LogWriters;
use crate::network::PodNetwork;
use crate::view::{Entry, Kind, ListCache, Phase, View};
use crate::{checkpoint, naming};
use readiness::on_cni_network;

/// Grace period of the pause process; it exits at once on SIGTERM.
const PAUSE_STOP_GRACE: Duration = Duration::from_secs(10);

/// What sandbox orchestration needs of the shim's state; borrowed from it
/// with `Shim::sandboxes`, so this module does not depend on the whole
/// shared state.
pub struct Sandboxes<'a> {
    /// The Docker Engine.
    pub docker: &'a Arc<dyn DockerApi>,
    /// The pod network (Docker's bridge or CNI).
    pub network: &'a Arc<dyn PodNetwork>,
    /// The live view of the sandboxes and containers.
    pub view: &'a Arc<View>,
    /// Writers of the containers' CRI log files, stopped on removal.
    pub logs: &'a LogWriters,
    /// The pause image in use.
    pub pause: &'a PauseImage,
    /// Facts about Docker: cgroup driver, runtimes.
    pub host: &'a HostFacts,
    /// oom_score_adj for pause containers; `None` when the host does not
    /// let us lower scores.
    pub oom_score_adj: Option<i64>,
    /// The shim's state directory, which holds cri-dockerd's checkpoints.
    pub root_directory: &'a Path,
    /// The CRI list of every sandbox, as of a view generation.
    pub list_cache: &'a ListCache<PodSandbox>,
}

/// Creates and starts a pod's pause container; returns the sandbox id.
pub async fn run(sandboxes: &Sandboxes<'_>, req: RunPodSandboxRequest) -> Result<String> {
    let config = req
        .config
        .ok_or_else(|| Error::InvalidArgument("sandbox config is required".into()))?;
    let meta = naming::check_sandbox_metadata(config.metadata.as_ref())?;
    let runtime = runtime_for_handler(sandboxes.host, &req.runtime_handler)?;
    let image = sandboxes.pause.ensure(sandboxes.docker.as_ref()).await?;
    let body = spec::create_body(
        &config,
        &spec::SandboxEnv {
            image: &image,
            runtime,
            oom_score_adj: sandboxes.oom_score_adj,
            cgroup_driver: sandboxes.host.cgroup_driver,
            network_mode: sandboxes.network.docker_network_mode(),
        },
    )?;
    let host_network = spec::namespace_options(&config).network == NamespaceMode::Node as i32;
    let name = naming::sandbox_name(meta);
    let id = create_named(sandboxes, &name, body).await?;
    // Whatever ends this call before the pod runs (an error, or the client
    // giving up on the call, which drops it) takes the pod down again.
    let unfinished = Unfinished::new(sandboxes, &id, (!host_network).then_some(&config));
    // For a node that goes back to cri-dockerd: its DEL reads the host
    // ports from here.
    if let Err(err) = checkpoint::write(sandboxes.root_directory, &id, &config, host_network) {
        tracing::warn!(sandbox = %id, error = %err, "cannot write the cri-dockerd checkpoint");
    }
    let pending = (!host_network).then(|| sandboxes.network.begin(&id));
    if let Err(err) = sandboxes.docker.start_container(&id).await {
        drop(pending);
        unfinished.undo().await;
        return Err(err).context(|| format!("start sandbox {name}"));
    }
    if !host_network && let Err(err) = attach_network(sandboxes, &id, &config).await {
        drop(pending);
        // The attachment undid itself.
        unfinished.undo().await;
        return Err(err);
    }
    unfinished.done();
    // Ready from here: the refresh tells GetContainerEvents' watchers.
    drop(pending);
    sandboxes.view.refresh(&id).await;
    tracing::info!(sandbox = %id, name = %name, "pod sandbox running");
    Ok(id)
}

/// A pause container RunPodSandbox created and has not finished setting
/// up. Undone explicitly on an error; dropped unfinished (the call was
/// cancelled, possibly during its network ADD), it is undone in a task of
/// its own: the network torn down, then the container removed.
struct Unfinished {
    docker: Arc<dyn DockerApi>,
    view: Arc<View>,
    root_directory: PathBuf,
    id: String,
    /// The pod network and the pod's config, for a pod not on the host's
    /// network; `None` once finished or undone.
    network: Option<(Arc<dyn PodNetwork>, PodSandboxConfig)>,
    finished: bool,
}

impl Unfinished {
    /// `network`: the pod is not on the host's network, so its network may
    /// get attached.
    fn new(sandboxes: &Sandboxes<'_>, id: &str, network: Option<&PodSandboxConfig>) -> Self {
        Self {
            docker: sandboxes.docker.clone(),
            view: sandboxes.view.clone(),
            root_directory: sandboxes.root_directory.to_path_buf(),
            id: id.to_string(),
            network: network.map(|config| (sandboxes.network.clone(), config.clone())),
            finished: false,
        }
    }

    /// The pod runs: nothing to undo.
    fn done(mut self) {
        self.finished = true;
    }

    /// Removes the container and its checkpoint now, after an error the
    /// network setup (if any) undid itself. Failures are logged, since the
    /// original error is what the caller needs to see.
    async fn undo(mut self) {
        self.finished = true;
        discard(
            self.docker.as_ref(),
            &self.view,
            &self.root_directory,
            &self.id,
        )
        .await;
    }

    /// Tears down what a cancelled setup may have left of the network,
    /// then removes the container.
    async fn undo_cancelled(mut self) {
        if let Some((network, config)) = self.network.take()
            && let Err(err) = network.detach(&self.id, None, Some(&config)).await
        {
            tracing::error!(sandbox = %self.id, error = %err, "cannot tear down the network of a pod whose start was cancelled");
        }
        self.undo().await;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(sandbox = %self.id, "cannot remove a pod whose start was cancelled: no runtime");
            return;
        };
        tracing::warn!(sandbox = %self.id, "RunPodSandbox cancelled before the pod ran; removing it");
        let cancelled = Unfinished {
            docker: self.docker.clone(),
            view: self.view.clone(),
            root_directory: std::mem::take(&mut self.root_directory),
            id: std::mem::take(&mut self.id),
            network: self.network.take(),
            // The task undoes it by running; dropped unrun (the runtime
            // shuts down), it must not spawn another.
            finished: true,
        };
        runtime.spawn(cancelled.undo_cancelled());
    }
}

/// Attaches a started pause container to the pod network (CNI); on
/// failure nothing of the attachment is left.
async fn attach_network(
    sandboxes: &Sandboxes<'_>,
    id: &str,
    config: &PodSandboxConfig,
) -> Result<()> {
    if !sandboxes.network.is_cni() {
        return Ok(());
    }
    let pid = match sandboxes.view.reinspect(id).await {
        Ok(Some(entry)) => entry
            .inspected
            .state
            .as_ref()
            .and_then(|s| s.pid)
            .and_then(|pid| u32::try_from(pid).ok())
            .filter(|pid| *pid > 0),
        Ok(None) => None,
        Err(err) => return Err(err).context(|| format!("inspect pod sandbox {id}")),
    };
    let Some(pid) = pid else {
        return Err(Error::Internal(format!(
            "pod sandbox {id} exited before its network was set up"
        )));
    };
    sandboxes
        .network
        .attach(&crate::network::PodAttachment {
            sandbox_id: id,
            pid,
            config,
        })
        .await
}

/// The Docker runtime for a CRI runtime handler: Docker's default for the
/// empty handler, else a runtime Docker knows.
fn runtime_for_handler<'a>(host: &HostFacts, handler: &'a str) -> Result<Option<&'a str>> {
    if handler.is_empty() || handler == host.default_runtime {
        return Ok(None);
    }
    if host.runtimes.iter().any(|r| r == handler) {
        return Ok(Some(handler));
    }
    Err(Error::InvalidArgument(format!(
        "runtime handler {handler:?} is not configured in Docker (known: {})",
        host.runtimes.join(", ")
    )))
}

/// Creates a container named `name`. A name held by a running sandbox or
/// container is refused: it is in use, and removing it would destroy what
/// runs. A holder that is not running (left by an attempt that failed or
/// was cut short by a crash) is torn down first, a sandbox with its
/// containers and network; if that fails, the new container gets a random
/// suffix, which name parsing tolerates.
pub(crate) async fn create_named(
    sandboxes: &Sandboxes<'_>,
    name: &str,
    body: bollard::models::ContainerCreateBody,
) -> Result<String> {
    match sandboxes.docker.create_container(name, body.clone()).await {
        Ok(id) => return Ok(id),
        Err(DockerError::Conflict(_)) => {}
        Err(err) => return Err(err).context(|| format!("create container {name}")),
    }
    let retry_name = match remove_stale_holder(sandboxes, name).await {
        Ok(()) => name.to_string(),
        Err(err @ Error::AlreadyExists(_)) => return Err(err),
        Err(err) => {
            tracing::warn!(name, error = %err, "cannot remove the stale holder of the name; using a new name");
            format!("{name}_{}", random_suffix())
        }
    };
    sandboxes
        .docker
        .create_container(&retry_name, body)
        .await
        .context(|| format!("create container {retry_name}"))
}

/// Removes what holds `name`, unless it runs.
async fn remove_stale_holder(sandboxes: &Sandboxes<'_>, name: &str) -> Result<()> {
    let holder = match sandboxes.docker.inspect_container(name).await {
        Ok(holder) => holder,
        Err(DockerError::NotFound(_)) => return Ok(()),
        Err(err) => return Err(err).context(|| format!("inspect the holder of name {name}")),
    };
    let id = holder.id.clone().unwrap_or_default();
    if crate::host::is_running(&holder) {
        return Err(Error::AlreadyExists(format!(
            "name {name} is held by running container {id}: stop and remove it first"
        )));
    }
    tracing::warn!(name, holder = %id, "name held by a container that does not run; removing it");
    sandboxes.view.reinspect(&id).await.ok();
    match sandboxes.view.lookup(&id) {
        crate::view::Lookup::Found(entry) if entry.kind == Kind::Sandbox => {
            stop(sandboxes, &id).await?;
            remove(sandboxes, &id).await
        }
        _ => match sandboxes.docker.remove_container(&id).await {
            Ok(()) | Err(DockerError::NotFound(_)) => {
                sandboxes.view.forget(&id);
                Ok(())
            }
            Err(err) => Err(err).context(|| format!("remove stale container {id}")),
        },
    }
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        // Only uniqueness matters here; the clock is a fine fallback.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        bytes = nanos.to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes a pause container the shim just created and could not use,
/// with its checkpoint; failures are logged, since the original error is
/// what the caller needs to see.
async fn discard(docker: &dyn DockerApi, view: &View, root_directory: &Path, id: &str) {
    if let Err(err) = checkpoint::remove(root_directory, id) {
        tracing::warn!(container = id, error = %err, "cannot remove a cri-dockerd checkpoint");
    }
    match docker.remove_container(id).await {
        Ok(()) => view.forget(id),
        Err(err) if err.is_not_found() => view.forget(id),
        Err(err) => {
            tracing::error!(container = id, error = %err, "cannot remove a half-created container");
        }
    }
}

/// Finds a sandbox by id (or unique id prefix). Anything that is not a pod
/// sandbox is reported as not found.
pub async fn inspect(sandboxes: &Sandboxes<'_>, id: &str) -> Result<Entry> {
    sandboxes.view.find(id, Kind::Sandbox, "pod sandbox").await
}

/// Stops a sandbox: its containers are killed, then the pause container is
/// stopped. Stopping a stopped or missing sandbox succeeds.
pub async fn stop(sandboxes: &Sandboxes<'_>, id: &str) -> Result<()> {
    let sandbox = match inspect(sandboxes, id).await {
        Ok(sandbox) => sandbox,
        Err(Error::NotFound(_)) => {
            // The pause container was removed behind our back: its network
            // may still be attached, and the CNI cache knows how.
            if naming::is_full_id(id) {
                sandboxes.network.detach(id, None, None).await?;
            }
            return Ok(());
        }
        Err(err) => return Err(err),
    };
    let sandbox_id = sandbox.id();
    let containers = sandboxes.view.containers_of(sandbox_id);
    let stops = containers
        .iter()
        .filter(|c| c.phase() == Phase::Running)
        .map(|c| async move {
            let cid = c.id();
            match sandboxes.docker.stop_container(cid, Duration::ZERO).await {
                Ok(()) | Err(DockerError::NotFound(_)) => {
                    sandboxes.view.refresh(cid).await;
                    Ok(())
                }
                Err(err) => {
                    Err(err).context(|| format!("stop container {cid} of pod sandbox {sandbox_id}"))
                }
            }
        });
    join_all(stops)
        .await
        .into_iter()
        .collect::<Result<Vec<()>>>()?;
    if on_cni_network(&sandbox.inspected) {
        let pid = (sandbox.phase() == Phase::Running)
            .then(|| sandbox.inspected.state.as_ref().and_then(|s| s.pid))
            .flatten()
            .and_then(|pid| u32::try_from(pid).ok())
            .filter(|pid| *pid > 0);
        let pod = pod_config_of(&sandbox.inspected);
        sandboxes
            .network
            .detach(sandbox_id, pid, Some(&pod))
            .await?;
    }
    match sandboxes
        .docker
        .stop_container(sandbox_id, PAUSE_STOP_GRACE)
        .await
    {
        Ok(()) | Err(DockerError::NotFound(_)) => sandboxes.view.refresh(sandbox_id).await,
        Err(err) => return Err(err).context(|| format!("stop pod sandbox {sandbox_id}")),
    }
    tracing::info!(sandbox = %sandbox_id, "pod sandbox stopped");
    Ok(())
}

/// What a pod's network teardown needs of its config, read back from its
/// pause container: the metadata (from the name), the host ports and the
/// annotations (from the labels).
fn pod_config_of(inspected: &ContainerInspectResponse) -> PodSandboxConfig {
    let labels = inspected
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    let (_, annotations) = naming::from_docker_labels(&labels, true);
    PodSandboxConfig {
        metadata: inspected
            .name
            .as_deref()
            .and_then(naming::parse_sandbox_name),
        port_mappings: labels
            .get(naming::PORT_MAPPINGS_LABEL)
            .map(|l| naming::decode_port_mappings(l))
            .unwrap_or_default(),
        annotations,
        ..Default::default()
    }
}

/// Removes a sandbox and all its containers. Removing a missing sandbox
/// succeeds.
pub async fn remove(sandboxes: &Sandboxes<'_>, id: &str) -> Result<()> {
    let sandbox = match inspect(sandboxes, id).await {
        Ok(sandbox) => sandbox,
        Err(Error::NotFound(_)) => {
            // Removed behind the shim's back (`docker rm -f`): its network
            // may still be attached. Only a full id can name what the CNI
            // cache and the pins hold.
            if naming::is_full_id(id) {
                sandboxes.network.detach(id, None, None).await?;
            }
            return Ok(());
        }
        Err(err) => return Err(err),
    };
    let sandbox_id = sandbox.id();
    if on_cni_network(&sandbox.inspected) {
        // Normally StopPodSandbox tore the network down already; this only
        // acts on what the CNI cache and the pin still hold, with the
        // pod's host ports from its labels for plugins such as portmap.
        let pod = pod_config_of(&sandbox.inspected);
        sandboxes
            .network
            .detach(sandbox_id, None, Some(&pod))
            .await?;
    }
    let containers = sandboxes.view.containers_of(sandbox_id);
    let removals = containers.iter().map(|c| c.id()).map(|cid| async move {
        sandboxes.logs.stop(cid);
        match sandboxes.docker.remove_container(cid).await {
            Ok(()) | Err(DockerError::NotFound(_)) => {
                sandboxes.view.forget(cid);
                Ok(())
            }
            Err(err) => {
                Err(err).context(|| format!("remove container {cid} of pod sandbox {sandbox_id}"))
            }
        }
    });
    join_all(removals)
        .await
        .into_iter()
        .collect::<Result<Vec<()>>>()?;
    match sandboxes.docker.remove_container(sandbox_id).await {
        Ok(()) | Err(DockerError::NotFound(_)) => sandboxes.view.forget(sandbox_id),
        Err(err) => return Err(err).context(|| format!("remove pod sandbox {sandbox_id}")),
    }
    if let Err(err) = checkpoint::remove(sandboxes.root_directory, sandbox_id) {
        tracing::warn!(sandbox = %sandbox_id, error = %err, "cannot remove the cri-dockerd checkpoint");
    }
    tracing::info!(sandbox = %sandbox_id, "pod sandbox removed");
    Ok(())
}

/// Tears down the networks of pods whose pause container is gone while
/// their namespace is still pinned: removed with Docker directly, or while
/// no shim ran. Their DEL would otherwise never run, leaving the pod's IP
/// allocated and its iptables rules behind. Run once at start; a failure
/// is logged and left for the next start.
pub async fn reclaim_orphaned_networks(sandboxes: &Sandboxes<'_>) {
    let pinned = match sandboxes.network.pinned_sandboxes() {
        Ok(pinned) => pinned,
        Err(err) => {
            tracing::warn!(error = %err, "cannot look for orphaned pod networks");
            return;
        }
    };
    for id in pinned {
        match sandboxes.docker.inspect_container(&id).await {
            Err(DockerError::NotFound(_)) => {}
            Ok(_) => continue,
            Err(err) => {
                tracing::warn!(sandbox = %id, error = %err, "cannot tell whether a pinned pod still exists");
                continue;
            }
        }
        match sandboxes.network.detach(&id, None, None).await {
            Ok(()) => {
                tracing::info!(sandbox = %id, "tore down the network of a pod removed while no shim ran")
            }
            Err(err) => {
                tracing::warn!(sandbox = %id, error = %err, "cannot tear down the network of a removed pod")
            }
        }
    }
}

/// The status of one sandbox.
pub async fn status(
    sandboxes: &Sandboxes<'_>,
    id: &str,
    verbose: bool,
) -> Result<PodSandboxStatusResponse> {
    let sandbox = inspect(sandboxes, id).await?;
    let status = status_of(sandboxes, &sandbox.inspected);
    let info = if verbose {
        verbose_info(&sandbox.inspected)
    } else {
        HashMap::new()
    };
    Ok(PodSandboxStatusResponse {
        status: Some(status),
        info,
        ..Default::default()
    })
}

/// A sandbox's CRI status from what Docker reported and, for pods on a
/// CNI network, the IPs of its attachment; ready as [`readiness::state`]
/// says.
pub fn status_of(
    sandboxes: &Sandboxes<'_>,
    inspected: &ContainerInspectResponse,
) -> PodSandboxStatus {
    let mut status = status_from_inspect(inspected, &sandboxes.host.default_runtime);
    if !on_cni_network(inspected) {
        return status;
    }
    status.state = readiness::state(sandboxes.network.as_ref(), inspected) as i32;
    if status.state == PodSandboxState::SandboxReady as i32 {
        let mut ips = sandboxes
            .network
            .pod_ips(&status.id)
            .unwrap_or_default()
            .into_iter()
            .map(|ip| ip.to_string());
        status.network = Some(PodSandboxNetworkStatus {
            ip: ips.next().unwrap_or_default(),
            additional_ips: ips.map(|ip| PodIp { ip }).collect(),
        });
    }
    status
}

/// Builds a CRI sandbox status from what Docker reports.
pub fn status_from_inspect(
    inspected: &ContainerInspectResponse,
    default_runtime: &str,
) -> PodSandboxStatus {
    let labels = inspected
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    let (cri_labels, annotations) = naming::from_docker_labels(&labels, true);
    let host = inspected.host_config.clone().unwrap_or_default();
    let state = inspected.state.clone().unwrap_or_default();
    let network_mode = host.network_mode.clone().unwrap_or_default();
    let host_network = network_mode == "host";
    let running = state.running.unwrap_or(false);

    let node_or = |docker_mode: Option<&str>, otherwise: NamespaceMode| {
        if docker_mode == Some("host") {
            NamespaceMode::Node as i32
        } else {
            otherwise as i32
        }
    };
    let shared_pid = labels.contains_key(naming::SHARED_PID_LABEL);
    let options = NamespaceOption {
        network: node_or(Some(network_mode.as_str()), NamespaceMode::Pod),
        pid: node_or(
            host.pid_mode.as_deref(),
            if shared_pid {
                NamespaceMode::Pod
            } else {
                NamespaceMode::Container
            },
        ),
        ipc: node_or(host.ipc_mode.as_deref(), NamespaceMode::Pod),
        ..Default::default()
    };

    let network = (!host_network && running).then(|| pod_network(inspected, &network_mode));
    let runtime = host.runtime.clone().unwrap_or_default();

    PodSandboxStatus {
        id: inspected.id.clone().unwrap_or_default(),
        metadata: inspected
            .name
            .as_deref()
            .and_then(naming::parse_sandbox_name),
        state: if running {
            PodSandboxState::SandboxReady
        } else {
            PodSandboxState::SandboxNotready
        } as i32,
        created_at: timestamp_nanos(inspected.created.as_deref()),
        network,
        linux: Some(crate::api::LinuxPodSandboxStatus {
            namespaces: Some(Namespace {
                options: Some(options),
            }),
        }),
        labels: cri_labels,
        annotations,
        runtime_handler: if runtime == default_runtime {
            String::new()
        } else {
            runtime
        },
    }
}

/// The pod's IPs on Docker's network, IPv4 first.
fn pod_network(
    inspected: &ContainerInspectResponse,
    network_mode: &str,
) -> PodSandboxNetworkStatus {
    let networks = inspected
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default();
    let wanted = if network_mode == "default" {
        "bridge"
    } else {
        network_mode
    };
    let endpoint = networks
        .get(wanted)
        .or_else(|| networks.values().next())
        .cloned()
        .unwrap_or_default();
    let mut ips: Vec<String> = [endpoint.ip_address, endpoint.global_ipv6_address]
        .into_iter()
        .flatten()
        .filter(|ip| !ip.is_empty())
        .collect();
    let primary = if ips.is_empty() {
        String::new()
    } else {
        ips.remove(0)
    };
    PodSandboxNetworkStatus {
        ip: primary,
        additional_ips: ips.into_iter().map(|ip| PodIp { ip }).collect(),
    }
}

fn verbose_info(inspected: &ContainerInspectResponse) -> HashMap<String, String> {
    let host = inspected.host_config.clone().unwrap_or_default();
    let info = serde_json::json!({
        "pid": inspected.state.as_ref().and_then(|s| s.pid),
        "image": inspected.config.as_ref().and_then(|c| c.image.clone()),
        "networkMode": host.network_mode,
        "ipcMode": host.ipc_mode,
        "pidMode": host.pid_mode,
        "cgroupParent": host.cgroup_parent,
        "runtime": host.runtime,
        "resolvConfPath": inspected.resolv_conf_path,
        "hostnamePath": inspected.hostname_path,
        "hostsPath": inspected.hosts_path,
    });
    HashMap::from([("info".to_string(), info.to_string())])
}

/// Sandboxes matching a filter, from the live view.
pub fn list(sandboxes: &Sandboxes<'_>, filter: Option<PodSandboxFilter>) -> Vec<PodSandbox> {
    let filter = filter.unwrap_or_default();
    let wanted_state = filter.state.map(|s| s.state);
    let network = sandboxes.network.as_ref();
    let all = sandboxes.list_cache.get(sandboxes.view.generation(), || {
        Arc::new(
            sandboxes
                .view
                .all(Kind::Sandbox)
                .iter()
                .filter_map(|e| sandbox_from_inspect(sandboxes, &e.inspected))
                .collect(),
        )
    });
    // The cached states are settled ones; a pod whose network is being set
    // up is not ready yet, which is not a change of the view.
    let state_of =
        |s: &PodSandbox| readiness::with_pending(network, &s.id, sandbox_state(s.state)) as i32;
    all.iter()
        .filter(|s| filter.id.is_empty() || s.id.starts_with(&filter.id))
        .filter(|s| wanted_state.is_none_or(|state| state_of(s) == state))
        .filter(|s| {
            filter
                .label_selector
                .iter()
                .all(|(k, v)| s.labels.get(k) == Some(v))
        })
        .map(|s| PodSandbox {
            state: state_of(s),
            ..s.clone()
        })
        .collect()
}

fn sandbox_state(state: i32) -> PodSandboxState {
    PodSandboxState::try_from(state).unwrap_or(PodSandboxState::SandboxNotready)
}

/// A CRI sandbox list entry with its settled state; containers whose
/// names are not sandbox names are skipped.
fn sandbox_from_inspect(
    sandboxes: &Sandboxes<'_>,
    inspected: &ContainerInspectResponse,
) -> Option<PodSandbox> {
    let status = status_from_inspect(inspected, &sandboxes.host.default_runtime);
    Some(PodSandbox {
        id: status.id,
        metadata: Some(status.metadata?),
        state: readiness::settled(sandboxes.network.as_ref(), inspected) as i32,
        created_at: status.created_at,
        labels: status.labels,
        annotations: status.annotations,
        runtime_handler: status.runtime_handler,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PodSandboxStateValue;
    use crate::docker::DockerApi;
    use crate::docker::fake::{Call, Op};
    use crate::testing::{self, pod_request};

    #[tokio::test]
    async fn run_pulls_the_pause_image_then_creates_and_starts_the_pause_container() {
        let t = testing::shim();
        let id = run(&t.shim.sandboxes(), pod_request("web")).await.unwrap();
        let changes = t.docker.changes();
        assert!(matches!(&changes[0], Call::Pull(repo, tag, false)
            if repo.ends_with("pause") && tag == "3.10"));
        assert!(matches!(&changes[1], Call::Create(name, body)
            if name == "k8s_POD_web_default_uid-web_0"
                && body.image.as_deref() == Some("registry.k8s.io/pause:3.10")));
        assert_eq!(changes[2], Call::Start(id.clone()));
        assert_eq!(changes.len(), 3);
        // The caller sees its own change at once.
        let listed = list(&t.shim.sandboxes(), None);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, id);
        assert_eq!(listed[0].state, PodSandboxState::SandboxReady as i32);
    }

    #[tokio::test]
    async fn a_pause_container_that_fails_to_start_is_removed() {
        let t = testing::shim();
        t.docker.fail_next(
            Op::Start,
            DockerError::Api {
                status: 500,
                message: "cannot start".into(),
            },
        );
        let err = run(&t.shim.sandboxes(), pod_request("web"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("cannot start"), "{err}");
        let changes = t.docker.changes();
        let Some(Call::Create(..)) = changes.get(1) else {
            panic!("no create in {changes:?}");
        };
        let id = t.docker.calls().iter().find_map(|c| match c {
            Call::Start(id) => Some(id.clone()),
            _ => None,
        });
        assert_eq!(changes.last(), Some(&Call::Remove(id.unwrap())));
        assert_eq!(t.docker.container_count(), 0);
        assert!(list(&t.shim.sandboxes(), None).is_empty());
    }

    #[tokio::test]
    async fn stop_stops_the_containers_before_the_pause_container_and_remove_removes_them_first() {
        let t = testing::shim();
        let sandbox = run(&t.shim.sandboxes(), pod_request("web")).await.unwrap();
        let container = testing::create_started(&t.shim, &sandbox, "app").await;
        t.docker.clear_calls();

        stop(&t.shim.sandboxes(), &sandbox).await.unwrap();
        assert_eq!(
            t.docker.changes(),
            [
                Call::Stop(container.clone(), Duration::ZERO),
                Call::Stop(sandbox.clone(), PAUSE_STOP_GRACE),
            ]
        );
        let status = status(&t.shim.sandboxes(), &sandbox, false).await.unwrap();
        assert_eq!(
            status.status.unwrap().state,
            PodSandboxState::SandboxNotready as i32
        );

        t.docker.clear_calls();
        remove(&t.shim.sandboxes(), &sandbox).await.unwrap();
        assert_eq!(
            t.docker.changes(),
            [Call::Remove(container), Call::Remove(sandbox.clone())]
        );
        assert_eq!(t.docker.container_count(), 0);
        let ready = Some(PodSandboxFilter {
            state: Some(PodSandboxStateValue { state: 0 }),
            ..Default::default()
        });
        assert!(list(&t.shim.sandboxes(), ready).is_empty());
    }

    #[tokio::test]
    async fn stopping_and_removing_a_missing_sandbox_succeed_without_docker_changes() {
        let t = testing::shim();
        stop(&t.shim.sandboxes(), "0123abcd").await.unwrap();
        remove(&t.shim.sandboxes(), "0123abcd").await.unwrap();
        assert!(t.docker.changes().is_empty());
    }

    #[tokio::test]
    async fn a_name_held_by_a_stopped_sandbox_is_freed_by_tearing_it_down() {
        let t = testing::shim();
        let old = run(&t.shim.sandboxes(), pod_request("web")).await.unwrap();
        t.docker.stop_container(&old, Duration::ZERO).await.unwrap();
        t.docker.clear_calls();
        let new = run(&t.shim.sandboxes(), pod_request("web")).await.unwrap();
        assert_ne!(new, old);
        let changes = t.docker.changes();
        assert!(changes.contains(&Call::Remove(old.clone())), "{changes:?}");
        assert_eq!(changes.last(), Some(&Call::Start(new)));
        assert_eq!(t.docker.container_count(), 1);
    }

    /// Tests of the pod network seam, on the recording fake network.
    mod on_a_pod_network {
        use super::*;
        use crate::api::{
            LinuxPodSandboxConfig, LinuxSandboxSecurityContext, PortMapping, Protocol,
        };
        use crate::network::fake::{FakeNetwork, NetCall};

        /// A test shim whose sandboxes are on a recording fake network
        /// instead of Docker's bridge.
        struct OnFake {
            t: testing::TestShim,
            fake: Arc<FakeNetwork>,
            network: Arc<dyn PodNetwork>,
        }

        fn on_fake() -> OnFake {
            let fake = FakeNetwork::new();
            OnFake {
                t: testing::shim(),
                network: fake.clone(),
                fake,
            }
        }

        impl OnFake {
            fn sandboxes(&self) -> Sandboxes<'_> {
                Sandboxes {
                    network: &self.network,
                    ..self.t.shim.sandboxes()
                }
            }
        }

        async fn status_now(sandboxes: &Sandboxes<'_>, id: &str) -> PodSandboxStatus {
            status(sandboxes, id, false).await.unwrap().status.unwrap()
        }

        fn pod_with_host_port() -> RunPodSandboxRequest {
            let mut req = pod_request("web");
            if let Some(config) = req.config.as_mut() {
                config.port_mappings = vec![PortMapping {
                    protocol: Protocol::Tcp as i32,
                    container_port: 80,
                    host_port: 8080,
                    host_ip: "127.0.0.1".into(),
                }];
            }
            req
        }

        fn begun(fake: &FakeNetwork) -> String {
            fake.changes()
                .iter()
                .find_map(|c| match c {
                    NetCall::Begin(id) => Some(id.clone()),
                    _ => None,
                })
                .expect("a setup began")
        }

        #[tokio::test]
        async fn a_pod_on_the_network_is_attached_with_its_pause_process_and_ready_with_its_ip() {
            let net = on_fake();
            let (t, fake, sandboxes) = (&net.t, &net.fake, net.sandboxes());
            let id = run(&sandboxes, pod_request("web")).await.unwrap();
            let pid = t.docker.container(&id).unwrap().state.unwrap().pid.unwrap();
            assert_eq!(
                fake.changes(),
                [
                    NetCall::Begin(id.clone()),
                    NetCall::Attach(id.clone(), u32::try_from(pid).unwrap())
                ]
            );
            assert!(!fake.any_pending());
            let status = status_now(&sandboxes, &id).await;
            assert_eq!(status.state, PodSandboxState::SandboxReady as i32);
            assert_eq!(status.network.unwrap().ip, "10.88.0.1");
        }

        #[tokio::test]
        async fn a_failed_network_add_removes_the_pod_and_reports_the_plugin_error() {
            let net = on_fake();
            let (t, fake, sandboxes) = (&net.t, &net.fake, net.sandboxes());
            fake.fail_next_add(Error::Internal("plugin bridge failed: no IP left".into()));

            let err = run(&sandboxes, pod_request("web")).await.unwrap_err();
            assert!(
                matches!(&err, Error::Internal(m) if m == "plugin bridge failed: no IP left"),
                "{err:?}"
            );
            let id = begun(fake);
            assert!(!fake.any_pending(), "nothing pending");
            assert!(fake.allocated().is_empty(), "no IP kept");
            assert_eq!(t.docker.container_count(), 0, "no pause container left");
            assert_eq!(t.docker.changes().last(), Some(&Call::Remove(id)));
            assert!(list(&sandboxes, None).is_empty());
        }

        #[tokio::test]
        async fn a_run_cancelled_during_its_network_add_leaves_no_pod_ip_or_pending_state() {
            let net = on_fake();
            let (t, fake, sandboxes) = (&net.t, &net.fake, net.sandboxes());
            let stall = fake.stall_next_add();

            // The kubelet gives up on the call while the ADD runs: the
            // call's future is dropped.
            tokio::select! {
                result = run(&sandboxes, pod_with_host_port()) => panic!("the run ended: {result:?}"),
                () = stall.started() => {}
            }
            let id = begun(fake);
            assert!(!fake.any_pending(), "the pending mark ends with the call");
            // The pod is taken down in a task of its own.
            for _ in 0..200 {
                if t.docker.container_count() == 0 && fake.allocated().is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(t.docker.container_count(), 0, "no pause container left");
            assert!(
                fake.allocated().is_empty(),
                "the IP of the cut ADD is released"
            );
            assert!(fake.pinned_sandboxes().unwrap().is_empty());
            assert!(
                fake.changes().contains(&NetCall::Detach(
                    id.clone(),
                    None,
                    Some(pod_with_host_port().config.unwrap().port_mappings)
                )),
                "{:?}",
                fake.changes()
            );
            assert_eq!(t.docker.changes().last(), Some(&Call::Remove(id)));
            assert!(list(&sandboxes, None).is_empty());
        }

        #[tokio::test]
        async fn stop_and_remove_after_a_restart_tear_down_with_the_host_ports_of_the_labels() {
            let before = on_fake();
            let id = run(&before.sandboxes(), pod_with_host_port())
                .await
                .unwrap();
            let t = &before.t;
            let pid = t.docker.container(&id).unwrap().state.unwrap().pid.unwrap();

            // A new shim: a network with no memory of the pod, and a view
            // that reads the pod back from Docker.
            let fake = FakeNetwork::new();
            let after: Arc<dyn PodNetwork> = fake.clone();
            let sandboxes = Sandboxes {
                network: &after,
                ..t.shim.sandboxes()
            };
            t.shim.view.forget(&id);
            let ports = pod_with_host_port().config.unwrap().port_mappings;

            stop(&sandboxes, &id).await.unwrap();
            assert_eq!(
                fake.changes(),
                [NetCall::Detach(
                    id.clone(),
                    Some(u32::try_from(pid).unwrap()),
                    Some(ports.clone())
                )]
            );
            remove(&sandboxes, &id).await.unwrap();
            assert_eq!(
                fake.changes()[1..],
                [NetCall::Detach(id.clone(), None, Some(ports))]
            );
            assert_eq!(t.docker.container_count(), 0);
        }

        #[tokio::test]
        async fn a_host_network_pod_never_touches_the_pod_network() {
            let net = on_fake();
            let (t, fake, sandboxes) = (&net.t, &net.fake, net.sandboxes());
            let mut req = pod_request("web");
            if let Some(config) = req.config.as_mut() {
                config.linux = Some(LinuxPodSandboxConfig {
                    security_context: Some(LinuxSandboxSecurityContext {
                        namespace_options: Some(NamespaceOption {
                            network: NamespaceMode::Node as i32,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            }
            let id = run(&sandboxes, req).await.unwrap();
            let status = status_now(&sandboxes, &id).await;
            assert_eq!(status.state, PodSandboxState::SandboxReady as i32);
            assert_eq!(
                list(&sandboxes, None)[0].state,
                PodSandboxState::SandboxReady as i32
            );
            stop(&sandboxes, &id).await.unwrap();
            remove(&sandboxes, &id).await.unwrap();
            assert_eq!(fake.calls(), []);
            assert_eq!(t.docker.container_count(), 0);
        }

        #[tokio::test]
        async fn networks_pinned_by_pods_removed_while_no_shim_ran_are_torn_down() {
            let net = on_fake();
            let (t, fake, sandboxes) = (&net.t, &net.fake, net.sandboxes());
            let live = run(&sandboxes, pod_request("web")).await.unwrap();
            let gone = run(&sandboxes, pod_request("db")).await.unwrap();
            t.docker.remove_container(&gone).await.unwrap();
            let before = fake.changes().len();

            reclaim_orphaned_networks(&sandboxes).await;
            assert_eq!(
                fake.changes()[before..],
                [NetCall::Detach(gone, None, None)]
            );
            assert_eq!(fake.pinned_sandboxes().unwrap(), [live]);
        }
    }
}
