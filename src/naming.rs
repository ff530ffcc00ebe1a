//! Docker container names and labels for pods and containers.
//!
//! The formats are the ones dockershim and cri-dockerd use, so pods created by
//! either are recognised by this shim and the other way round:
//! `k8s_POD_<pod>_<namespace>_<uid>_<attempt>` for a sandbox,
//! `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>` for a container, CRI
//! labels copied one to one, and CRI annotations stored as labels prefixed
//! with `annotation.`.

use std::collections::HashMap;

use crate::api::{ContainerMetadata, PodSandboxMetadata, PortMapping, Protocol};
use crate::error::{Error, Result};

/// Label that tells sandboxes from containers; every list filters on it.
pub const TYPE_LABEL: &str = "io.kubernetes.docker.type";
/// [`TYPE_LABEL`] value of a pod sandbox (pause) container.
pub const TYPE_SANDBOX: &str = "podsandbox";
/// [`TYPE_LABEL`] value of an application container.
pub const TYPE_CONTAINER: &str = "container";
/// Label holding a container's sandbox id.
pub const SANDBOX_ID_LABEL: &str = "io.kubernetes.sandbox.id";
/// Label holding a container's absolute CRI log path.
pub const LOG_PATH_LABEL: &str = "io.kubernetes.container.logpath";
/// Label holding the sandbox's log directory, beneath which the shim opens
/// the container's log file ([`LOG_PATH_LABEL`]) without following
/// symlinks.
pub const LOG_DIR_LABEL: &str = "io.kubernetes.dockershim.log-directory";
/// Label the kubelet sets with the container name; `POD` on sandboxes.
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";
/// Value of [`CONTAINER_NAME_LABEL`] on a sandbox.
pub const SANDBOX_CONTAINER_NAME: &str = "POD";
/// Prefix of labels that carry CRI annotations.
pub const ANNOTATION_PREFIX: &str = "annotation.";
/// Prefix of labels only this shim reads; never shown as CRI labels.
pub const INTERNAL_PREFIX: &str = "io.kubernetes.dockershim.";
/// Sandbox label set when the pod's containers share one PID namespace.
pub const SHARED_PID_LABEL: &str = "io.kubernetes.dockershim.shared-pid";

const NAME_PREFIX: &str = "k8s";

/// Checks one component of a Docker name: present and free of `_`, which
/// separates the components and would make the name unreadable.
pub fn check_name_part(what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::InvalidArgument(format!("{what} is required")));
    }
    if value.contains('_') || value.contains('/') {
        return Err(Error::InvalidArgument(format!(
            "{what} {value:?} must not contain '_' or '/'"
        )));
    }
    Ok(())
}

/// Checks a sandbox's metadata and returns it.
pub fn check_sandbox_metadata(meta: Option<&PodSandboxMetadata>) -> Result<&PodSandboxMetadata> {
    let meta = meta.ok_or_else(|| Error::InvalidArgument("sandbox metadata is required".into()))?;
    check_name_part("sandbox metadata.name", &meta.name)?;
    check_name_part("sandbox metadata.namespace", &meta.namespace)?;
    check_name_part("sandbox metadata.uid", &meta.uid)?;
    Ok(meta)
}

/// Docker name of a sandbox container.
pub fn sandbox_name(meta: &PodSandboxMetadata) -> String {
    format!(
        "{NAME_PREFIX}_{SANDBOX_CONTAINER_NAME}_{}_{}_{}_{}",
        meta.name, meta.namespace, meta.uid, meta.attempt
    )
}

/// Docker name of an application container in a sandbox.
pub fn container_name(container: &ContainerMetadata, sandbox: &PodSandboxMetadata) -> String {
    format!(
        "{NAME_PREFIX}_{}_{}_{}_{}_{}",
        container.name, sandbox.name, sandbox.namespace, sandbox.uid, container.attempt
    )
}

/// Splits a Docker name into its components: `[container, pod, namespace,
/// uid, attempt]`. A sixth part (a random suffix added on a name conflict)
/// is allowed and ignored.
fn name_parts(docker_name: &str) -> Option<[&str; 5]> {
    let name = docker_name.strip_prefix('/').unwrap_or(docker_name);
    let parts: Vec<&str> = name.split('_').collect();
    if !(parts.len() == 6 || parts.len() == 7) || parts[0] != NAME_PREFIX {
        return None;
    }
    Some([parts[1], parts[2], parts[3], parts[4], parts[5]])
}

/// Reads a sandbox's metadata back from its Docker name.
pub fn parse_sandbox_name(docker_name: &str) -> Option<PodSandboxMetadata> {
    let [_, name, namespace, uid, attempt] = name_parts(docker_name)?;
    Some(PodSandboxMetadata {
        name: name.to_string(),
        namespace: namespace.to_string(),
        uid: uid.to_string(),
        attempt: attempt.parse().ok()?,
    })
}

/// Reads a container's metadata back from its Docker name.
pub fn parse_container_name(docker_name: &str) -> Option<ContainerMetadata> {
    let [name, _, _, _, attempt] = name_parts(docker_name)?;
    Some(ContainerMetadata {
        name: name.to_string(),
        attempt: attempt.parse().ok()?,
    })
}

/// Whether a label key is one the shim sets and reads for itself: a pod
/// (or container) setting it could steer the shim, for instance to tear
/// down host ports it never mapped or to write a log elsewhere.
pub fn is_reserved_label(key: &str) -> bool {
    key == TYPE_LABEL
        || key == SANDBOX_ID_LABEL
        || key == LOG_PATH_LABEL
        || key.starts_with(INTERNAL_PREFIX)
}

/// Docker labels carrying CRI labels and annotations. A CRI label with a
/// [reserved](is_reserved_label) key is refused (INVALID_ARGUMENT, naming
/// the key) rather than silently dropped or overwritten, so the pod's
/// author sees why the pod does not start.
pub fn to_docker_labels(
    labels: &HashMap<String, String>,
    annotations: &HashMap<String, String>,
) -> Result<HashMap<String, String>> {
    let mut reserved: Vec<&str> = labels
        .keys()
        .map(String::as_str)
        .filter(|key| is_reserved_label(key))
        .collect();
    if !reserved.is_empty() {
        reserved.sort_unstable();
        return Err(Error::InvalidArgument(format!(
            "label {} is reserved for the container runtime and cannot be set by a pod or container",
            reserved.join(", ")
        )));
    }
    let mut out = labels.clone();
    for (key, value) in annotations {
        out.insert(format!("{ANNOTATION_PREFIX}{key}"), value.clone());
    }
    Ok(out)
}

/// CRI labels and annotations read back from Docker labels, without the
/// labels the shim adds for itself.
pub fn from_docker_labels(
    docker_labels: &HashMap<String, String>,
    is_sandbox: bool,
) -> (HashMap<String, String>, HashMap<String, String>) {
    let mut labels = HashMap::new();
    let mut annotations = HashMap::new();
    for (key, value) in docker_labels {
        if let Some(annotation) = key.strip_prefix(ANNOTATION_PREFIX) {
            annotations.insert(annotation.to_string(), value.clone());
            continue;
        }
        let internal = key == TYPE_LABEL
            || key == SANDBOX_ID_LABEL
            || key == LOG_PATH_LABEL
            || key.starts_with(INTERNAL_PREFIX)
            || (is_sandbox && key == CONTAINER_NAME_LABEL);
        if !internal {
            labels.insert(key.clone(), value.clone());
        }
    }
    (labels, annotations)
}

/// Label on a pause container holding the pod's host port mappings, so
/// that its network can be torn down with them even when no CNI result was
/// cached (a shim killed during the ADD): the portmap plugin needs them to
/// find its rules.
pub const PORT_MAPPINGS_LABEL: &str = "io.kubernetes.dockershim.port-mappings";

/// Port mappings with a host port, as [`PORT_MAPPINGS_LABEL`] holds them:
/// `protocol/hostPort/containerPort/hostIP` (the protocol as its CRI
/// number), comma-separated.
pub fn encode_port_mappings(mappings: &[PortMapping]) -> String {
    mappings
        .iter()
        .filter(|m| m.host_port > 0)
        .map(|m| {
            format!(
                "{}/{}/{}/{}",
                m.protocol, m.host_port, m.container_port, m.host_ip
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The port mappings of [`encode_port_mappings`]; unreadable entries are
/// skipped.
pub fn decode_port_mappings(label: &str) -> Vec<PortMapping> {
    label
        .split(',')
        .filter_map(|entry| {
            let mut parts = entry.splitn(4, '/');
            Some(PortMapping {
                protocol: parts.next()?.parse().ok()?,
                host_port: parts.next()?.parse().ok()?,
                container_port: parts.next()?.parse().ok()?,
                host_ip: parts.next()?.to_string(),
            })
        })
        .collect()
}

/// True for a full 64-hex-digit Docker container id (not a prefix).
pub fn is_full_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The Docker name without the leading `/` Docker reports.
pub fn bare_name(name: &str) -> &str {
    name.strip_prefix('/').unwrap_or(name)
}

/// A CRI protocol as Docker and CNI name it (`80/tcp`, `"protocol": "udp"`).
pub fn protocol_name(protocol: i32) -> &'static str {
    match Protocol::try_from(protocol) {
        Ok(Protocol::Udp) => "udp",
        Ok(Protocol::Sctp) => "sctp",
        _ => "tcp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_mappings_survive_their_label() {
        let mappings = vec![
            PortMapping {
                protocol: 1,
                container_port: 53,
                host_port: 5353,
                host_ip: "::1".into(),
            },
            PortMapping {
                protocol: 0,
                container_port: 80,
                host_port: 8080,
                host_ip: String::new(),
            },
            PortMapping {
                protocol: 0,
                container_port: 9000,
                host_port: 0,
                host_ip: String::new(),
            },
        ];
        let label = encode_port_mappings(&mappings);
        assert_eq!(label, "1/5353/53/::1,0/8080/80/");
        assert_eq!(decode_port_mappings(&label), mappings[..2].to_vec());
        assert!(decode_port_mappings("garbage,1/x/2/").is_empty());
        assert!(decode_port_mappings("").is_empty());
    }

    fn pod() -> PodSandboxMetadata {
        PodSandboxMetadata {
            name: "web-7d4b9".into(),
            namespace: "default".into(),
            uid: "0f3c2a1e-1111-2222-3333-444455556666".into(),
            attempt: 2,
        }
    }

    #[test]
    fn names_match_dockershim_and_parse_back() {
        let name = sandbox_name(&pod());
        assert_eq!(
            name,
            "k8s_POD_web-7d4b9_default_0f3c2a1e-1111-2222-3333-444455556666_2"
        );
        assert_eq!(parse_sandbox_name(&format!("/{name}")), Some(pod()));

        let ctr = ContainerMetadata {
            name: "app".into(),
            attempt: 3,
        };
        let name = container_name(&ctr, &pod());
        assert_eq!(
            name,
            "k8s_app_web-7d4b9_default_0f3c2a1e-1111-2222-3333-444455556666_3"
        );
        assert_eq!(parse_container_name(&name), Some(ctr.clone()));
        // cri-dockerd appends a random suffix on a name conflict.
        assert_eq!(
            parse_container_name(&format!("/{name}_1a2b3c4d")),
            Some(ctr)
        );
    }

    #[test]
    fn foreign_names_are_not_parsed() {
        assert_eq!(parse_sandbox_name("/nginx"), None);
        assert_eq!(parse_sandbox_name("/k8s_POD_a_b_c"), None);
        assert_eq!(parse_sandbox_name("/x8s_POD_a_b_c_0"), None);
        assert_eq!(parse_sandbox_name("/k8s_POD_a_b_c_notanumber"), None);
    }

    #[test]
    fn reserved_labels_are_refused_with_their_key() {
        for key in [
            PORT_MAPPINGS_LABEL,
            SHARED_PID_LABEL,
            TYPE_LABEL,
            SANDBOX_ID_LABEL,
            LOG_PATH_LABEL,
            "io.kubernetes.dockershim.anything",
        ] {
            let labels = HashMap::from([
                (key.to_string(), "x".to_string()),
                ("app".to_string(), "web".to_string()),
            ]);
            match to_docker_labels(&labels, &HashMap::new()) {
                Err(Error::InvalidArgument(msg)) => assert!(msg.contains(key), "{msg}"),
                other => panic!("{key}: {other:?}"),
            }
        }
        // The kubelet's own labels, and an annotation with a reserved
        // name (stored under the annotation prefix), are fine.
        let labels = HashMap::from([
            (CONTAINER_NAME_LABEL.to_string(), "app".to_string()),
            ("io.kubernetes.pod.name".to_string(), "web".to_string()),
        ]);
        let annotations = HashMap::from([(PORT_MAPPINGS_LABEL.to_string(), "x".to_string())]);
        let docker = to_docker_labels(&labels, &annotations).unwrap();
        assert!(!docker.contains_key(PORT_MAPPINGS_LABEL));
    }

    #[test]
    fn labels_and_annotations_round_trip_without_internal_labels() {
        let labels = HashMap::from([
            ("app".to_string(), "web".to_string()),
            (CONTAINER_NAME_LABEL.to_string(), "POD".to_string()),
        ]);
        let annotations = HashMap::from([(
            "io.kubernetes.container.hash".to_string(),
            "abc".to_string(),
        )]);
        let mut docker = to_docker_labels(&labels, &annotations).unwrap();
        assert_eq!(docker["annotation.io.kubernetes.container.hash"], "abc");
        docker.insert(TYPE_LABEL.into(), TYPE_SANDBOX.into());
        docker.insert(SHARED_PID_LABEL.into(), "true".into());

        let (back_labels, back_annotations) = from_docker_labels(&docker, true);
        assert_eq!(back_annotations, annotations);
        assert_eq!(
            back_labels,
            HashMap::from([("app".to_string(), "web".to_string())])
        );

        // On a container the container-name label is a real CRI label.
        let (ctr_labels, _) = from_docker_labels(&docker, false);
        assert_eq!(ctr_labels[CONTAINER_NAME_LABEL], "POD");
    }

    #[test]
    fn name_parts_are_checked() {
        assert!(check_name_part("name", "web").is_ok());
        assert!(check_name_part("name", "").is_err());
        assert!(check_name_part("name", "a_b").is_err());
        assert!(check_sandbox_metadata(None).is_err());
    }
}
