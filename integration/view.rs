//! The live view (lists and statuses from memory, kept by Docker's events),
//! container events, the list streams, stats from cgroups and the metrics
//! endpoint.

use std::process::Command;
use std::time::Duration;

use dockershim::cri::*;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

fn docker_cli(args: &[&str]) {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn state_of(rt: &mut Cri, id: &str) -> Option<i32> {
    rt.list_containers(ListContainersRequest {
        filter: Some(ContainerFilter {
            id: id.to_string(),
            ..Default::default()
        }),
    })
    .await
    .expect("ListContainers")
    .into_inner()
    .containers
    .first()
    .map(|c| c.state)
}

#[tokio::test]
async fn the_view_follows_what_happens_behind_the_shims_back() {
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let cleanup = Cleanup::new();
    let pod = pod_config(&cleanup, &unique("view"));
    let pod_id = run_pod(&mut rt, &pod).await;
    let killed = start_container(
        &mut rt,
        &pod_id,
        &pod,
        container_config(&cleanup, "killed", "exec sleep 600"),
    )
    .await;
    let removed = start_container(
        &mut rt,
        &pod_id,
        &pod,
        container_config(&cleanup, "removed", "exec sleep 600"),
    )
    .await;
    // A change the shim made is in its very next answer.
    assert_eq!(
        state_of(&mut rt, &killed).await,
        Some(ContainerState::ContainerRunning as i32)
    );

    docker_cli(&["kill", &killed]);
    let exited = eventually(Duration::from_secs(5), || {
        let mut rt = rt.clone();
        let id = killed.clone();
        async move { state_of(&mut rt, &id).await == Some(ContainerState::ContainerExited as i32) }
    })
    .await;
    assert!(
        exited,
        "a container killed with the docker CLI shows as exited"
    );
    let status = container_status(&mut rt, &killed).await;
    assert_eq!(status.exit_code, 137);
    assert!(status.finished_at > 0);

    docker_cli(&["rm", "-f", &removed]);
    let gone = eventually(Duration::from_secs(5), || {
        let mut rt = rt.clone();
        let id = removed.clone();
        async move { state_of(&mut rt, &id).await.is_none() }
    })
    .await;
    assert!(
        gone,
        "a container removed with the docker CLI leaves the list"
    );
    let err = rt
        .container_status(ContainerStatusRequest {
            container_id: removed.clone(),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn an_oom_kill_is_reported_with_its_reason() {
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let cleanup = Cleanup::new();
    let pod = pod_config(&cleanup, &unique("oom"));
    let pod_id = run_pod(&mut rt, &pod).await;
    let mut config = container_config(
        &cleanup,
        "hog",
        // Holds ever more memory in a shell variable.
        "x=a; while :; do x=\"$x$x\"; done",
    );
    config.linux = Some(LinuxContainerConfig {
        resources: Some(LinuxContainerResources {
            memory_limit_in_bytes: 16 << 20,
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = start_container(&mut rt, &pod_id, &pod, config).await;
    let oom = eventually(Duration::from_secs(20), || {
        let mut rt = rt.clone();
        let id = id.clone();
        async move {
            let status = container_status(&mut rt, &id).await;
            status.state == ContainerState::ContainerExited as i32 && status.reason == "OOMKilled"
        }
    })
    .await;
    assert!(
        oom,
        "the container is reported OOMKilled: {:?}",
        container_status(&mut rt, &id).await
    );
}

/// Reads container events until `want` events about `ids` arrived (or 20 s).
async fn collect_events(
    events: &mut tonic::Streaming<ContainerEventResponse>,
    ids: &[&str],
    want: usize,
) -> Vec<ContainerEventResponse> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.len() < want {
        let next = tokio::time::timeout_at(deadline, events.next()).await;
        let Ok(Some(Ok(event))) = next else { break };
        if ids.contains(&event.container_id.as_str()) {
            seen.push(event);
        }
    }
    seen
}

#[tokio::test]
async fn container_events_arrive_in_order_with_the_pods_status() {
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let mut events = rt
        .get_container_events(GetEventsRequest {})
        .await
        .expect("GetContainerEvents")
        .into_inner();
    let cleanup = Cleanup::new();
    let name = unique("events");
    let pod = pod_config(&cleanup, &name);
    let pod_id = run_pod(&mut rt, &pod).await;
    let id = start_container(
        &mut rt,
        &pod_id,
        &pod,
        container_config(&cleanup, "app", "exec sleep 600"),
    )
    .await;
    rt.stop_container(StopContainerRequest {
        container_id: id.clone(),
        timeout: 0,
    })
    .await
    .expect("StopContainer");
    rt.remove_container(RemoveContainerRequest {
        container_id: id.clone(),
    })
    .await
    .expect("RemoveContainer");

    let seen = collect_events(&mut events, &[&pod_id, &id], 6).await;
    let of = |who: &str| -> Vec<i32> {
        seen.iter()
            .filter(|e| e.container_id == who)
            .map(|e| e.container_event_type)
            .collect()
    };
    use ContainerEventType::*;
    assert_eq!(
        of(&pod_id),
        [ContainerCreatedEvent as i32, ContainerStartedEvent as i32],
        "sandbox events: {seen:?}"
    );
    assert_eq!(
        of(&id),
        [
            ContainerCreatedEvent as i32,
            ContainerStartedEvent as i32,
            ContainerStoppedEvent as i32,
            ContainerDeletedEvent as i32
        ],
        "container events: {seen:?}"
    );
    for event in &seen {
        let status = event.pod_sandbox_status.as_ref().expect("pod status");
        assert_eq!(status.id, pod_id);
        assert_eq!(
            status.metadata.as_ref().map(|m| m.name.as_str()),
            Some(name.as_str())
        );
        assert!(event.created_at > 0);
    }
    let started = seen
        .iter()
        .find(|e| e.container_id == id && e.container_event_type == ContainerStartedEvent as i32)
        .unwrap();
    assert!(
        started.containers_statuses.iter().any(|s| s.id == id),
        "the pod's container statuses come with the event"
    );
}

#[tokio::test]
async fn list_streams_serve_what_the_lists_serve() {
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let cleanup = Cleanup::new();
    let pod = pod_config(&cleanup, &unique("streams"));
    let pod_id = run_pod(&mut rt, &pod).await;
    start_container(
        &mut rt,
        &pod_id,
        &pod,
        container_config(&cleanup, "app", "exec sleep 600"),
    )
    .await;
    let filter = Some(ContainerFilter {
        label_selector: cleanup.labels(),
        ..Default::default()
    });
    let listed = rt
        .list_containers(ListContainersRequest {
            filter: filter.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .containers;
    let mut streamed = Vec::new();
    let mut pages = rt
        .stream_containers(StreamContainersRequest { filter })
        .await
        .unwrap()
        .into_inner();
    while let Some(page) = pages.next().await {
        streamed.extend(page.unwrap().containers);
    }
    assert_eq!(listed.len(), 1);
    assert_eq!(streamed, listed);

    let mut pods = Vec::new();
    let mut pages = rt
        .stream_pod_sandboxes(StreamPodSandboxesRequest {
            filter: Some(PodSandboxFilter {
                label_selector: cleanup.labels(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(page) = pages.next().await {
        pods.extend(page.unwrap().pod_sandboxes);
    }
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].id, pod_id);

    let mut images = shim.images().await;
    let mut count = 0;
    let mut pages = images
        .stream_images(StreamImagesRequest { filter: None })
        .await
        .unwrap()
        .into_inner();
    while let Some(page) = pages.next().await {
        count += page.unwrap().images.len();
    }
    let listed_images = images
        .list_images(ListImagesRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .images
        .len();
    assert_eq!(count, listed_images);
}

/// A cgroup v1 file of a process, e.g. (`cpuacct`, `cpuacct.usage`).
fn cgroup_value(pid: i64, controller: &str, file: &str) -> u64 {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = cgroups
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|c| c == controller)
                .then(|| path.to_string())
        })
        .expect("controller in /proc/pid/cgroup");
    let mount = match controller {
        "cpuacct" if std::path::Path::new("/sys/fs/cgroup/cpuacct").exists() => "cpuacct",
        other => other,
    };
    std::fs::read_to_string(format!("/sys/fs/cgroup/{mount}{path}/{file}"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn stats_come_from_the_containers_cgroups() {
    assert!(
        std::path::Path::new("/sys/fs/cgroup/cpuacct").exists(),
        "this test reads cgroup v1 files, as the test machines have"
    );
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let cleanup = Cleanup::new();
    let pod = pod_config(&cleanup, &unique("stats"));
    let pod_id = run_pod(&mut rt, &pod).await;
    let id = start_container(
        &mut rt,
        &pod_id,
        &pod,
        container_config(&cleanup, "burn", "while :; do :; done"),
    )
    .await;
    let pid = container_pid(&id).await;

    let stats = |rt: &mut Cri| {
        let mut rt = rt.clone();
        let id = id.clone();
        async move {
            rt.container_stats(ContainerStatsRequest { container_id: id })
                .await
                .expect("ContainerStats")
                .into_inner()
                .stats
                .expect("stats")
        }
    };
    let before = cgroup_value(pid, "cpuacct", "cpuacct.usage");
    let first = stats(&mut rt).await;
    let after = cgroup_value(pid, "cpuacct", "cpuacct.usage");
    let cpu = first.cpu.as_ref().unwrap();
    let used = cpu.usage_core_nano_seconds.as_ref().unwrap().value;
    assert!(
        (before..=after).contains(&used),
        "cpu {used} is the cgroup's (read {before} then {after})"
    );
    let memory = first.memory.as_ref().unwrap();
    let usage = memory.usage_bytes.as_ref().unwrap().value;
    let file_usage = cgroup_value(pid, "memory", "memory.usage_in_bytes");
    assert!(
        usage.abs_diff(file_usage) < 4 << 20,
        "memory usage {usage} matches the cgroup's {file_usage}"
    );
    assert!(memory.working_set_bytes.as_ref().unwrap().value <= usage);
    assert_eq!(
        first
            .attributes
            .as_ref()
            .unwrap()
            .metadata
            .as_ref()
            .unwrap()
            .name,
        "burn"
    );

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let second = stats(&mut rt).await;
    let cpu2 = second.cpu.as_ref().unwrap();
    assert!(
        cpu2.usage_core_nano_seconds.as_ref().unwrap().value > used,
        "cpu time rises while the container burns"
    );
    let cores = cpu2.usage_nano_cores.as_ref().unwrap().value;
    assert!(
        cores > 300_000_000,
        "a busy loop uses a good part of a core: {cores} nano-cores"
    );

    let listed = rt
        .list_container_stats(ListContainerStatsRequest {
            filter: Some(ContainerStatsFilter {
                pod_sandbox_id: pod_id.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .stats;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].attributes.as_ref().unwrap().id, id);

    let pod_stats = rt
        .pod_sandbox_stats(PodSandboxStatsRequest {
            pod_sandbox_id: pod_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    let linux = pod_stats.linux.unwrap();
    assert!(linux.process.unwrap().process_count.unwrap().value >= 2);
    assert_eq!(linux.containers.len(), 1);
    let network = linux.network.expect("pod network counters");
    assert_eq!(network.default_interface.unwrap().name, "eth0");
    assert!(
        linux.cpu.unwrap().usage_core_nano_seconds.unwrap().value
            >= cpu2.usage_core_nano_seconds.as_ref().unwrap().value
    );

    let metrics = rt
        .list_pod_sandbox_metrics(ListPodSandboxMetricsRequest {})
        .await
        .unwrap()
        .into_inner()
        .pod_metrics;
    let ours = metrics
        .iter()
        .find(|m| m.pod_sandbox_id == pod_id)
        .expect("the pod's metrics");
    let container = ours
        .container_metrics
        .iter()
        .find(|c| c.container_id == id)
        .expect("the container's metrics");
    let names: Vec<&str> = container.metrics.iter().map(|m| m.name.as_str()).collect();
    assert!(
        names.contains(&"container_cpu_usage_seconds_total"),
        "{names:?}"
    );
    assert!(
        names.contains(&"container_memory_working_set_bytes"),
        "{names:?}"
    );
    let descriptors = rt
        .list_metric_descriptors(ListMetricDescriptorsRequest {})
        .await
        .unwrap()
        .into_inner()
        .descriptors;
    for metric in container.metrics.iter().chain(&ours.metrics) {
        let descriptor = descriptors
            .iter()
            .find(|d| d.name == metric.name)
            .expect("a descriptor for every metric");
        assert_eq!(descriptor.label_keys.len(), metric.label_values.len());
    }
}

#[tokio::test]
async fn the_metrics_endpoint_counts_rpcs_by_code() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let shim = Shim::start_with(&["--metrics-bind-addr", &addr]).await;
    let mut rt = shim.runtime().await;
    rt.version(VersionRequest::default()).await.unwrap();
    let missing = rt
        .container_status(ContainerStatusRequest {
            container_id: "0000000000000000000000000000000000000000000000000000000000000000".into(),
            verbose: false,
        })
        .await;
    assert!(missing.is_err());

    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.unwrap();
    for wanted in [
        r#"dockershim_grpc_requests_total{method="RuntimeService/Version",code="Ok"} 1"#,
        r#"dockershim_grpc_requests_total{method="RuntimeService/ContainerStatus",code="NotFound"} 1"#,
        r#"dockershim_docker_operation_errors_total{operation="inspect_container",error="not_found"}"#,
        "dockershim_view_resyncs_total 1",
        "dockershim_streaming_sessions 0",
    ] {
        assert!(text.contains(wanted), "missing {wanted:?} in:\n{text}");
    }
}

/// The kubelet's relist (no filter) is served from a cache: every change
/// must show in the very next one.
#[tokio::test]
async fn unfiltered_relists_show_every_change_at_once() {
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let cleanup = Cleanup::new();
    let relist = |rt: &mut Cri| {
        let mut rt = rt.clone();
        async move {
            let pods = rt
                .list_pod_sandbox(ListPodSandboxRequest { filter: None })
                .await
                .expect("ListPodSandbox")
                .into_inner()
                .items;
            let containers = rt
                .list_containers(ListContainersRequest {
                    filter: Some(ContainerFilter::default()),
                })
                .await
                .expect("ListContainers")
                .into_inner()
                .containers;
            (pods, containers)
        }
    };
    let pod = pod_config(&cleanup, &unique("relist"));
    let pod_id = run_pod(&mut rt, &pod).await;
    let (pods, _) = relist(&mut rt).await;
    assert!(
        pods.iter()
            .any(|p| p.id == pod_id && p.state == PodSandboxState::SandboxReady as i32)
    );

    let id = start_container(
        &mut rt,
        &pod_id,
        &pod,
        container_config(&cleanup, "app", "exec sleep 600"),
    )
    .await;
    let state = |containers: &[Container]| containers.iter().find(|c| c.id == id).map(|c| c.state);
    assert_eq!(
        state(&relist(&mut rt).await.1),
        Some(ContainerState::ContainerRunning as i32)
    );
    rt.stop_container(StopContainerRequest {
        container_id: id.clone(),
        timeout: 0,
    })
    .await
    .unwrap();
    assert_eq!(
        state(&relist(&mut rt).await.1),
        Some(ContainerState::ContainerExited as i32)
    );
    rt.remove_container(RemoveContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    assert_eq!(state(&relist(&mut rt).await.1), None);
    rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod_id.clone(),
    })
    .await
    .unwrap();
    let (pods, _) = relist(&mut rt).await;
    assert!(
        pods.iter()
            .any(|p| p.id == pod_id && p.state == PodSandboxState::SandboxNotready as i32)
    );
}
