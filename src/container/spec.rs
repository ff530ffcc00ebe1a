//! Translation of a CRI `ContainerConfig` into Docker's container
//! configuration: process, labels, namespaces joined from the sandbox,
//! mounts and resource limits.

use std::collections::HashMap;
use std::path::Path;

use bollard::models::{
    ContainerCreateBody, ContainerUpdateBody, HealthConfig, HostConfig, Mount, MountBindOptions,
    MountBindOptionsPropagationEnum, MountImageOptions, MountType,
};

use crate::api::{
    ContainerConfig, LinuxContainerResources, LinuxContainerSecurityContext, MountPropagation,
    NamespaceMode, NamespaceOption, PodSandboxConfig, SupplementalGroupsPolicy,
};
use crate::engine::{EngineFeatures, Feature};
use crate::error::{Error, Result};
use crate::naming;
use crate::security;

/// How application containers are made, settled at start from the command
/// line, the host and the engine.
#[derive(Debug, Clone)]
pub struct Settings {
    /// True when the shim may ask for negative oom_score_adj values.
    pub may_lower_oom_score: bool,
    /// Docker log configuration of application containers
    /// ([`crate::logs::driver`]); `None` keeps the daemon's driver.
    pub log_config: Option<bollard::models::HostConfigLogConfig>,
    /// What the engine can do.
    pub features: EngineFeatures,
}

/// What the container joins and inherits from its sandbox.
#[derive(Debug, Clone)]
pub struct SandboxRef<'a> {
    /// Full id of the sandbox (pause) container.
    pub id: &'a str,
    /// The sandbox's Docker IPC mode (`shareable` or `host`).
    pub ipc_mode: &'a str,
    /// The sandbox's Docker network mode.
    pub network_mode: &'a str,
    /// The sandbox's OCI runtime.
    pub runtime: Option<&'a str>,
    /// The pod's cgroup, as the pause container got it: every container of
    /// the pod sits under it, so the pod's limits and QoS class apply.
    pub cgroup_parent: Option<&'a str>,
}

/// The Docker create request for an application container.
pub fn create_body(
    config: &ContainerConfig,
    sandbox: &SandboxRef<'_>,
    sandbox_config: Option<&PodSandboxConfig>,
    settings: &Settings,
) -> Result<ContainerCreateBody> {
    let image = config
        .image
        .as_ref()
        .map(|i| i.image.as_str())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| Error::InvalidArgument("container image is required".into()))?;
    let linux = config.linux.clone().unwrap_or_default();
    let security = linux.security_context.clone().unwrap_or_default();
    let namespaces = security.namespace_options.clone().unwrap_or_default();
    security::check_namespace_options(&namespaces)?;
    let labels = labels(config, sandbox, sandbox_config)?;
    let env = env(config)?;
    let modes = NamespaceModes::of(&namespaces, sandbox)?;
    let host_config = host_config(
        config,
        &security,
        linux.resources.as_ref(),
        sandbox,
        modes,
        settings,
    )?;

    Ok(ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: (!config.command.is_empty()).then(|| config.command.clone()),
        cmd: (!config.args.is_empty()).then(|| config.args.clone()),
        env: (!env.is_empty()).then_some(env),
        working_dir: (!config.working_dir.is_empty()).then(|| config.working_dir.clone()),
        user: user(&security)?,
        stop_signal: security::stop_signal(config.stop_signal),
        tty: Some(config.tty),
        open_stdin: Some(config.stdin),
        stdin_once: Some(config.stdin_once),
        attach_stdin: Some(config.stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(!config.tty),
        labels: Some(labels),
        // The kubelet runs probes itself; an image's HEALTHCHECK would only
        // burn CPU.
        healthcheck: Some(HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        }),
        host_config: Some(host_config),
        ..Default::default()
    })
}

/// The container's Docker labels: the CRI labels and annotations, its type,
/// its sandbox and its CRI log file.
fn labels(
    config: &ContainerConfig,
    sandbox: &SandboxRef<'_>,
    sandbox_config: Option<&PodSandboxConfig>,
) -> Result<HashMap<String, String>> {
    let mut labels = naming::to_docker_labels(&config.labels, &config.annotations)?;
    labels.insert(naming::TYPE_LABEL.into(), naming::TYPE_CONTAINER.into());
    labels.insert(naming::SANDBOX_ID_LABEL.into(), sandbox.id.into());
    if let Some((log_dir, log_path)) = log_path(config, sandbox_config)? {
        labels.insert(naming::LOG_PATH_LABEL.into(), log_path);
        labels.insert(naming::LOG_DIR_LABEL.into(), log_dir);
    }
    Ok(labels)
}

/// The environment as Docker takes it, `NAME=value`.
fn env(config: &ContainerConfig) -> Result<Vec<String>> {
    config
        .envs
        .iter()
        .map(|kv| {
            if kv.key.is_empty() || kv.key.contains('=') {
                return Err(Error::InvalidArgument(format!(
                    "environment variable name {:?} is empty or contains '='",
                    kv.key
                )));
            }
            let value = std::str::from_utf8(&kv.value).map_err(|_| {
                Error::InvalidArgument(format!(
                    "environment variable {:?} is not UTF-8, which Docker cannot carry",
                    kv.key
                ))
            })?;
            Ok(format!("{}={value}", kv.key))
        })
        .collect()
}

/// The namespaces the container joins, in Docker's modes.
struct NamespaceModes {
    pid: Option<String>,
    ipc: String,
}

impl NamespaceModes {
    /// The sandbox's namespaces unless the CRI asks for the node's, another
    /// container's (PID only) or the container's own (PID only); user
    /// namespaces are refused, since Docker cannot give one per container.
    fn of(namespaces: &NamespaceOption, sandbox: &SandboxRef<'_>) -> Result<Self> {
        let pid = match NamespaceMode::try_from(namespaces.pid).unwrap_or(NamespaceMode::Pod) {
            NamespaceMode::Pod => Some(format!("container:{}", sandbox.id)),
            NamespaceMode::Node => Some("host".to_string()),
            NamespaceMode::Target if namespaces.target_id.is_empty() => {
                return Err(Error::InvalidArgument(
                    "PID namespace TARGET needs namespace_options.target_id".into(),
                ));
            }
            NamespaceMode::Target => Some(format!("container:{}", namespaces.target_id)),
            NamespaceMode::Container => None,
        };
        if namespaces
            .userns_options
            .as_ref()
            .is_some_and(|u| u.mode != NamespaceMode::Node as i32)
        {
            return Err(Error::Unimplemented(
                "user namespaces for containers are not supported on Docker".into(),
            ));
        }
        let ipc = if sandbox.ipc_mode == "host" {
            "host".to_string()
        } else {
            format!("container:{}", sandbox.id)
        };
        Ok(Self { pid, ipc })
    }
}

/// Docker's host config: namespaces, mounts, privileges and security
/// options, devices, resources and the log driver.
fn host_config(
    config: &ContainerConfig,
    security: &LinuxContainerSecurityContext,
    resources: Option<&LinuxContainerResources>,
    sandbox: &SandboxRef<'_>,
    modes: NamespaceModes,
    settings: &Settings,
) -> Result<HostConfig> {
    if security.supplemental_groups_policy == SupplementalGroupsPolicy::Strict as i32 {
        return Err(Error::Unimplemented(
            "supplemental_groups_policy Strict: Docker always adds the groups the image's /etc/group gives the user"
                .into(),
        ));
    }
    let (binds, mounts) = mounts(config, settings)?;
    let limits = Limits::from_cri(resources, settings.may_lower_oom_score)?;
    Ok(HostConfig {
        network_mode: Some(format!("container:{}", sandbox.id)),
        ipc_mode: Some(modes.ipc),
        pid_mode: modes.pid,
        uts_mode: (sandbox.network_mode == "host").then(|| "host".into()),
        binds,
        mounts,
        runtime: sandbox.runtime.map(str::to_string),
        cgroup_parent: sandbox.cgroup_parent.map(str::to_string),
        privileged: Some(security.privileged),
        readonly_rootfs: Some(security.readonly_rootfs),
        cap_add: security
            .capabilities
            .as_ref()
            .map(|c| c.add_capabilities.clone())
            .filter(|c| !c.is_empty()),
        cap_drop: security
            .capabilities
            .as_ref()
            .map(|c| c.drop_capabilities.clone())
            .filter(|c| !c.is_empty()),
        group_add: (!security.supplemental_groups.is_empty()).then(|| {
            security
                .supplemental_groups
                .iter()
                .map(i64::to_string)
                .collect()
        }),
        security_opt: Some(security::security_opts(security)?).filter(|o| !o.is_empty()),
        // Docker applies its own defaults when none are given; an
        // unprivileged container gets the kubelet's lists as they are.
        masked_paths: (!security.privileged && !security.masked_paths.is_empty())
            .then(|| security.masked_paths.clone()),
        readonly_paths: (!security.privileged && !security.readonly_paths.is_empty())
            .then(|| security.readonly_paths.clone()),
        devices: Some(security::devices(&config.devices)?).filter(|d| !d.is_empty()),
        cpu_period: limits.cpu_period,
        cpu_quota: limits.cpu_quota,
        cpu_shares: limits.cpu_shares,
        memory: limits.memory,
        memory_swap: limits.memory_swap,
        cpuset_cpus: limits.cpuset_cpus.clone(),
        cpuset_mems: limits.cpuset_mems.clone(),
        oom_score_adj: limits.oom_score_adj,
        pids_limit: limits.pids_limit,
        device_requests: super::cdi::device_requests(config, settings.features.cdi())?,
        log_config: settings.log_config.clone(),
        ..Default::default()
    })
}

/// The container's CRI log file: the sandbox's log directory joined with the
/// container's log path. Both are checked so the file stays inside the
/// pod's log directory: the shim writes there, and repairs a torn last line.
/// The sandbox's log directory and the container's log file in it.
fn log_path(
    config: &ContainerConfig,
    sandbox_config: Option<&PodSandboxConfig>,
) -> Result<Option<(String, String)>> {
    if config.log_path.is_empty() {
        return Ok(None);
    }
    let dir = sandbox_config
        .map(|s| s.log_directory.as_str())
        .unwrap_or_default();
    if dir.is_empty() || !Path::new(dir).is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "log_path {:?} needs the sandbox's log_directory as an absolute path (got {dir:?})",
            config.log_path
        )));
    }
    let inside = Path::new(&config.log_path).components().all(|c| {
        matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    });
    if !inside {
        return Err(Error::InvalidArgument(format!(
            "log_path {:?} must be relative to the log directory, without '..'",
            config.log_path
        )));
    }
    Ok(Some((
        dir.to_string(),
        Path::new(dir).join(&config.log_path).display().to_string(),
    )))
}

/// Docker's `User`: a uid or user name, with the group when one is given.
fn user(security: &crate::api::LinuxContainerSecurityContext) -> Result<Option<String>> {
    let user = match (&security.run_as_user, security.run_as_username.as_str()) {
        (Some(uid), _) => Some(uid.value.to_string()),
        (None, "") => None,
        (None, name) => Some(name.to_string()),
    };
    match (user, &security.run_as_group) {
        (Some(user), Some(gid)) => Ok(Some(format!("{user}:{}", gid.value))),
        (None, Some(_)) => Err(Error::InvalidArgument(
            "run_as_group needs run_as_user or run_as_username".into(),
        )),
        (user, None) => Ok(user),
    }
}

/// Bind mounts. Plain binds (`host:container:opts`) are used where the paths
/// allow, because Docker then creates a missing host directory as the
/// kubelet expects; paths containing `:` or `,` need the structured form.
/// Docker's two ways to ask for bind mounts: `Binds` strings and `Mounts`.
type BindMounts = (Option<Vec<String>>, Option<Vec<Mount>>);

fn mounts(config: &ContainerConfig, settings: &Settings) -> Result<BindMounts> {
    let mut binds = Vec::new();
    let mut structured = Vec::new();
    for mount in &config.mounts {
        if let Some(image) = &mount.image {
            structured.push(image_mount(mount, &image.image, settings)?);
            continue;
        }
        if mount.container_path.is_empty() || mount.host_path.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "mount {:?} -> {:?}: host_path and container_path are required",
                mount.host_path, mount.container_path
            )));
        }
        for (field, path) in [
            ("host_path", &mount.host_path),
            ("container_path", &mount.container_path),
        ] {
            // A relative host path would silently become a Docker named
            // volume; a relative container path is Docker's error late.
            if !Path::new(path).is_absolute() {
                return Err(Error::InvalidArgument(format!(
                    "mount {field} {path:?} must be an absolute path"
                )));
            }
        }
        let propagation = MountPropagation::try_from(mount.propagation).map_err(|_| {
            Error::InvalidArgument(format!(
                "mount {:?}: propagation {} is not a mount propagation mode",
                mount.container_path, mount.propagation
            ))
        })?;
        if !mount.uid_mappings.is_empty() || !mount.gid_mappings.is_empty() {
            return Err(Error::Unimplemented(format!(
                "mount {:?}: ID-mapped mounts are not supported on Docker",
                mount.container_path
            )));
        }
        if !mount.mount_options.is_empty() {
            return Err(Error::Unimplemented(format!(
                "mount {:?}: mount options {:?} cannot be passed to Docker",
                mount.container_path, mount.mount_options
            )));
        }
        if mount.recursive_read_only && !mount.readonly {
            return Err(Error::InvalidArgument(format!(
                "mount {:?}: recursive_read_only needs readonly",
                mount.container_path
            )));
        }
        // A read-only mount cannot stay recursively read-only while mounts
        // propagate into it from the host.
        if mount.recursive_read_only && propagation != MountPropagation::PropagationPrivate {
            return Err(Error::InvalidArgument(format!(
                "mount {:?}: recursive_read_only needs propagation PRIVATE",
                mount.container_path
            )));
        }
        if mount.recursive_read_only {
            settings.features.require(Feature::RecursiveReadOnly)?;
        }
        let awkward = |p: &str| p.contains(':') || p.contains(',');
        if mount.selinux_relabel && (awkward(&mount.host_path) || awkward(&mount.container_path)) {
            return Err(Error::InvalidArgument(format!(
                "mount {:?}: SELinux relabelling needs paths without ':' or ','",
                mount.container_path
            )));
        }
        // From API 1.44 Docker makes a plain read-only bind recursive; the
        // CRI wants that only when asked, so the others say non-recursive
        // in the structured form. A missing source stays a plain bind, which
        // Docker creates (empty, so nothing under it to differ).
        let read_only_non_recursive = mount.readonly
            && !mount.recursive_read_only
            && settings.features.has(Feature::ReadOnlyNonRecursive)
            && Path::new(&mount.host_path).exists();
        if awkward(&mount.host_path)
            || awkward(&mount.container_path)
            || mount.recursive_read_only
            || read_only_non_recursive
        {
            structured.push(Mount {
                target: Some(mount.container_path.clone()),
                source: Some(mount.host_path.clone()),
                typ: Some(MountType::BIND),
                read_only: Some(mount.readonly),
                bind_options: Some(MountBindOptions {
                    read_only_force_recursive: mount.recursive_read_only.then_some(true),
                    read_only_non_recursive: read_only_non_recursive.then_some(true),
                    // Private is Docker's default, as in `Binds`. Left
                    // unset rather than named: Docker refuses an explicit
                    // rprivate for a source that holds its data root (`/`,
                    // as a node agent mounts it) and makes that one rslave.
                    propagation: match propagation {
                        MountPropagation::PropagationBidirectional => {
                            Some(MountBindOptionsPropagationEnum::RSHARED)
                        }
                        MountPropagation::PropagationHostToContainer => {
                            Some(MountBindOptionsPropagationEnum::RSLAVE)
                        }
                        MountPropagation::PropagationPrivate => None,
                    },
                    ..Default::default()
                }),
                ..Default::default()
            });
            continue;
        }
        let mut opts = Vec::new();
        if mount.readonly {
            opts.push("ro");
        }
        // A private relabel, as the kubelet asks for a pod's own volumes.
        if mount.selinux_relabel {
            opts.push("Z");
        }
        match propagation {
            MountPropagation::PropagationBidirectional => opts.push("rshared"),
            MountPropagation::PropagationHostToContainer => opts.push("rslave"),
            MountPropagation::PropagationPrivate => {}
        }
        let mut bind = format!("{}:{}", mount.host_path, mount.container_path);
        if !opts.is_empty() {
            bind.push(':');
            bind.push_str(&opts.join(","));
        }
        binds.push(bind);
    }
    Ok((
        (!binds.is_empty()).then_some(binds),
        (!structured.is_empty()).then_some(structured),
    ))
}

/// An image volume (KEP-4639): the image's filesystem, read-only, with
/// Docker's image mounts (API 1.48; a sub-path from 1.49).
fn image_mount(mount: &crate::api::Mount, image: &str, settings: &Settings) -> Result<Mount> {
    if !settings.features.has(Feature::ImageMounts) {
        return Err(Error::Unimplemented(format!(
            "image volume at {:?}: image mounts need Docker API {} (Docker 28) or newer; this Docker speaks {}",
            mount.container_path,
            Feature::ImageMounts.min_api(),
            settings.features.api()
        )));
    }
    if image.is_empty() || mount.container_path.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "image volume {:?} -> {:?}: image and container_path are required",
            image, mount.container_path
        )));
    }
    if !mount.readonly {
        return Err(Error::InvalidArgument(format!(
            "image volume at {:?}: image volumes are read-only; readonly must be true",
            mount.container_path
        )));
    }
    let subpath = Some(mount.image_sub_path.clone()).filter(|p| !p.is_empty());
    if let Some(subpath) = &subpath {
        if Path::new(subpath).is_absolute()
            || Path::new(subpath)
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(Error::InvalidArgument(format!(
                "image volume at {:?}: image_sub_path {subpath:?} must be relative and stay inside the image",
                mount.container_path
            )));
        }
        settings.features.require(Feature::ImageMountSubpaths)?;
    }
    Ok(Mount {
        target: Some(mount.container_path.clone()),
        source: Some(image.to_string()),
        typ: Some(MountType::IMAGE),
        read_only: Some(true),
        image_options: subpath.map(|subpath| MountImageOptions {
            subpath: Some(subpath),
        }),
        ..Default::default()
    })
}

/// CRI resource limits in Docker's terms; unset (zero) CRI values stay unset.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Limits {
    /// CFS period in microseconds.
    pub cpu_period: Option<i64>,
    /// CFS quota in microseconds.
    pub cpu_quota: Option<i64>,
    /// CPU weight (shares).
    pub cpu_shares: Option<i64>,
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// Memory plus swap limit in bytes.
    pub memory_swap: Option<i64>,
    /// CPUs the container may use.
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use.
    pub cpuset_mems: Option<String>,
    /// OOM score adjustment.
    pub oom_score_adj: Option<i64>,
    /// Most processes (from the `pids.max` unified key).
    pub pids_limit: Option<i64>,
}

impl Limits {
    /// Translates CRI resources. Without swap asked for, memory+swap equals
    /// the memory limit, so the container gets no swap (the kubelet's
    /// default).
    pub fn from_cri(
        resources: Option<&LinuxContainerResources>,
        may_lower_oom_score: bool,
    ) -> Result<Self> {
        let Some(r) = resources else {
            return Ok(Self::default());
        };
        // The kubelet lists every huge page size, with 0 when none is asked.
        if let Some(h) = r.hugepage_limits.iter().find(|h| h.limit > 0) {
            return Err(Error::Unimplemented(format!(
                "huge page limit {} for {}: Docker cannot limit huge pages",
                h.limit, h.page_size
            )));
        }
        let mut pids_limit = None;
        for (key, value) in &r.unified {
            match key.as_str() {
                "pids.max" if value == "max" => pids_limit = Some(-1),
                "pids.max" => {
                    pids_limit = Some(value.parse::<i64>().map_err(|_| {
                        Error::InvalidArgument(format!(
                            "unified pids.max {value:?} is not a number"
                        ))
                    })?)
                }
                other => {
                    return Err(Error::Unimplemented(format!(
                        "cgroup v2 setting {other:?}: Docker has no way to set it"
                    )));
                }
            }
        }
        for (field, value) in [
            ("cpu_period", r.cpu_period),
            ("cpu_quota", r.cpu_quota),
            ("cpu_shares", r.cpu_shares),
            ("memory_limit_in_bytes", r.memory_limit_in_bytes),
        ] {
            if value < 0 {
                return Err(Error::InvalidArgument(format!(
                    "resources.{field} {value} is negative"
                )));
            }
        }
        let positive = |v: i64| (v > 0).then_some(v);
        let text = |v: &str| (!v.is_empty()).then(|| v.to_string());
        let memory = positive(r.memory_limit_in_bytes);
        let memory_swap = match (memory, positive(r.memory_swap_limit_in_bytes)) {
            (Some(_), Some(swap)) => Some(swap),
            (Some(memory), None) => Some(memory),
            (None, _) => None,
        };
        let oom = if r.oom_score_adj < 0 && !may_lower_oom_score {
            0
        } else {
            r.oom_score_adj
        };
        Ok(Self {
            cpu_period: positive(r.cpu_period),
            cpu_quota: positive(r.cpu_quota),
            cpu_shares: positive(r.cpu_shares),
            memory,
            memory_swap,
            cpuset_cpus: text(&r.cpuset_cpus),
            cpuset_mems: text(&r.cpuset_mems),
            oom_score_adj: (oom != 0).then_some(oom),
            pids_limit,
        })
    }

    /// The update request that applies these limits to a running container.
    /// oom_score_adj cannot be changed after creation and is left out.
    pub fn update_body(&self) -> ContainerUpdateBody {
        ContainerUpdateBody {
            cpu_period: self.cpu_period,
            cpu_quota: self.cpu_quota,
            cpu_shares: self.cpu_shares,
            memory: self.memory,
            memory_swap: self.memory_swap,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            pids_limit: self.pids_limit,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn docker_labels(body: &ContainerCreateBody) -> HashMap<String, String> {
        body.labels.clone().unwrap_or_default()
    }
    use crate::api::{
        ContainerMetadata, ImageSpec, Int64Value, KeyValue, LinuxContainerConfig,
        LinuxContainerSecurityContext, Mount as CriMount, NamespaceOption,
    };

    const SANDBOX: SandboxRef<'static> = SandboxRef {
        id: "sandbox0123",
        ipc_mode: "shareable",
        network_mode: "default",
        runtime: None,
        cgroup_parent: Some("/kubepods/besteffort/podu1"),
    };

    fn config() -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: "app".into(),
                attempt: 1,
            }),
            image: Some(ImageSpec {
                image: "busybox".into(),
                ..Default::default()
            }),
            command: vec!["/bin/sh".into()],
            args: vec!["-c".into(), "sleep 1".into()],
            working_dir: "/tmp".into(),
            envs: vec![KeyValue {
                key: "A".into(),
                value: b"b=c".to_vec(),
            }],
            log_path: "app/1.log".into(),
            labels: HashMap::from([("tier".into(), "front".into())]),
            annotations: HashMap::from([("io.kubernetes.container.hash".into(), "h".into())]),
            mounts: vec![
                CriMount {
                    container_path: "/data".into(),
                    host_path: "/srv/data".into(),
                    readonly: true,
                    propagation: MountPropagation::PropagationHostToContainer as i32,
                    ..Default::default()
                },
                CriMount {
                    container_path: "/odd".into(),
                    host_path: "/srv/a:b".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    /// An engine speaking `api`, on a kernel with `mount_setattr`, with CDI
    /// on where the API carries it.
    fn engine(api: &str) -> crate::engine::EngineFeatures {
        let dirs = vec!["/etc/cdi".to_string()];
        crate::engine::EngineFeatures::new(
            crate::engine::ApiVersion::parse(api),
            "6.1.0",
            Some(&dirs),
        )
    }

    fn settings() -> Settings {
        Settings {
            may_lower_oom_score: true,
            log_config: Some(bollard::models::HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(HashMap::from([("max-size".into(), "10m".into())])),
            }),
            features: engine("1.41"),
        }
    }

    #[test]
    fn features_newer_than_the_engine_are_refused_clearly() {
        let mut cfg = config();
        cfg.mounts[0].recursive_read_only = true;
        cfg.mounts[0].propagation = MountPropagation::PropagationPrivate as i32;
        let err = create_body(&cfg, &SANDBOX, Some(&sandbox_config()), &settings()).unwrap_err();
        assert!(
            matches!(&err, Error::FailedPrecondition(m) if m.contains("1.44")),
            "{err}"
        );
        let newer = Settings {
            features: engine("1.45"),
            ..settings()
        };
        let body = create_body(&cfg, &SANDBOX, Some(&sandbox_config()), &newer).unwrap();
        let mounts = body.host_config.unwrap().mounts.unwrap();
        let rro = mounts
            .iter()
            .find(|m| m.target.as_deref() == Some("/data"))
            .unwrap();
        assert_eq!(
            rro.bind_options.as_ref().unwrap().read_only_force_recursive,
            Some(true)
        );
        // Private is left to Docker's default: an explicit rprivate is
        // refused for a source holding Docker's data root.
        assert_eq!(rro.bind_options.as_ref().unwrap().propagation, None);
    }

    #[test]
    fn cdi_devices_come_from_the_container_not_from_its_sandbox() {
        let on = Settings {
            features: engine("1.51"),
            ..settings()
        };
        let mut sandbox = sandbox_config();
        sandbox
            .annotations
            .insert("cdi.k8s.io/pod".into(), "vendor.com/gpu=1".into());
        let requests = |cfg: &ContainerConfig| {
            create_body(cfg, &SANDBOX, Some(&sandbox), &on)
                .unwrap()
                .host_config
                .unwrap()
                .device_requests
        };
        assert_eq!(requests(&config()), None);
        let mut cfg = config();
        cfg.cdi_devices = vec![crate::api::CdiDevice {
            name: "vendor.com/gpu=0".into(),
        }];
        cfg.annotations
            .insert("cdi.k8s.io/ctr".into(), "vendor.com/gpu=2".into());
        assert_eq!(
            requests(&cfg).unwrap()[0].device_ids,
            Some(vec!["vendor.com/gpu=0".into(), "vendor.com/gpu=2".into()])
        );
        // Docker 20.10 cannot inject them: refused, not silently dropped.
        assert!(matches!(
            create_body(&cfg, &SANDBOX, Some(&sandbox), &settings()),
            Err(Error::FailedPrecondition(_))
        ));
    }

    #[test]
    fn selinux_relabel_and_strict_groups() {
        let mut cfg = config();
        cfg.mounts.truncate(1);
        cfg.mounts[0].selinux_relabel = true;
        let binds = create_body(&cfg, &SANDBOX, Some(&sandbox_config()), &settings())
            .unwrap()
            .host_config
            .unwrap()
            .binds
            .unwrap();
        assert_eq!(binds, vec!["/srv/data:/data:ro,Z,rslave".to_string()]);
        let mut strict = config();
        strict.linux = Some(LinuxContainerConfig {
            security_context: Some(LinuxContainerSecurityContext {
                supplemental_groups_policy: SupplementalGroupsPolicy::Strict as i32,
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(matches!(
            create_body(&strict, &SANDBOX, Some(&sandbox_config()), &settings()),
            Err(Error::Unimplemented(_))
        ));
    }

    fn sandbox_config() -> PodSandboxConfig {
        PodSandboxConfig {
            log_directory: "/var/log/pods/ns_web_u1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn process_labels_and_namespaces_follow_the_sandbox() {
        let body = create_body(&config(), &SANDBOX, Some(&sandbox_config()), &settings()).unwrap();
        assert_eq!(body.image.as_deref(), Some("busybox"));
        assert_eq!(body.entrypoint, Some(vec!["/bin/sh".to_string()]));
        assert_eq!(
            body.cmd,
            Some(vec!["-c".to_string(), "sleep 1".to_string()])
        );
        assert_eq!(body.env, Some(vec!["A=b=c".to_string()]));
        assert_eq!(body.working_dir.as_deref(), Some("/tmp"));
        let labels = docker_labels(&body);
        assert_eq!(labels[naming::TYPE_LABEL], "container");
        assert_eq!(labels[naming::SANDBOX_ID_LABEL], "sandbox0123");
        assert_eq!(
            labels[naming::LOG_PATH_LABEL],
            "/var/log/pods/ns_web_u1/app/1.log"
        );
        assert_eq!(labels["annotation.io.kubernetes.container.hash"], "h");
        assert_eq!(labels["tier"], "front");

        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("container:sandbox0123"));
        assert_eq!(host.ipc_mode.as_deref(), Some("container:sandbox0123"));
        // No namespace options: the CRI default for PID is POD.
        assert_eq!(host.pid_mode.as_deref(), Some("container:sandbox0123"));
        assert_eq!(
            host.cgroup_parent.as_deref(),
            Some("/kubepods/besteffort/podu1")
        );
        assert_eq!(
            host.binds,
            Some(vec!["/srv/data:/data:ro,rslave".to_string()])
        );
        let structured = host.mounts.unwrap();
        assert_eq!(structured[0].source.as_deref(), Some("/srv/a:b"));
        assert_eq!(structured[0].typ, Some(MountType::BIND));
    }

    #[test]
    fn command_without_args_does_not_inherit_the_image_cmd() {
        let mut cfg = config();
        cfg.args.clear();
        let body = create_body(&cfg, &SANDBOX, Some(&sandbox_config()), &settings()).unwrap();
        assert_eq!(body.entrypoint, Some(vec!["/bin/sh".to_string()]));
        assert_eq!(body.cmd, None);
        let mut cfg = config();
        cfg.command.clear();
        let body = create_body(&cfg, &SANDBOX, Some(&sandbox_config()), &settings()).unwrap();
        assert_eq!(
            body.entrypoint, None,
            "args alone keep the image's entrypoint"
        );
    }

    #[test]
    fn pid_namespace_modes() {
        let with_pid = |pid: NamespaceMode, target: &str| {
            let mut cfg = config();
            cfg.linux = Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        pid: pid as i32,
                        target_id: target.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
            create_body(&cfg, &SANDBOX, Some(&sandbox_config()), &settings())
                .map(|b| b.host_config.unwrap().pid_mode)
        };
        assert_eq!(with_pid(NamespaceMode::Container, "").unwrap(), None);
        assert_eq!(
            with_pid(NamespaceMode::Node, "").unwrap().as_deref(),
            Some("host")
        );
        assert_eq!(
            with_pid(NamespaceMode::Target, "abc").unwrap().as_deref(),
            Some("container:abc")
        );
        assert!(matches!(
            with_pid(NamespaceMode::Target, ""),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn user_and_group() {
        let sec = |uid: Option<i64>, name: &str, gid: Option<i64>| LinuxContainerSecurityContext {
            run_as_user: uid.map(|value| Int64Value { value }),
            run_as_username: name.into(),
            run_as_group: gid.map(|value| Int64Value { value }),
            ..Default::default()
        };
        assert_eq!(
            user(&sec(Some(1000), "", None)).unwrap().as_deref(),
            Some("1000")
        );
        assert_eq!(
            user(&sec(Some(0), "", Some(5))).unwrap().as_deref(),
            Some("0:5")
        );
        assert_eq!(
            user(&sec(None, "nobody", None)).unwrap().as_deref(),
            Some("nobody")
        );
        assert_eq!(user(&sec(None, "", None)).unwrap(), None);
        assert!(user(&sec(None, "", Some(5))).is_err());
    }

    #[test]
    fn resources_translate_and_swap_defaults_to_none() {
        let res = LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 512,
            memory_limit_in_bytes: 64 << 20,
            oom_score_adj: -997,
            cpuset_cpus: "0".into(),
            ..Default::default()
        };
        let limits = Limits::from_cri(Some(&res), false).unwrap();
        assert_eq!(limits.cpu_quota, Some(50_000));
        assert_eq!(limits.memory, Some(64 << 20));
        assert_eq!(limits.memory_swap, Some(64 << 20));
        assert_eq!(
            limits.oom_score_adj, None,
            "negative scores need CAP_SYS_RESOURCE"
        );
        assert_eq!(
            Limits::from_cri(Some(&res), true).unwrap().oom_score_adj,
            Some(-997)
        );
        assert_eq!(Limits::from_cri(None, true).unwrap(), Limits::default());
        let mut pids = res.clone();
        pids.unified = std::collections::HashMap::from([("pids.max".into(), "64".into())]);
        pids.hugepage_limits = vec![crate::api::HugepageLimit {
            page_size: "2MB".into(),
            limit: 0,
        }];
        assert_eq!(
            Limits::from_cri(Some(&pids), true).unwrap().pids_limit,
            Some(64)
        );
        pids.unified.insert("memory.high".into(), "1".into());
        assert!(matches!(
            Limits::from_cri(Some(&pids), true),
            Err(Error::Unimplemented(_))
        ));
        let mut huge = res.clone();
        huge.hugepage_limits = vec![crate::api::HugepageLimit {
            page_size: "2MB".into(),
            limit: 1 << 21,
        }];
        assert!(matches!(
            Limits::from_cri(Some(&huge), true),
            Err(Error::Unimplemented(_))
        ));
        assert_eq!(limits.update_body().cpuset_cpus.as_deref(), Some("0"));
    }

    #[test]
    fn bad_input_is_rejected() {
        let mut cfg = config();
        cfg.image = None;
        assert!(matches!(
            create_body(&cfg, &SANDBOX, Some(&sandbox_config()), &settings()),
            Err(Error::InvalidArgument(_))
        ));
        let mut cfg = config();
        cfg.envs.push(KeyValue {
            key: "".into(),
            value: b"x".to_vec(),
        });
        assert!(matches!(
            create_body(&cfg, &SANDBOX, Some(&sandbox_config()), &settings()),
            Err(Error::InvalidArgument(_))
        ));
        let mut cfg = config();
        cfg.mounts[0].image = Some(ImageSpec {
            image: "x".into(),
            ..Default::default()
        });
        assert!(matches!(
            create_body(&cfg, &SANDBOX, Some(&sandbox_config()), &settings()),
            Err(Error::Unimplemented(_))
        ));
    }

    #[test]
    fn paths_enum_values_and_resources_outside_the_contract_are_refused() {
        let refused = |cfg: &ContainerConfig, sandbox: Option<&PodSandboxConfig>| match create_body(
            cfg,
            &SANDBOX,
            sandbox,
            &settings(),
        ) {
            Err(Error::InvalidArgument(message)) => message,
            other => panic!("accepted: {other:?}"),
        };
        for path in ["../../etc/passwd", "/etc/passwd", "a/../../b"] {
            let mut cfg = config();
            cfg.log_path = path.into();
            assert!(refused(&cfg, Some(&sandbox_config())).contains("log_path"));
        }
        let relative_dir = PodSandboxConfig {
            log_directory: "var/log/pods/x".into(),
            ..Default::default()
        };
        assert!(refused(&config(), Some(&relative_dir)).contains("log_directory"));
        assert!(refused(&config(), None).contains("log_directory"));
        let mut cfg = config();
        cfg.mounts[0].host_path = "data".into();
        assert!(refused(&cfg, Some(&sandbox_config())).contains("host_path"));
        let mut cfg = config();
        cfg.mounts[0].container_path = "data".into();
        assert!(refused(&cfg, Some(&sandbox_config())).contains("container_path"));
        let mut cfg = config();
        cfg.mounts[0].readonly = true;
        cfg.mounts[0].recursive_read_only = true;
        cfg.mounts[0].propagation = MountPropagation::PropagationHostToContainer as i32;
        assert!(refused(&cfg, Some(&sandbox_config())).contains("PRIVATE"));
        let mut cfg = config();
        cfg.mounts[0].propagation = 7;
        assert!(refused(&cfg, Some(&sandbox_config())).contains("propagation"));
        let mut cfg = config();
        cfg.linux
            .get_or_insert_with(Default::default)
            .security_context
            .get_or_insert_with(Default::default)
            .namespace_options = Some(crate::api::NamespaceOption {
            pid: 9,
            ..Default::default()
        });
        assert!(refused(&cfg, Some(&sandbox_config())).contains("namespace_options.pid"));
        for field in ["cpu_shares", "cpu_quota", "memory_limit_in_bytes"] {
            let mut cfg = config();
            let resources = cfg
                .linux
                .get_or_insert_with(Default::default)
                .resources
                .get_or_insert_with(Default::default);
            match field {
                "cpu_shares" => resources.cpu_shares = -2,
                "cpu_quota" => resources.cpu_quota = -1,
                _ => resources.memory_limit_in_bytes = -5,
            }
            assert!(refused(&cfg, Some(&sandbox_config())).contains(field));
        }
    }
}
