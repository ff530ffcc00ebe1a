//! Pod sandboxes: the lifecycle of a pod's pause container, which holds the
//! network, IPC and (when shared) PID namespaces its containers join.

pub mod spec;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::models::ContainerInspectResponse;
use futures_util::future::join_all;

use crate::api::{
    Namespace, NamespaceMode, NamespaceOption, PodIp, PodSandbox, PodSandboxConfig,
    PodSandboxFilter, PodSandboxNetworkStatus, PodSandboxState, PodSandboxStatus,
    PodSandboxStatusResponse, RunPodSandboxRequest,
};
use crate::docker::{DockerError, timestamp_nanos};
use crate::error::{DockerContext, Error, Result};
use crate::shim::Shim;
use crate::view::{Entry, Kind, Phase};
use crate::{checkpoint, naming};

/// Grace period of the pause process; it exits at once on SIGTERM.
const PAUSE_STOP_GRACE: Duration = Duration::from_secs(10);

/// Creates and starts a pod's pause container; returns the sandbox id.
pub async fn run(shim: &Shim, req: RunPodSandboxRequest) -> Result<String> {
    let config = req
        .config
        .ok_or_else(|| Error::InvalidArgument("sandbox config is required".into()))?;
    let meta = naming::check_sandbox_metadata(config.metadata.as_ref())?;
    let runtime = runtime_for_handler(shim, &req.runtime_handler)?;
    let image = shim.pause.ensure(shim.docker.as_ref()).await?;
    let body = spec::create_body(
        &config,
        &spec::SandboxEnv {
            image: &image,
            runtime,
            oom_score_adj: shim.settings.sandbox_oom_score_adj,
            cgroup_driver: shim.host.cgroup_driver,
            network_mode: shim.network.docker_network_mode(),
        },
    )?;
    let host_network = spec::namespace_options(&config).network == NamespaceMode::Node as i32;
    let name = naming::sandbox_name(meta);
    let id = create_named(shim, &name, body).await?;
    // For a node that goes back to cri-dockerd: its DEL reads the host
    // ports from here.
    if let Err(err) = checkpoint::write(&shim.config.root_directory, &id, &config, host_network) {
        tracing::warn!(sandbox = %id, error = %err, "cannot write the cri-dockerd checkpoint");
    }
    let pending = (!host_network).then(|| shim.network.begin(&id));
    if let Err(err) = shim.docker.start_container(&id).await {
        drop(pending);
        discard(shim, &id).await;
        return Err(err).context(|| format!("start sandbox {name}"));
    }
    if !host_network && let Err(err) = attach_network(shim, &id, &config).await {
        drop(pending);
        discard(shim, &id).await;
        return Err(err);
    }
    // Ready from here: the refresh tells GetContainerEvents' watchers.
    drop(pending);
    shim.view.refresh(&id).await;
    tracing::info!(sandbox = %id, name = %name, "pod sandbox running");
    Ok(id)
}

/// Attaches a started pause container to the pod network (CNI); on
/// failure nothing of the attachment is left.
async fn attach_network(shim: &Shim, id: &str, config: &PodSandboxConfig) -> Result<()> {
    if !shim.network.is_cni() {
        return Ok(());
    }
    let pid = match shim.view.reinspect(id).await {
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
    shim.network
        .attach(&crate::network::PodAttachment {
            sandbox_id: id,
            pid,
            config,
        })
        .await
}

/// The Docker runtime for a CRI runtime handler: Docker's default for the
/// empty handler, else a runtime Docker knows.
fn runtime_for_handler<'a>(shim: &Shim, handler: &'a str) -> Result<Option<&'a str>> {
    if handler.is_empty() || handler == shim.host.default_runtime {
        return Ok(None);
    }
    if shim.host.runtimes.iter().any(|r| r == handler) {
        return Ok(Some(handler));
    }
    Err(Error::InvalidArgument(format!(
        "runtime handler {handler:?} is not configured in Docker (known: {})",
        shim.host.runtimes.join(", ")
    )))
}

/// Creates a container named `name`. A name held by a running sandbox or
/// container is refused: it is in use, and removing it would destroy what
/// runs. A holder that is not running (left by an attempt that failed or
/// was cut short by a crash) is torn down first, a sandbox with its
/// containers and network; if that fails, the new container gets a random
/// suffix, which name parsing tolerates.
pub(crate) async fn create_named(
    shim: &Shim,
    name: &str,
    body: bollard::models::ContainerCreateBody,
) -> Result<String> {
    match shim.docker.create_container(name, body.clone()).await {
        Ok(id) => return Ok(id),
        Err(DockerError::Conflict(_)) => {}
        Err(err) => return Err(err).context(|| format!("create container {name}")),
    }
    let retry_name = match remove_stale_holder(shim, name).await {
        Ok(()) => name.to_string(),
        Err(err @ Error::AlreadyExists(_)) => return Err(err),
        Err(err) => {
            tracing::warn!(name, error = %err, "cannot remove the stale holder of the name; using a new name");
            format!("{name}_{}", random_suffix())
        }
    };
    shim.docker
        .create_container(&retry_name, body)
        .await
        .context(|| format!("create container {retry_name}"))
}

/// Removes what holds `name`, unless it runs.
async fn remove_stale_holder(shim: &Shim, name: &str) -> Result<()> {
    let holder = match shim.docker.inspect_container(name).await {
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
    shim.view.reinspect(&id).await.ok();
    match shim.view.lookup(&id) {
        crate::view::Lookup::Found(entry) if entry.kind == Kind::Sandbox => {
            stop(shim, &id).await?;
            remove(shim, &id).await
        }
        _ => match shim.docker.remove_container(&id).await {
            Ok(()) | Err(DockerError::NotFound(_)) => {
                shim.view.forget(&id);
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

/// Removes a container the shim just created and could not use; failures
/// are logged, since the original error is what the caller needs to see.
pub(crate) async fn discard(shim: &Shim, id: &str) {
    // A sandbox's checkpoint goes with it (containers have none).
    if let Err(err) = checkpoint::remove(&shim.config.root_directory, id) {
        tracing::warn!(container = id, error = %err, "cannot remove a cri-dockerd checkpoint");
    }
    match shim.docker.remove_container(id).await {
        Ok(()) => shim.view.forget(id),
        Err(err) if err.is_not_found() => shim.view.forget(id),
        Err(err) => {
            tracing::error!(container = id, error = %err, "cannot remove a half-created container");
        }
    }
}

/// Finds a sandbox by id (or unique id prefix). Anything that is not a pod
/// sandbox is reported as not found.
pub async fn inspect(shim: &Shim, id: &str) -> Result<Entry> {
    shim.view.find(id, Kind::Sandbox, "pod sandbox").await
}

/// Stops a sandbox: its containers are killed, then the pause container is
/// stopped. Stopping a stopped or missing sandbox succeeds.
pub async fn stop(shim: &Shim, id: &str) -> Result<()> {
    let sandbox = match inspect(shim, id).await {
        Ok(sandbox) => sandbox,
        Err(Error::NotFound(_)) => {
            // The pause container was removed behind our back: its network
            // may still be attached, and the CNI cache knows how.
            if naming::is_full_id(id) {
                shim.network.detach(id, None, None).await?;
            }
            return Ok(());
        }
        Err(err) => return Err(err),
    };
    let sandbox_id = sandbox.id();
    let containers = shim.view.containers_of(sandbox_id);
    let stops = containers
        .iter()
        .filter(|c| c.phase() == Phase::Running)
        .map(|c| async move {
            let cid = c.id();
            match shim.docker.stop_container(cid, Duration::ZERO).await {
                Ok(()) | Err(DockerError::NotFound(_)) => {
                    shim.view.refresh(cid).await;
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
        shim.network.detach(sandbox_id, pid, Some(&pod)).await?;
    }
    match shim
        .docker
        .stop_container(sandbox_id, PAUSE_STOP_GRACE)
        .await
    {
        Ok(()) | Err(DockerError::NotFound(_)) => shim.view.refresh(sandbox_id).await,
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
pub async fn remove(shim: &Shim, id: &str) -> Result<()> {
    let sandbox = match inspect(shim, id).await {
        Ok(sandbox) => sandbox,
        Err(Error::NotFound(_)) => {
            // Removed behind the shim's back (`docker rm -f`): its network
            // may still be attached. Only a full id can name what the CNI
            // cache and the pins hold.
            if naming::is_full_id(id) {
                shim.network.detach(id, None, None).await?;
            }
            return Ok(());
        }
        Err(err) => return Err(err),
    };
    let sandbox_id = sandbox.id();
    if on_cni_network(&sandbox.inspected) {
        // Normally StopPodSandbox tore the network down already; this only
        // acts on what the CNI cache still holds.
        shim.network.detach(sandbox_id, None, None).await?;
    }
    let containers = shim.view.containers_of(sandbox_id);
    let removals = containers.iter().map(|c| c.id()).map(|cid| async move {
        shim.logs.stop(cid);
        match shim.docker.remove_container(cid).await {
            Ok(()) | Err(DockerError::NotFound(_)) => {
                shim.view.forget(cid);
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
    match shim.docker.remove_container(sandbox_id).await {
        Ok(()) | Err(DockerError::NotFound(_)) => shim.view.forget(sandbox_id),
        Err(err) => return Err(err).context(|| format!("remove pod sandbox {sandbox_id}")),
    }
    if let Err(err) = checkpoint::remove(&shim.config.root_directory, sandbox_id) {
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
pub async fn reclaim_orphaned_networks(shim: &Shim) {
    let pinned = match shim.network.pinned_sandboxes() {
        Ok(pinned) => pinned,
        Err(err) => {
            tracing::warn!(error = %err, "cannot look for orphaned pod networks");
            return;
        }
    };
    for id in pinned {
        match shim.docker.inspect_container(&id).await {
            Err(DockerError::NotFound(_)) => {}
            Ok(_) => continue,
            Err(err) => {
                tracing::warn!(sandbox = %id, error = %err, "cannot tell whether a pinned pod still exists");
                continue;
            }
        }
        match shim.network.detach(&id, None, None).await {
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
pub async fn status(shim: &Shim, id: &str, verbose: bool) -> Result<PodSandboxStatusResponse> {
    let sandbox = inspect(shim, id).await?;
    let status = status_of(shim, &sandbox.inspected);
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
/// CNI network, the IPs of its attachment. A pod whose network is still
/// being set up is not ready.
pub fn status_of(shim: &Shim, inspected: &ContainerInspectResponse) -> PodSandboxStatus {
    let mut status = status_from_inspect(inspected, &shim.host.default_runtime);
    if !on_cni_network(inspected) {
        return status;
    }
    if shim.network.is_pending(&status.id) || network_incomplete(shim, inspected) {
        status.state = PodSandboxState::SandboxNotready as i32;
    }
    if status.state == PodSandboxState::SandboxReady as i32 {
        let mut ips = shim
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

/// True for a running pod on a CNI network that never got its address: its
/// setup was cut short (the shim was killed during ADD) and no result was
/// cached. Such a pod is not ready, so the kubelet replaces it instead of
/// running containers without a network; stopping it tears down what the
/// partial setup left.
fn network_incomplete(shim: &Shim, inspected: &ContainerInspectResponse) -> bool {
    let Some(id) = inspected.id.as_deref() else {
        return false;
    };
    crate::host::is_running(inspected)
        && on_cni_network(inspected)
        && !shim.network.is_pending(id)
        && shim.network.pod_ips(id).is_some_and(|ips| ips.is_empty())
}

/// True for a pause container on Docker's `none` network, which CNI
/// plugins attach; pods on Docker's bridge or the host's network are not
/// CNI's to tear down.
fn on_cni_network(inspected: &ContainerInspectResponse) -> bool {
    inspected
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.as_deref())
        == Some("none")
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
pub fn list(shim: &Shim, filter: Option<PodSandboxFilter>) -> Vec<PodSandbox> {
    let filter = filter.unwrap_or_default();
    let wanted_state = filter.state.map(|s| s.state);
    let all = shim.sandbox_list.get(shim.view.generation(), || {
        Arc::new(
            shim.view
                .all(Kind::Sandbox)
                .iter()
                .filter_map(|e| sandbox_from_inspect(shim, &e.inspected))
                .collect(),
        )
    });
    // A pod whose network is being set up is not ready yet; that is not a
    // change of the view, so it is applied here.
    let state_of = |s: &PodSandbox| {
        if s.state == PodSandboxState::SandboxReady as i32 && shim.network.is_pending(&s.id) {
            PodSandboxState::SandboxNotready as i32
        } else {
            s.state
        }
    };
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

/// A CRI sandbox list entry; containers whose names are not sandbox names
/// are skipped.
fn sandbox_from_inspect(shim: &Shim, inspected: &ContainerInspectResponse) -> Option<PodSandbox> {
    let status = status_from_inspect(inspected, &shim.host.default_runtime);
    let state = if network_incomplete(shim, inspected) {
        PodSandboxState::SandboxNotready as i32
    } else {
        status.state
    };
    Some(PodSandbox {
        id: status.id,
        metadata: Some(status.metadata?),
        state,
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
        let id = run(&t.shim, pod_request("web")).await.unwrap();
        let changes = t.docker.changes();
        assert!(matches!(&changes[0], Call::Pull(repo, tag, false)
            if repo.ends_with("pause") && tag == "3.10"));
        assert!(matches!(&changes[1], Call::Create(name, body)
            if name == "k8s_POD_web_default_uid-web_0"
                && body.image.as_deref() == Some("registry.k8s.io/pause:3.10")));
        assert_eq!(changes[2], Call::Start(id.clone()));
        assert_eq!(changes.len(), 3);
        // The caller sees its own change at once.
        let listed = list(&t.shim, None);
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
        let err = run(&t.shim, pod_request("web")).await.unwrap_err();
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
        assert!(list(&t.shim, None).is_empty());
    }

    #[tokio::test]
    async fn stop_stops_the_containers_before_the_pause_container_and_remove_removes_them_first() {
        let t = testing::shim();
        let sandbox = run(&t.shim, pod_request("web")).await.unwrap();
        let container = testing::create_started(&t.shim, &sandbox, "app").await;
        t.docker.clear_calls();

        stop(&t.shim, &sandbox).await.unwrap();
        assert_eq!(
            t.docker.changes(),
            [
                Call::Stop(container.clone(), Duration::ZERO),
                Call::Stop(sandbox.clone(), PAUSE_STOP_GRACE),
            ]
        );
        let status = status(&t.shim, &sandbox, false).await.unwrap();
        assert_eq!(
            status.status.unwrap().state,
            PodSandboxState::SandboxNotready as i32
        );

        t.docker.clear_calls();
        remove(&t.shim, &sandbox).await.unwrap();
        assert_eq!(
            t.docker.changes(),
            [Call::Remove(container), Call::Remove(sandbox.clone())]
        );
        assert_eq!(t.docker.container_count(), 0);
        let ready = Some(PodSandboxFilter {
            state: Some(PodSandboxStateValue { state: 0 }),
            ..Default::default()
        });
        assert!(list(&t.shim, ready).is_empty());
    }

    #[tokio::test]
    async fn stopping_and_removing_a_missing_sandbox_succeed_without_docker_changes() {
        let t = testing::shim();
        stop(&t.shim, "0123abcd").await.unwrap();
        remove(&t.shim, "0123abcd").await.unwrap();
        assert!(t.docker.changes().is_empty());
    }

    #[tokio::test]
    async fn a_name_held_by_a_stopped_sandbox_is_freed_by_tearing_it_down() {
        let t = testing::shim();
        let old = run(&t.shim, pod_request("web")).await.unwrap();
        t.docker.stop_container(&old, Duration::ZERO).await.unwrap();
        t.docker.clear_calls();
        let new = run(&t.shim, pod_request("web")).await.unwrap();
        assert_ne!(new, old);
        let changes = t.docker.changes();
        assert!(changes.contains(&Call::Remove(old.clone())), "{changes:?}");
        assert_eq!(changes.last(), Some(&Call::Start(new)));
        assert_eq!(t.docker.container_count(), 1);
    }
}
