//! RunPodSandbox, PodSandboxStatus, ListPodSandbox, StopPodSandbox and
//! RemovePodSandbox against Docker.

use std::collections::HashMap;
use std::net::TcpListener;

use bollard::query_parameters::InspectContainerOptions;
use dockershim::cri::*;

use crate::support::*;

fn free_port() -> i32 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port() as i32
}

#[tokio::test]
async fn a_pod_becomes_a_labelled_pause_container_with_dns_ports_and_ip() {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let name = unique("pod");
    let host_port = free_port();
    let mut config = pod_config(&cleanup, &name);
    config.dns_config = Some(DnsConfig {
        servers: vec!["10.96.0.10".into()],
        searches: vec!["default.svc.cluster.local".into(), "cluster.local".into()],
        options: vec!["ndots:5".into()],
    });
    config.port_mappings = vec![PortMapping {
        protocol: Protocol::Tcp as i32,
        container_port: 8080,
        host_port,
        host_ip: "127.0.0.1".into(),
    }];
    let id = run_pod(&mut rt, &config).await;

    let docker = docker().await;
    let inspected = docker
        .inspect_container(&id, None::<InspectContainerOptions>)
        .await
        .unwrap();
    let meta = config.metadata.clone().unwrap();
    assert_eq!(
        inspected.name.as_deref(),
        Some(format!("/k8s_POD_{}_{}_{}_0", meta.name, meta.namespace, meta.uid).as_str())
    );
    let cfg = inspected.config.clone().unwrap();
    let labels = cfg.labels.unwrap();
    assert_eq!(labels["io.kubernetes.docker.type"], "podsandbox");
    assert_eq!(labels["io.kubernetes.container.name"], "POD");
    assert_eq!(labels[TEST_LABEL], cleanup.run);
    assert_eq!(labels["annotation.test.dockershim/purpose"], "integration");
    assert_eq!(cfg.hostname.as_deref(), Some(config.hostname.as_str()));
    assert_eq!(
        cfg.image.as_deref(),
        Some("localhost/dockershim/pause:0.1.0"),
        "built-in pause image"
    );
    assert_eq!(inspected.path.as_deref(), Some("/pause"));
    let host = inspected.host_config.clone().unwrap();
    assert_eq!(host.ipc_mode.as_deref(), Some("shareable"));
    assert_eq!(host.network_mode.as_deref(), Some("bridge"));
    assert_eq!(host.shm_size, Some(64 * 1024 * 1024));
    let bindings = host.port_bindings.unwrap();
    let binding = bindings["8080/tcp"].as_ref().unwrap();
    assert_eq!(
        binding[0].host_port.as_deref(),
        Some(host_port.to_string().as_str())
    );
    assert_eq!(binding[0].host_ip.as_deref(), Some("127.0.0.1"));
    assert!(inspected.state.as_ref().unwrap().running.unwrap());

    // The pod's resolv.conf is what dns_config asked for.
    let resolv = std::fs::read_to_string(inspected.resolv_conf_path.as_ref().unwrap()).unwrap();
    assert!(resolv.contains("nameserver 10.96.0.10"), "{resolv}");
    assert!(
        resolv.contains("search default.svc.cluster.local cluster.local"),
        "{resolv}"
    );
    assert!(resolv.contains("options ndots:5"), "{resolv}");

    // Status: ready, with the IP Docker gave the pod.
    let status = rt
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id.clone(),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner();
    let s = status.status.unwrap();
    assert_eq!(s.id, id);
    assert_eq!(s.state, PodSandboxState::SandboxReady as i32);
    assert_eq!(s.metadata.unwrap(), meta);
    assert!(s.created_at > 0);
    let docker_ip = inspected.network_settings.unwrap().networks.unwrap()["bridge"]
        .ip_address
        .clone()
        .unwrap();
    assert!(!docker_ip.is_empty());
    assert_eq!(s.network.unwrap().ip, docker_ip);
    assert_eq!(s.labels, config.labels);
    assert_eq!(s.annotations, config.annotations);
    let ns = s.linux.unwrap().namespaces.unwrap().options.unwrap();
    assert_eq!(ns.network, NamespaceMode::Pod as i32);
    assert_eq!(ns.ipc, NamespaceMode::Pod as i32);
    assert_eq!(s.runtime_handler, "");
    let info: serde_json::Value = serde_json::from_str(&status.info["info"]).unwrap();
    assert!(info["pid"].as_i64().unwrap() > 0);

    // Stop, twice; then remove, twice.
    rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: id.clone(),
    })
    .await
    .unwrap();
    rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: id.clone(),
    })
    .await
    .unwrap();
    let stopped = docker
        .inspect_container(&id, None::<InspectContainerOptions>)
        .await
        .unwrap();
    assert!(!stopped.state.unwrap().running.unwrap());
    let status = rt
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status.unwrap().state,
        PodSandboxState::SandboxNotready as i32
    );
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: id.clone(),
    })
    .await
    .unwrap();
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: id.clone(),
    })
    .await
    .unwrap();
    let gone = docker
        .inspect_container(&id, None::<InspectContainerOptions>)
        .await;
    assert!(gone.is_err(), "sandbox container still exists");
}

#[tokio::test]
async fn host_network_pods_use_the_nodes_namespaces() {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let mut config = pod_config(&cleanup, &unique("hostnet"));
    config.linux = Some(LinuxPodSandboxConfig {
        security_context: Some(LinuxSandboxSecurityContext {
            namespace_options: Some(NamespaceOption {
                network: NamespaceMode::Node as i32,
                pid: NamespaceMode::Node as i32,
                ipc: NamespaceMode::Node as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = run_pod(&mut rt, &config).await;
    let inspected = docker()
        .await
        .inspect_container(&id, None::<InspectContainerOptions>)
        .await
        .unwrap();
    let host = inspected.host_config.unwrap();
    assert_eq!(host.network_mode.as_deref(), Some("host"));
    assert_eq!(host.pid_mode.as_deref(), Some("host"));
    assert_eq!(host.ipc_mode.as_deref(), Some("host"));
    let node_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        inspected.config.unwrap().hostname.as_deref(),
        Some(node_name.trim())
    );

    let s = sandbox_status(&mut rt, &id).await;
    assert!(
        s.network.is_none_or(|n| n.ip.is_empty()),
        "host-network pods have the node's IP, not their own"
    );
    let ns = s.linux.unwrap().namespaces.unwrap().options.unwrap();
    assert_eq!(
        (ns.network, ns.pid, ns.ipc),
        (
            NamespaceMode::Node as i32,
            NamespaceMode::Node as i32,
            NamespaceMode::Node as i32
        )
    );
    rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: id.clone(),
    })
    .await
    .unwrap();
    rt.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
        .await
        .unwrap();
    assert!(cleanup.docker_ids().is_empty());
}

#[tokio::test]
async fn list_filters_by_id_state_and_labels() {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let shared = rt.clone();
    let mut first = pod_config(&cleanup, &unique("lista"));
    first.labels.insert("tier".into(), "front".into());
    let mut second = pod_config(&cleanup, &unique("listb"));
    second.labels.insert("tier".into(), "back".into());
    let a = run_pod(&mut rt, &first).await;
    let b = run_pod(&mut rt, &second).await;
    rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: b.clone(),
    })
    .await
    .unwrap();

    let list = |filter: PodSandboxFilter| {
        let mut rt = shared.clone();
        async move {
            let mut ids: Vec<String> = rt
                .list_pod_sandbox(ListPodSandboxRequest {
                    filter: Some(filter),
                })
                .await
                .unwrap()
                .into_inner()
                .items
                .into_iter()
                .map(|p| p.id)
                .collect();
            ids.sort();
            ids
        }
    };
    let ours = |extra: &[(&str, &str)]| {
        let mut labels: HashMap<String, String> = cleanup.labels();
        labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        labels
    };
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(
        list(PodSandboxFilter {
            label_selector: ours(&[]),
            ..Default::default()
        })
        .await,
        both
    );
    assert_eq!(
        list(PodSandboxFilter {
            label_selector: ours(&[("tier", "front")]),
            ..Default::default()
        })
        .await,
        vec![a.clone()]
    );
    assert_eq!(
        list(PodSandboxFilter {
            label_selector: ours(&[]),
            state: Some(PodSandboxStateValue {
                state: PodSandboxState::SandboxNotready as i32
            }),
            ..Default::default()
        })
        .await,
        vec![b.clone()]
    );
    assert_eq!(
        list(PodSandboxFilter {
            id: a[..12].to_string(),
            ..Default::default()
        })
        .await,
        vec![a.clone()]
    );

    let items = rt
        .list_pod_sandbox(ListPodSandboxRequest {
            filter: Some(PodSandboxFilter {
                id: a.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .items;
    let pod = &items[0];
    assert_eq!(
        pod.metadata.as_ref().unwrap(),
        first.metadata.as_ref().unwrap()
    );
    assert_eq!(pod.state, PodSandboxState::SandboxReady as i32);
    assert_eq!(pod.labels, first.labels);
    assert_eq!(pod.annotations, first.annotations);
    assert!(pod.created_at > 0);
    for id in [a, b] {
        rt.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_builtin_pause_reaps_zombies_in_a_shared_pid_namespace_and_exits_on_sigterm() {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let shared = rt.clone();
    let pod = pod_config(&cleanup, &unique("reap"));
    let pod_id = run_pod(&mut rt, &pod).await;
    // No namespace options: PID defaults to POD, shared with the pause process.
    let ctr = start_container(
        &mut rt,
        &pod_id,
        &pod,
        container_config(&cleanup, "main", "sleep 1000"),
    )
    .await;
    let (ps, _, code) = exec(&mut rt, &ctr, &["ps", "-o", "pid,comm"]).await;
    assert_eq!(code, 0);
    assert!(
        ps.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "pause"]),
        "pause is PID 1: {ps}"
    );
    // An orphan whose parent exits is re-parented to PID 1 and must be reaped.
    let (_, _, code) = exec(&mut rt, &ctr, &["sh", "-c", "sh -c 'sleep 0.2 &' ; exit 0"]).await;
    assert_eq!(code, 0);
    let reaped = eventually(std::time::Duration::from_secs(5), || {
        let mut rt = shared.clone();
        let ctr = ctr.clone();
        async move {
            let (ps, _, _) = exec(&mut rt, &ctr, &["ps", "-o", "stat,comm"]).await;
            !ps.lines().any(|l| l.trim_start().starts_with('Z'))
        }
    })
    .await;
    assert!(reaped, "zombies left behind");

    // StopPodSandbox kills the pod's containers and stops the pause process.
    let started = std::time::Instant::now();
    rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod_id.clone(),
    })
    .await
    .unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(9),
        "pause should exit on SIGTERM, not be killed after the grace period"
    );
    let docker = docker().await;
    for id in [&pod_id, &ctr] {
        let state = docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .unwrap()
            .state
            .unwrap();
        assert!(!state.running.unwrap(), "{id} still running");
    }
    let pause_state = docker
        .inspect_container(&pod_id, None::<InspectContainerOptions>)
        .await
        .unwrap()
        .state
        .unwrap();
    assert_eq!(
        pause_state.exit_code,
        Some(0),
        "pause exits cleanly on SIGTERM"
    );
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod_id,
    })
    .await
    .unwrap();
    assert!(
        cleanup.docker_ids().is_empty(),
        "RemovePodSandbox leaves no container"
    );
}

/// A node can go back to cri-dockerd: each pod has the checkpoint file
/// cri-dockerd reads (name, namespace, host ports) while it exists.
#[tokio::test]
async fn each_pod_has_a_cri_dockerd_checkpoint_while_it_exists() {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let mut pod = pod_config(&cleanup, &unique("ckpt"));
    pod.port_mappings = vec![PortMapping {
        protocol: Protocol::Udp as i32,
        container_port: 53,
        host_port: 0,
        host_ip: String::new(),
    }];
    let pod_id = run_pod(&mut rt, &pod).await;
    let file = shim.dir.join("state").join("sandbox").join(&pod_id);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("checkpoint file")).unwrap();
    let meta = pod.metadata.clone().unwrap();
    assert_eq!(saved["version"], "v1");
    assert_eq!(saved["name"], meta.name.as_str());
    assert_eq!(saved["namespace"], meta.namespace.as_str());
    assert_eq!(
        saved["data"]["port_mappings"],
        serde_json::json!([{"protocol": "udp", "container_port": 53, "host_port": 0}])
    );
    assert!(saved["checksum"].as_u64().is_some());
    stop_and_remove_pod(&mut rt, &pod_id).await;
    assert!(!file.exists(), "checkpoint left after RemovePodSandbox");
}
