//! What Docker reports about a container, in CRI terms: list entries and
//! full statuses.

use std::collections::HashMap;

use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, ImageInspect, MountType,
};

use crate::api::{
    Container, ContainerResources, ContainerState, ContainerStatus, ContainerUser, ImageSpec,
    LinuxContainerResources, LinuxContainerUser, Mount, MountPropagation,
};
use crate::docker::timestamp_nanos;
use crate::naming;

fn state_from_inspect(state: Option<&ContainerStateStatusEnum>) -> ContainerState {
    use ContainerStateStatusEnum as S;
    match state {
        Some(S::CREATED) => ContainerState::ContainerCreated,
        Some(S::RUNNING | S::PAUSED | S::RESTARTING) => ContainerState::ContainerRunning,
        Some(S::EXITED | S::DEAD | S::REMOVING) => ContainerState::ContainerExited,
        _ => ContainerState::ContainerUnknown,
    }
}

/// A CRI container list entry; containers without a container name the
/// shim can read are skipped.
pub fn container_from_inspect(inspected: &ContainerInspectResponse) -> Option<Container> {
    let metadata = naming::parse_container_name(inspected.name.as_deref()?)?;
    let config = inspected.config.as_ref();
    let docker_labels = config.and_then(|c| c.labels.as_ref());
    let sandbox_id = docker_labels
        .and_then(|l| l.get(naming::SANDBOX_ID_LABEL))
        .cloned()
        .unwrap_or_default();
    let (labels, annotations) =
        naming::from_docker_labels(docker_labels.unwrap_or(&HashMap::new()), false);
    let image_id = inspected.image.clone().unwrap_or_default();
    Some(Container {
        id: inspected.id.clone()?,
        pod_sandbox_id: sandbox_id,
        metadata: Some(metadata),
        image: Some(ImageSpec {
            image: config.and_then(|c| c.image.clone()).unwrap_or_default(),
            ..Default::default()
        }),
        image_ref: image_id.clone(),
        state: state_from_inspect(inspected.state.as_ref().and_then(|s| s.status.as_ref())) as i32,
        created_at: timestamp_nanos(inspected.created.as_deref()),
        labels,
        annotations,
        image_id,
    })
}

/// The image reference the kubelet shows as a container's image ID, in the
/// form dockershim used: `docker-pullable://repo@digest` for pulled images,
/// `docker://sha256:...` for images only known by id.
pub fn image_ref(image_id: &str, image: Option<&ImageInspect>) -> String {
    match image
        .and_then(|i| i.repo_digests.as_ref())
        .and_then(|d| d.first())
    {
        Some(digest) => format!("docker-pullable://{digest}"),
        None => format!("docker://{image_id}"),
    }
}

/// The image name a container's status shows: the image's first tag, as
/// Kubernetes' own dockershim and containerd report it. The kubelet creates
/// containers from the image's id (`sha256:...`), which is what Docker then
/// records, and it shows this name in the pod's status, where a user (and
/// the node e2e suite) expects the name the image was pulled by. An image
/// without a tag keeps what the container was created from.
pub fn status_image_name(created_from: Option<&str>, image: Option<&ImageInspect>) -> String {
    image
        .and_then(|i| i.repo_tags.as_ref())
        .and_then(|tags| tags.iter().find(|tag| tag.as_str() != "<none>:<none>"))
        .map(String::as_str)
        .or(created_from)
        .unwrap_or_default()
        .to_string()
}

/// A full CRI status from `docker inspect` of the container and its image.
pub fn status_from_inspect(
    inspected: &ContainerInspectResponse,
    image: Option<&ImageInspect>,
) -> ContainerStatus {
    let config = inspected.config.clone().unwrap_or_default();
    let docker_labels = config.labels.clone().unwrap_or_default();
    let (labels, annotations) = naming::from_docker_labels(&docker_labels, false);
    let state = inspected.state.clone().unwrap_or_default();
    let cri_state = state_from_inspect(state.status.as_ref());
    let exit_code = state.exit_code.unwrap_or_default();
    let docker_error = state.error.clone().unwrap_or_default();

    let (reason, message) = match cri_state {
        ContainerState::ContainerExited if state.oom_killed == Some(true) => {
            ("OOMKilled", String::new())
        }
        ContainerState::ContainerExited if !docker_error.is_empty() => {
            ("ContainerCannotRun", docker_error)
        }
        ContainerState::ContainerExited if exit_code == 0 => ("Completed", String::new()),
        ContainerState::ContainerExited => ("Error", String::new()),
        ContainerState::ContainerCreated if !docker_error.is_empty() => {
            ("ContainerCannotRun", docker_error)
        }
        _ => ("", String::new()),
    };

    let image_id = inspected.image.clone().unwrap_or_default();
    ContainerStatus {
        id: inspected.id.clone().unwrap_or_default(),
        metadata: inspected
            .name
            .as_deref()
            .and_then(naming::parse_container_name),
        state: cri_state as i32,
        created_at: timestamp_nanos(inspected.created.as_deref()),
        started_at: timestamp_nanos(state.started_at.as_deref()),
        finished_at: timestamp_nanos(state.finished_at.as_deref()),
        exit_code: i32::try_from(exit_code).unwrap_or(i32::MAX),
        image: Some(ImageSpec {
            image: status_image_name(config.image.as_deref(), image),
            ..Default::default()
        }),
        image_ref: image_ref(&image_id, image),
        image_id,
        reason: reason.to_string(),
        message,
        labels,
        annotations,
        mounts: mounts(inspected),
        log_path: docker_labels
            .get(naming::LOG_PATH_LABEL)
            .cloned()
            .unwrap_or_default(),
        resources: Some(resources(inspected)),
        user: user(inspected),
        stop_signal: crate::security::signal_from_docker(config.stop_signal.as_deref()),
    }
}

/// The limits Docker applies now (they change with UpdateContainerResources),
/// so the kubelet can tell whether an in-place resize took effect.
fn resources(inspected: &ContainerInspectResponse) -> ContainerResources {
    let host = inspected.host_config.clone().unwrap_or_default();
    ContainerResources {
        linux: Some(LinuxContainerResources {
            cpu_period: host.cpu_period.unwrap_or_default(),
            cpu_quota: host.cpu_quota.unwrap_or_default(),
            cpu_shares: host.cpu_shares.unwrap_or_default(),
            memory_limit_in_bytes: host.memory.unwrap_or_default(),
            memory_swap_limit_in_bytes: host.memory_swap.unwrap_or_default().max(0),
            oom_score_adj: host.oom_score_adj.unwrap_or_default(),
            cpuset_cpus: host.cpuset_cpus.unwrap_or_default(),
            cpuset_mems: host.cpuset_mems.unwrap_or_default(),
            ..Default::default()
        }),
        windows: None,
    }
}

/// The process's user as Docker runs it, when it is numeric (a user name
/// would need the image's /etc/passwd to resolve).
/// The identity the container's process runs with: read from the kernel
/// while it runs (so user names and the image's groups are resolved as
/// applied), else from Docker's numeric `User` setting.
fn user(inspected: &ContainerInspectResponse) -> Option<ContainerUser> {
    let running_pid = inspected
        .state
        .as_ref()
        .filter(|s| s.running == Some(true))
        .and_then(|s| s.pid)
        .filter(|pid| *pid > 0);
    if let Some(user) = running_pid
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .and_then(|status| user_from_proc_status(&status))
    {
        return Some(user);
    }
    let configured = inspected.config.as_ref()?.user.clone().unwrap_or_default();
    let (uid, gid) = match configured.split_once(':') {
        Some((uid, gid)) => (uid, Some(gid)),
        None => (configured.as_str(), None),
    };
    let uid = if uid.is_empty() {
        Some(0)
    } else {
        uid.parse::<i64>().ok()
    }?;
    let gid = match gid {
        Some(gid) => gid.parse::<i64>().ok()?,
        None if uid == 0 => 0,
        None => return None,
    };
    let supplemental_groups = inspected
        .host_config
        .as_ref()
        .and_then(|h| h.group_add.clone())
        .unwrap_or_default()
        .iter()
        .filter_map(|g| g.parse().ok())
        .collect();
    Some(container_user(uid, gid, supplemental_groups))
}

fn container_user(uid: i64, gid: i64, supplemental_groups: Vec<i64>) -> ContainerUser {
    ContainerUser {
        linux: Some(LinuxContainerUser {
            uid,
            gid,
            supplemental_groups,
        }),
    }
}

/// Real uid, gid and supplementary groups from `/proc/<pid>/status`.
fn user_from_proc_status(status: &str) -> Option<ContainerUser> {
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
    };
    let first = |key: &str| -> Option<i64> { field(key)?.split_whitespace().next()?.parse().ok() };
    let uid = first("Uid:")?;
    let gid = first("Gid:")?;
    let supplemental_groups = field("Groups:")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|g| g.parse().ok())
        .collect();
    Some(container_user(uid, gid, supplemental_groups))
}

/// The container's bind mounts as Docker applied them.
fn mounts(inspected: &ContainerInspectResponse) -> Vec<Mount> {
    // Image volumes as they were asked for: Docker's mount point names the
    // layer it mounted, the request names the image.
    let requested = inspected
        .host_config
        .as_ref()
        .and_then(|h| h.mounts.as_ref());
    let image_volume = |target: &str| {
        requested?
            .iter()
            .find(|m| m.typ == Some(MountType::IMAGE) && m.target.as_deref() == Some(target))
    };
    inspected
        .mounts
        .iter()
        .flatten()
        .filter(|m| m.destination.is_some())
        .map(|m| {
            let container_path = m.destination.clone().unwrap_or_default();
            if let Some(image) = image_volume(&container_path) {
                // The shim mounts the image by its id, spelled differently
                // for each mount of the same image.
                let sources = requested
                    .into_iter()
                    .flatten()
                    .filter(|m| m.typ == Some(MountType::IMAGE))
                    .filter_map(|m| m.source.as_deref());
                let id =
                    super::image_mount_id(image.source.as_deref().unwrap_or_default(), sources);
                return Mount {
                    container_path,
                    readonly: true,
                    image: Some(ImageSpec {
                        image: id.clone(),
                        image_ref: id,
                        ..Default::default()
                    }),
                    image_sub_path: image
                        .image_options
                        .as_ref()
                        .and_then(|o| o.subpath.clone())
                        .unwrap_or_default(),
                    ..Default::default()
                };
            }
            Mount {
                container_path,
                host_path: m.source.clone().unwrap_or_default(),
                readonly: !m.rw.unwrap_or(true),
                propagation: match m.propagation.as_deref() {
                    Some("rshared" | "shared") => MountPropagation::PropagationBidirectional,
                    Some("rslave" | "slave") => MountPropagation::PropagationHostToContainer,
                    _ => MountPropagation::PropagationPrivate,
                } as i32,
                ..Default::default()
            }
        })
        .collect()
}

/// Verbose status details for `crictl inspect`.
pub fn verbose_info(inspected: &ContainerInspectResponse) -> HashMap<String, String> {
    let labels = inspected
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    let info = serde_json::json!({
        "sandboxID": labels.get(naming::SANDBOX_ID_LABEL),
        "pid": inspected.state.as_ref().and_then(|s| s.pid),
        "dockerName": inspected.name.as_deref().map(naming::bare_name),
        "entrypoint": inspected.path,
        "args": inspected.args,
        "hostConfig": inspected.host_config.as_ref().map(|h| serde_json::json!({
            "networkMode": h.network_mode,
            "ipcMode": h.ipc_mode,
            "pidMode": h.pid_mode,
            "binds": h.binds,
        })),
    });
    HashMap::from([("info".to_string(), info.to_string())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerConfig, ContainerState as DockerState, MountPoint};

    #[test]
    fn a_running_processs_identity_comes_from_the_kernel() {
        let status = "Name:\tsh\nUid:\t65534\t65534\t65534\t65534\nGid:\t65533\t65533\t65533\t65533\nGroups:\t10 20 \n";
        let user = user_from_proc_status(status).unwrap().linux.unwrap();
        assert_eq!((user.uid, user.gid), (65534, 65533));
        assert_eq!(user.supplemental_groups, [10, 20]);
        assert!(user_from_proc_status("Name:\tsh\n").is_none());
    }

    fn inspected(
        status: ContainerStateStatusEnum,
        exit: i64,
        oom: bool,
        error: &str,
    ) -> ContainerInspectResponse {
        ContainerInspectResponse {
            id: Some("c1".into()),
            name: Some("/k8s_app_web_default_u1_2".into()),
            created: Some("2026-11-26T21:35:40.000000001Z".into()),
            image: Some("sha256:abc".into()),
            state: Some(DockerState {
                status: Some(status),
                exit_code: Some(exit),
                oom_killed: Some(oom),
                error: Some(error.into()),
                started_at: Some("2026-11-26T21:35:41Z".into()),
                finished_at: Some("0001-01-01T00:00:00Z".into()),
                ..Default::default()
            }),
            config: Some(ContainerConfig {
                image: Some("busybox".into()),
                labels: Some(HashMap::from([
                    (
                        naming::LOG_PATH_LABEL.to_string(),
                        "/var/log/pods/x/app/2.log".to_string(),
                    ),
                    (naming::SANDBOX_ID_LABEL.to_string(), "s1".to_string()),
                    ("annotation.a".to_string(), "b".to_string()),
                ])),
                ..Default::default()
            }),
            mounts: Some(vec![MountPoint {
                source: Some("/srv".into()),
                destination: Some("/data".into()),
                rw: Some(false),
                propagation: Some("rslave".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn exited_containers_get_the_kubelets_reasons() {
        use ContainerStateStatusEnum::*;
        let reason =
            |s, exit, oom, err| status_from_inspect(&inspected(s, exit, oom, err), None).reason;
        assert_eq!(reason(EXITED, 0, false, ""), "Completed");
        assert_eq!(reason(EXITED, 2, false, ""), "Error");
        assert_eq!(reason(EXITED, 137, true, ""), "OOMKilled");
        assert_eq!(
            reason(CREATED, 127, false, "exec: not found"),
            "ContainerCannotRun"
        );
        assert_eq!(reason(RUNNING, 0, false, ""), "");
    }

    #[test]
    fn status_reports_what_docker_applied() {
        let s = status_from_inspect(
            &inspected(ContainerStateStatusEnum::EXITED, 3, false, ""),
            None,
        );
        assert_eq!(s.metadata.unwrap().attempt, 2);
        assert_eq!(s.state, ContainerState::ContainerExited as i32);
        assert_eq!(s.exit_code, 3);
        assert_eq!(s.created_at, 1_795_728_940_000_000_001);
        assert_eq!(s.started_at, 1_795_728_941_000_000_000);
        assert_eq!(s.finished_at, 0);
        assert_eq!(s.log_path, "/var/log/pods/x/app/2.log");
        assert_eq!(s.annotations["a"], "b");
        assert!(
            s.labels.is_empty(),
            "internal labels are hidden: {:?}",
            s.labels
        );
        assert_eq!(s.image_ref, "docker://sha256:abc");
        assert_eq!(s.mounts[0].host_path, "/srv");
        assert!(s.mounts[0].readonly);
        assert_eq!(
            s.mounts[0].propagation,
            MountPropagation::PropagationHostToContainer as i32
        );
    }

    #[test]
    fn the_status_names_the_image_by_its_first_tag() {
        let tagged = ImageInspect {
            repo_tags: Some(vec![
                "<none>:<none>".into(),
                "registry.k8s.io/busybox:1".into(),
            ]),
            ..Default::default()
        };
        let untagged = ImageInspect {
            repo_tags: Some(vec![]),
            ..Default::default()
        };
        let s = status_from_inspect(
            &inspected(ContainerStateStatusEnum::RUNNING, 0, false, ""),
            Some(&tagged),
        );
        assert_eq!(s.image.unwrap().image, "registry.k8s.io/busybox:1");
        assert_eq!(
            status_image_name(Some("sha256:abc"), Some(&untagged)),
            "sha256:abc"
        );
        assert_eq!(status_image_name(Some("busybox"), None), "busybox");
    }

    #[test]
    fn pulled_images_are_referenced_by_digest() {
        let image = ImageInspect {
            repo_digests: Some(vec!["localhost:5000/app@sha256:def".into()]),
            ..Default::default()
        };
        assert_eq!(
            image_ref("sha256:abc", Some(&image)),
            "docker-pullable://localhost:5000/app@sha256:def"
        );
    }
}
