//! Translation of a CRI `PodSandboxConfig` into the Docker configuration of
//! the pod's pause container.

use std::collections::HashMap;
use std::path::Path;

use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};

use crate::api::{
    LinuxContainerSecurityContext, LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption,
    PodSandboxConfig, Protocol, SecurityProfile,
};
use crate::error::{Error, Result};
use crate::host::CgroupDriver;
use crate::naming;

/// /dev/shm size of a pod, shared by its containers through the IPC namespace.
pub const DEFAULT_SHM_SIZE: i64 = 64 * 1024 * 1024;

/// Everything besides the CRI config that decides the pause container.
#[derive(Debug, Clone)]
pub struct SandboxEnv<'a> {
    /// Pause image to run.
    pub image: &'a str,
    /// Docker OCI runtime for the pod, when not Docker's default.
    pub runtime: Option<&'a str>,
    /// oom_score_adj for the pause process, if the host allows it.
    pub oom_score_adj: Option<i64>,
    /// Docker's cgroup driver.
    pub cgroup_driver: CgroupDriver,
    /// Docker network of a pod not on the host's network: `bridge`, or
    /// `none` when CNI plugins attach it.
    pub network_mode: &'a str,
}

/// The pod's namespace options, with the CRI's defaults when absent.
pub fn namespace_options(config: &PodSandboxConfig) -> NamespaceOption {
    config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or_default()
}

fn mode(value: i32) -> NamespaceMode {
    NamespaceMode::try_from(value).unwrap_or(NamespaceMode::Pod)
}

/// The Docker create request for a pod's pause container.
pub fn create_body(config: &PodSandboxConfig, env: &SandboxEnv<'_>) -> Result<ContainerCreateBody> {
    let namespaces = namespace_options(config);
    crate::security::check_namespace_options(&namespaces)?;
    if !config.log_directory.is_empty() && !Path::new(&config.log_directory).is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "log_directory {:?} must be an absolute path",
            config.log_directory
        )));
    }
    if let Some(mapping) = config
        .port_mappings
        .iter()
        .find(|m| Protocol::try_from(m.protocol).is_err())
    {
        return Err(Error::InvalidArgument(format!(
            "port mapping {}->{}: protocol {} is not TCP, UDP or SCTP",
            mapping.host_port, mapping.container_port, mapping.protocol
        )));
    }
    let host_network = mode(namespaces.network) == NamespaceMode::Node;
    let linux = config.linux.clone().unwrap_or_default();
    let security = linux.security_context.clone().unwrap_or_default();

    if namespaces
        .userns_options
        .as_ref()
        .is_some_and(|u| mode(u.mode) != NamespaceMode::Node)
    {
        return Err(Error::Unimplemented(
            "user namespaces for pods are not supported on Docker".into(),
        ));
    }
    if mode(namespaces.pid) == NamespaceMode::Target {
        return Err(Error::InvalidArgument(
            "a pod sandbox cannot use a TARGET PID namespace".into(),
        ));
    }

    let mut labels = naming::to_docker_labels(&config.labels, &config.annotations)?;
    labels.insert(naming::TYPE_LABEL.into(), naming::TYPE_SANDBOX.into());
    labels.insert(
        naming::CONTAINER_NAME_LABEL.into(),
        naming::SANDBOX_CONTAINER_NAME.into(),
    );
    if mode(namespaces.pid) == NamespaceMode::Pod {
        labels.insert(naming::SHARED_PID_LABEL.into(), "true".into());
    }
    let ports = naming::encode_port_mappings(&config.port_mappings);
    if !ports.is_empty() {
        labels.insert(naming::PORT_MAPPINGS_LABEL.into(), ports);
    }

    // Under CNI the portmap plugin maps host ports; Docker ignores port
    // bindings on its `none` network anyway.
    let (exposed_ports, port_bindings) = if host_network || env.network_mode != "bridge" {
        (None, None)
    } else {
        port_bindings(config)?
    };

    let dns = config.dns_config.clone().unwrap_or_default();
    let non_empty = |v: Vec<String>| (!v.is_empty()).then_some(v);

    let host_config = HostConfig {
        // Docker's bridge is named explicitly: engines from 26 rewrite
        // "default" to "bridge" anyway.
        network_mode: Some(
            if host_network {
                "host"
            } else {
                env.network_mode
            }
            .into(),
        ),
        port_bindings,
        ipc_mode: Some(
            if mode(namespaces.ipc) == NamespaceMode::Node {
                "host"
            } else {
                "shareable"
            }
            .into(),
        ),
        pid_mode: (mode(namespaces.pid) == NamespaceMode::Node).then(|| "host".into()),
        cgroup_parent: cgroup_parent(&linux.cgroup_parent, env.cgroup_driver),
        sysctls: (!linux.sysctls.is_empty()).then(|| linux.sysctls.clone()),
        dns: non_empty(dns.servers),
        dns_search: non_empty(dns.searches),
        dns_options: non_empty(dns.options),
        shm_size: Some(DEFAULT_SHM_SIZE),
        oom_score_adj: env.oom_score_adj,
        // The pause process needs next to no CPU; the lowest weight keeps it
        // from competing with the pod's containers.
        cpu_shares: Some(2),
        privileged: Some(security.privileged),
        readonly_rootfs: Some(security.readonly_rootfs),
        security_opt: Some(pause_security_opts(&security)?),
        group_add: (!security.supplemental_groups.is_empty()).then(|| {
            security
                .supplemental_groups
                .iter()
                .map(|g| g.to_string())
                .collect()
        }),
        runtime: env.runtime.map(str::to_string),
        ..Default::default()
    };

    let user = security.run_as_user.map(|uid| match security.run_as_group {
        Some(gid) => format!("{}:{}", uid.value, gid.value),
        None => uid.value.to_string(),
    });

    Ok(ContainerCreateBody {
        image: Some(env.image.to_string()),
        hostname: (!host_network && !config.hostname.is_empty()).then(|| config.hostname.clone()),
        user,
        labels: Some(labels),
        exposed_ports,
        host_config: Some(host_config),
        ..Default::default()
    })
}

/// The pod's seccomp, AppArmor and SELinux settings on the pause process,
/// read as the container-level ones are, except that a pod that names no
/// seccomp profile keeps Docker's default one on its pause process (the
/// kubelet always names one). The pause process never gains privileges.
#[allow(deprecated)]
fn pause_security_opts(security: &LinuxSandboxSecurityContext) -> Result<Vec<String>> {
    let seccomp = security.seccomp.clone().or_else(|| {
        security
            .seccomp_profile_path
            .is_empty()
            .then(SecurityProfile::default)
    });
    crate::security::security_opts(&LinuxContainerSecurityContext {
        no_new_privs: true,
        privileged: security.privileged,
        seccomp,
        seccomp_profile_path: security.seccomp_profile_path.clone(),
        apparmor: security.apparmor.clone(),
        selinux_options: security.selinux_options.clone(),
        ..Default::default()
    })
}

type PortMaps = (
    Option<Vec<String>>,
    Option<HashMap<String, Option<Vec<PortBinding>>>>,
);

/// Docker port bindings for the pod's host ports (mappings without a host
/// port need nothing on Docker's bridge).
fn port_bindings(config: &PodSandboxConfig) -> Result<PortMaps> {
    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for mapping in &config.port_mappings {
        if mapping.host_port <= 0 {
            continue;
        }
        let valid = |p: i32| (1..=65535).contains(&p);
        if !valid(mapping.container_port) || !valid(mapping.host_port) {
            return Err(Error::InvalidArgument(format!(
                "port mapping {}->{} is out of range 1-65535",
                mapping.host_port, mapping.container_port
            )));
        }
        let key = format!(
            "{}/{}",
            mapping.container_port,
            naming::protocol_name(mapping.protocol)
        );
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: (!mapping.host_ip.is_empty()).then(|| mapping.host_ip.clone()),
                host_port: Some(mapping.host_port.to_string()),
            });
    }
    if exposed.is_empty() {
        return Ok((None, None));
    }
    Ok((Some(exposed), Some(bindings)))
}

/// The cgroup parent as Docker wants it: a path for cgroupfs, a slice name
/// for systemd (the kubelet sends `.../kubepods-burstable-pod<uid>.slice`).
fn cgroup_parent(parent: &str, driver: CgroupDriver) -> Option<String> {
    if parent.is_empty() {
        return None;
    }
    match driver {
        CgroupDriver::Cgroupfs => Some(parent.to_string()),
        CgroupDriver::Systemd => parent
            .rsplit('/')
            .find(|part| !part.is_empty())
            .map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        DnsConfig, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, PodSandboxMetadata,
        PortMapping,
    };

    fn env() -> SandboxEnv<'static> {
        SandboxEnv {
            image: "pause:1",
            runtime: None,
            oom_score_adj: Some(-998),
            cgroup_driver: CgroupDriver::Cgroupfs,
            network_mode: "bridge",
        }
    }

    fn config() -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "web".into(),
                namespace: "default".into(),
                uid: "u1".into(),
                attempt: 0,
            }),
            hostname: "web-host".into(),
            labels: HashMap::from([("app".into(), "web".into())]),
            annotations: HashMap::from([("note".into(), "x".into())]),
            dns_config: Some(DnsConfig {
                servers: vec!["10.96.0.10".into()],
                searches: vec!["default.svc.cluster.local".into()],
                options: vec!["ndots:5".into()],
            }),
            port_mappings: vec![
                PortMapping {
                    protocol: Protocol::Tcp as i32,
                    container_port: 80,
                    host_port: 18080,
                    host_ip: "127.0.0.1".into(),
                },
                PortMapping {
                    protocol: Protocol::Udp as i32,
                    container_port: 53,
                    host_port: 0,
                    host_ip: String::new(),
                },
            ],
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: "/kubepods/besteffort/podu1".into(),
                sysctls: HashMap::from([(
                    "net.ipv4.ip_unprivileged_port_start".into(),
                    "0".into(),
                )]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn pause_container_carries_pod_identity_dns_and_ports() {
        let body = create_body(&config(), &env()).unwrap();
        let labels = body.labels.unwrap();
        assert_eq!(labels[naming::TYPE_LABEL], "podsandbox");
        assert_eq!(labels[naming::CONTAINER_NAME_LABEL], "POD");
        assert_eq!(labels["app"], "web");
        assert_eq!(labels["annotation.note"], "x");
        assert_eq!(labels[naming::SHARED_PID_LABEL], "true");
        assert_eq!(body.hostname.as_deref(), Some("web-host"));
        assert_eq!(body.exposed_ports, Some(vec!["80/tcp".to_string()]));

        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("bridge"));
        assert_eq!(host.ipc_mode.as_deref(), Some("shareable"));
        assert_eq!(host.pid_mode, None);
        assert_eq!(host.dns, Some(vec!["10.96.0.10".to_string()]));
        assert_eq!(
            host.dns_search,
            Some(vec!["default.svc.cluster.local".to_string()])
        );
        assert_eq!(host.dns_options, Some(vec!["ndots:5".to_string()]));
        assert_eq!(
            host.cgroup_parent.as_deref(),
            Some("/kubepods/besteffort/podu1")
        );
        assert_eq!(host.oom_score_adj, Some(-998));
        assert_eq!(host.shm_size, Some(DEFAULT_SHM_SIZE));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges".to_string()]),
            "no seccomp profile named: Docker's default stays on the pause process"
        );
        let binding = &host.port_bindings.unwrap()["80/tcp"];
        assert_eq!(
            binding.as_deref(),
            Some(
                &[PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some("18080".into())
                }][..]
            )
        );
    }

    #[test]
    fn host_namespaces_are_used_when_asked() {
        let mut cfg = config();
        cfg.linux.as_mut().unwrap().security_context = Some(LinuxSandboxSecurityContext {
            namespace_options: Some(NamespaceOption {
                network: NamespaceMode::Node as i32,
                pid: NamespaceMode::Node as i32,
                ipc: NamespaceMode::Node as i32,
                ..Default::default()
            }),
            ..Default::default()
        });
        let body = create_body(&cfg, &env()).unwrap();
        assert_eq!(
            body.hostname, None,
            "host-network pods keep the node's name"
        );
        assert_eq!(body.exposed_ports, None);
        assert!(!body.labels.unwrap().contains_key(naming::SHARED_PID_LABEL));
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("host"));
        assert_eq!(host.pid_mode.as_deref(), Some("host"));
        assert_eq!(host.ipc_mode.as_deref(), Some("host"));
        assert_eq!(host.port_bindings, None);
    }

    #[test]
    fn systemd_cgroup_parent_is_the_slice_name() {
        assert_eq!(
            cgroup_parent(
                "/kubepods.slice/kubepods-burstable-podu1.slice",
                CgroupDriver::Systemd
            )
            .as_deref(),
            Some("kubepods-burstable-podu1.slice")
        );
        assert_eq!(cgroup_parent("", CgroupDriver::Systemd), None);
    }

    #[test]
    fn under_cni_the_pause_container_has_no_docker_network_or_ports() {
        let env = SandboxEnv {
            network_mode: "none",
            ..env()
        };
        let body = create_body(&config(), &env).unwrap();
        assert_eq!(body.exposed_ports, None);
        assert_eq!(body.hostname.as_deref(), Some("web-host"));
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.port_bindings, None);
        assert_eq!(host.dns, Some(vec!["10.96.0.10".to_string()]));
    }

    #[test]
    fn the_pods_security_profiles_apply_to_the_pause_process() {
        use crate::api::security_profile::ProfileType;
        use crate::api::{SeLinuxOption, SecurityProfile};
        let mut cfg = config();
        cfg.linux.as_mut().unwrap().security_context = Some(LinuxSandboxSecurityContext {
            seccomp: Some(SecurityProfile {
                profile_type: ProfileType::RuntimeDefault as i32,
                localhost_ref: String::new(),
            }),
            apparmor: Some(SecurityProfile {
                profile_type: ProfileType::Unconfined as i32,
                localhost_ref: String::new(),
            }),
            selinux_options: Some(SeLinuxOption {
                level: "s0:c1,c2".into(),
                ..Default::default()
            }),
            supplemental_groups: vec![1234],
            ..Default::default()
        });
        let host = create_body(&cfg, &env()).unwrap().host_config.unwrap();
        assert_eq!(
            host.security_opt.unwrap(),
            [
                "no-new-privileges",
                "apparmor=unconfined",
                "label=level:s0:c1,c2"
            ]
        );
        assert_eq!(host.group_add, Some(vec!["1234".to_string()]));

        cfg.linux.as_mut().unwrap().security_context = Some(LinuxSandboxSecurityContext {
            seccomp: Some(SecurityProfile {
                profile_type: ProfileType::Localhost as i32,
                localhost_ref: "/nonexistent/profile.json".into(),
            }),
            ..Default::default()
        });
        assert!(matches!(
            create_body(&cfg, &env()),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn unknown_protocols_namespaces_and_relative_log_directories_are_refused() {
        let refused = |cfg: &PodSandboxConfig| match create_body(cfg, &env()) {
            Err(Error::InvalidArgument(message)) => message,
            other => panic!("accepted: {other:?}"),
        };
        let mut cfg = config();
        cfg.port_mappings[0].protocol = 5;
        assert!(refused(&cfg).contains("protocol 5"));
        let mut cfg = config();
        cfg.log_directory = "relative/dir".into();
        assert!(refused(&cfg).contains("log_directory"));
        let mut cfg = config();
        cfg.linux
            .get_or_insert_with(Default::default)
            .security_context = Some(LinuxSandboxSecurityContext {
            namespace_options: Some(crate::api::NamespaceOption {
                network: 42,
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(refused(&cfg).contains("namespace_options.network"));
    }

    #[test]
    fn invalid_ports_are_rejected() {
        let mut cfg = config();
        cfg.port_mappings[0].container_port = 70000;
        assert!(matches!(
            create_body(&cfg, &env()),
            Err(Error::InvalidArgument(_))
        ));
    }
}
