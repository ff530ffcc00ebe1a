//! CreateContainer, StartContainer, StopContainer, RemoveContainer,
//! ListContainers, ContainerStatus, UpdateContainerResources and ExecSync.

use std::time::{Duration, Instant};

use bollard::query_parameters::InspectContainerOptions;
use dockershim::cri::*;
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn a_container_joins_its_pod_with_command_env_mounts_and_labels() {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let pod = pod_config(&cleanup, &unique("ctr"));
    let pod_id = run_pod(&mut rt, &pod).await;

    let data = tempfile::tempdir().unwrap();
    let readonly = tempfile::tempdir().unwrap();
    std::fs::write(readonly.path().join("given"), "from the host").unwrap();
    let mut config = container_config(
        &cleanup,
        "writer",
        "trap '' TERM; echo \"$GREETING\" > /data/out; pwd > /data/pwd; sleep 1000",
    );
    config.envs = vec![KeyValue {
        key: "GREETING".into(),
        value: b"hello pod".to_vec(),
    }];
    config.working_dir = "/tmp".into();
    config
        .annotations
        .insert("io.kubernetes.container.hash".into(), "1234".into());
    config.mounts = vec![
        Mount {
            container_path: "/data".into(),
            host_path: data.path().display().to_string(),
            ..Default::default()
        },
        Mount {
            container_path: "/given".into(),
            host_path: readonly.path().display().to_string(),
            readonly: true,
            ..Default::default()
        },
    ];
    let id = start_container(&mut rt, &pod_id, &pod, config.clone()).await;

    let docker = docker().await;
    let inspected = docker
        .inspect_container(&id, None::<InspectContainerOptions>)
        .await
        .unwrap();
    let meta = pod.metadata.as_ref().unwrap();
    assert_eq!(
        inspected.name.as_deref(),
        Some(
            format!(
                "/k8s_writer_{}_{}_{}_0",
                meta.name, meta.namespace, meta.uid
            )
            .as_str()
        )
    );
    let cfg = inspected.config.clone().unwrap();
    let labels = cfg.labels.unwrap();
    assert_eq!(labels["io.kubernetes.docker.type"], "container");
    assert_eq!(labels["io.kubernetes.sandbox.id"], pod_id);
    assert_eq!(
        labels["io.kubernetes.container.logpath"],
        format!("{}/writer/0.log", pod.log_directory)
    );
    assert_eq!(labels["annotation.io.kubernetes.container.hash"], "1234");
    assert_eq!(cfg.entrypoint, Some(config.command.clone()));
    assert_eq!(cfg.working_dir.as_deref(), Some("/tmp"));
    assert!(cfg.env.unwrap().contains(&"GREETING=hello pod".to_string()));
    let host = inspected.host_config.clone().unwrap();
    let joined = format!("container:{pod_id}");
    assert_eq!(host.network_mode.as_deref(), Some(joined.as_str()));
    assert_eq!(host.ipc_mode.as_deref(), Some(joined.as_str()));
    assert_eq!(host.pid_mode.as_deref(), Some(joined.as_str()));

    // What the process saw: env, working dir, the rw mount, the ro mount.
    let written = eventually(Duration::from_secs(10), || async {
        data.path().join("pwd").exists()
    })
    .await;
    assert!(written, "the container never wrote to its mount");
    assert_eq!(
        std::fs::read_to_string(data.path().join("out")).unwrap(),
        "hello pod\n"
    );
    assert_eq!(
        std::fs::read_to_string(data.path().join("pwd")).unwrap(),
        "/tmp\n"
    );
    let (given, _, code) = exec(&mut rt, &id, &["cat", "/given/given"]).await;
    assert_eq!((given.as_str(), code), ("from the host", 0));
    let (_, _, code) = exec(&mut rt, &id, &["touch", "/given/nope"]).await;
    assert_ne!(code, 0, "a read-only mount accepted a write");

    // Same network namespace and hostname as the pod.
    let (hostname, _, _) = exec(&mut rt, &id, &["hostname"]).await;
    assert_eq!(hostname.trim(), pod.hostname);
    let pause_pid = docker
        .inspect_container(&pod_id, None::<InspectContainerOptions>)
        .await
        .unwrap()
        .state
        .unwrap()
        .pid
        .unwrap();
    let ctr_pid = inspected.state.as_ref().unwrap().pid.unwrap();
    let netns = |pid: i64| std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_eq!(netns(pause_pid), netns(ctr_pid));
    let ipcns = |pid: i64| std::fs::read_link(format!("/proc/{pid}/ns/ipc")).unwrap();
    assert_eq!(ipcns(pause_pid), ipcns(ctr_pid));

    // Status reflects Docker.
    let status = rt
        .container_status(ContainerStatusRequest {
            container_id: id.clone(),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner();
    let s = status.status.unwrap();
    assert_eq!(s.id, id);
    assert_eq!(s.metadata.unwrap(), config.metadata.clone().unwrap());
    assert_eq!(s.state, ContainerState::ContainerRunning as i32);
    assert!(s.created_at > 0 && s.started_at >= s.created_at && s.finished_at == 0);
    assert_eq!(s.image.unwrap().image, TEST_IMAGE);
    // The test image was imported, not pulled: Docker's own store knows it
    // by id only; the containerd store names every tagged image by its
    // digest, which is the image id there.
    let image_id = inspected.image.clone().unwrap();
    let image_ref = if containerd_image_store().await {
        format!("docker-pullable://dockershim-test/busybox@{image_id}")
    } else {
        format!("docker://{image_id}")
    };
    assert_eq!(s.image_ref, image_ref);
    assert_eq!(s.image_id, inspected.image.clone().unwrap());
    assert_eq!(s.log_path, format!("{}/writer/0.log", pod.log_directory));
    assert_eq!(s.labels, config.labels);
    assert_eq!(s.annotations, config.annotations);
    let ro = s
        .mounts
        .iter()
        .find(|m| m.container_path == "/given")
        .unwrap();
    assert!(ro.readonly);
    assert_eq!(ro.host_path, readonly.path().display().to_string());
    let info: serde_json::Value = serde_json::from_str(&status.info["info"]).unwrap();
    assert_eq!(info["sandboxID"], pod_id.as_str());

    // Stop honours the timeout, then kills.
    let started = Instant::now();
    rt.stop_container(StopContainerRequest {
        container_id: id.clone(),
        timeout: 1,
    })
    .await
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    let s = container_status(&mut rt, &id).await;
    assert_eq!(s.state, ContainerState::ContainerExited as i32);
    assert_eq!(
        s.exit_code, 137,
        "sh ignores SIGTERM, so it was killed after the timeout"
    );
    assert_eq!(s.reason, "Error");
    assert!(s.finished_at >= s.started_at);
    rt.stop_container(StopContainerRequest {
        container_id: id.clone(),
        timeout: 1,
    })
    .await
    .unwrap();

    rt.remove_container(RemoveContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    rt.remove_container(RemoveContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    assert!(
        docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
            .is_err()
    );
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod_id,
    })
    .await
    .unwrap();
    assert!(cleanup.docker_ids().is_empty());
}

#[tokio::test]
async fn exit_reasons_and_list_filters() {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let shared = rt.clone();
    let pod = pod_config(&cleanup, &unique("reasons"));
    let pod_id = run_pod(&mut rt, &pod).await;
    let ok = start_container(
        &mut rt,
        &pod_id,
        &pod,
        container_config(&cleanup, "ok", "exit 0"),
    )
    .await;
    let failed = start_container(
        &mut rt,
        &pod_id,
        &pod,
        container_config(&cleanup, "failed", "exit 3"),
    )
    .await;
    let mut running_cfg = container_config(&cleanup, "running", "sleep 1000");
    running_cfg.labels.insert("role".into(), "server".into());
    let running = start_container(&mut rt, &pod_id, &pod, running_cfg).await;
    let created = rt
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod_id.clone(),
            config: Some(container_config(&cleanup, "created", "true")),
            sandbox_config: Some(pod.clone()),
        })
        .await
        .unwrap()
        .into_inner()
        .container_id;

    let status = |id: String| {
        let mut rt = shared.clone();
        async move { container_status(&mut rt, &id).await }
    };
    let exited = eventually(Duration::from_secs(10), || {
        let (ok, failed) = (ok.clone(), failed.clone());
        async move {
            status(ok).await.state == ContainerState::ContainerExited as i32
                && status(failed).await.state == ContainerState::ContainerExited as i32
        }
    })
    .await;
    assert!(exited);
    let s = status(ok.clone()).await;
    assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"));
    let s = status(failed.clone()).await;
    assert_eq!((s.exit_code, s.reason.as_str()), (3, "Error"));
    assert_eq!(
        status(created.clone()).await.state,
        ContainerState::ContainerCreated as i32
    );

    let list = |filter: ContainerFilter| {
        let mut rt = shared.clone();
        async move {
            let mut ids: Vec<String> = rt
                .list_containers(ListContainersRequest {
                    filter: Some(filter),
                })
                .await
                .unwrap()
                .into_inner()
                .containers
                .into_iter()
                .map(|c| c.id)
                .collect();
            ids.sort();
            ids
        }
    };
    let mut all = vec![ok.clone(), failed.clone(), running.clone(), created.clone()];
    all.sort();
    assert_eq!(
        list(ContainerFilter {
            pod_sandbox_id: pod_id.clone(),
            ..Default::default()
        })
        .await,
        all
    );
    assert_eq!(
        list(ContainerFilter {
            pod_sandbox_id: pod_id.clone(),
            state: Some(ContainerStateValue {
                state: ContainerState::ContainerRunning as i32
            }),
            ..Default::default()
        })
        .await,
        vec![running.clone()]
    );
    let mut selector = cleanup.labels();
    selector.insert("role".into(), "server".into());
    assert_eq!(
        list(ContainerFilter {
            label_selector: selector,
            ..Default::default()
        })
        .await,
        vec![running.clone()]
    );
    assert_eq!(
        list(ContainerFilter {
            id: running[..12].to_string(),
            ..Default::default()
        })
        .await,
        vec![running.clone()]
    );

    let listed = rt
        .list_containers(ListContainersRequest {
            filter: Some(ContainerFilter {
                id: running.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .containers;
    let c = &listed[0];
    assert_eq!(c.pod_sandbox_id, pod_id);
    assert_eq!(c.metadata.as_ref().unwrap().name, "running");
    assert_eq!(c.image.as_ref().unwrap().image, TEST_IMAGE);
    assert!(c.image_ref.starts_with("sha256:"));
    assert_eq!(c.labels["role"], "server");

    // Stopping the pod stops every container in it.
    rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod_id.clone(),
    })
    .await
    .unwrap();
    assert_eq!(
        status(running.clone()).await.state,
        ContainerState::ContainerExited as i32
    );
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod_id,
    })
    .await
    .unwrap();
    assert!(
        cleanup.docker_ids().is_empty(),
        "RemovePodSandbox removes the pod's containers"
    );
}

#[tokio::test]
async fn exec_sync_returns_output_and_exit_code_and_honours_its_timeout() {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let pod = pod_config(&cleanup, &unique("exec"));
    let pod_id = run_pod(&mut rt, &pod).await;
    let id = start_container(
        &mut rt,
        &pod_id,
        &pod,
        container_config(&cleanup, "main", "sleep 1000"),
    )
    .await;

    let (out, err, code) = exec(
        &mut rt,
        &id,
        &["sh", "-c", "echo out; echo err >&2; exit 7"],
    )
    .await;
    assert_eq!((out.as_str(), err.as_str(), code), ("out\n", "err\n", 7));

    // Several MiB come back intact.
    let big = rt
        .exec_sync(ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["sh".into(), "-c".into(), "head -c 3145728 /dev/zero".into()],
            timeout: 30,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(big.stdout.len(), 3 * 1024 * 1024);
    assert!(big.stdout.iter().all(|b| *b == 0));

    // A command that outlives its timeout: DEADLINE_EXCEEDED, and it is killed.
    let started = Instant::now();
    let err = rt
        .exec_sync(ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["sleep".into(), "731".into()],
            timeout: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let killed = eventually(Duration::from_secs(5), || {
        let (mut rt, id) = (rt.clone(), id.clone());
        async move {
            let (ps, _, _) = exec(&mut rt, &id, &["ps", "-o", "args"]).await;
            !ps.contains("sleep 731")
        }
    })
    .await;
    assert!(killed, "the timed-out command is still running");

    // Not running: FAILED_PRECONDITION.
    rt.stop_container(StopContainerRequest {
        container_id: id.clone(),
        timeout: 0,
    })
    .await
    .unwrap();
    let err = rt
        .exec_sync(ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["true".into()],
            timeout: 5,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod_id,
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn update_container_resources_changes_the_live_limits() {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let pod = pod_config(&cleanup, &unique("resize"));
    let pod_id = run_pod(&mut rt, &pod).await;
    let mut config = container_config(&cleanup, "main", "sleep 1000");
    config.linux = Some(LinuxContainerConfig {
        resources: Some(LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 256,
            memory_limit_in_bytes: 64 << 20,
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = start_container(&mut rt, &pod_id, &pod, config).await;
    let docker = docker().await;
    let host = docker
        .inspect_container(&id, None::<InspectContainerOptions>)
        .await
        .unwrap()
        .host_config
        .unwrap();
    assert_eq!(
        (host.cpu_quota, host.cpu_shares, host.memory),
        (Some(50_000), Some(256), Some(64 << 20))
    );

    rt.update_container_resources(UpdateContainerResourcesRequest {
        container_id: id.clone(),
        linux: Some(LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 150_000,
            cpu_shares: 512,
            memory_limit_in_bytes: 128 << 20,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let host = docker
        .inspect_container(&id, None::<InspectContainerOptions>)
        .await
        .unwrap()
        .host_config
        .unwrap();
    assert_eq!(
        (host.cpu_quota, host.cpu_shares, host.memory),
        (Some(150_000), Some(512), Some(128 << 20))
    );
    // The kernel applied it: the container's memory cgroup limit.
    let (limit, _, _) = exec(&mut rt, &id, &["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"]).await;
    assert_eq!(limit.trim(), (128u64 << 20).to_string());

    // No Linux section: nothing changes, and no error (cri-dockerd crashed here).
    rt.update_container_resources(UpdateContainerResourcesRequest {
        container_id: id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod_id,
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn app_containers_sit_in_the_pods_cgroup() {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let host = docker().await.info().await.unwrap();
    let systemd = host.cgroup_driver == Some(bollard::models::SystemInfoCgroupDriverEnum::SYSTEMD);
    // The kubelet's parent for a BestEffort pod, in the driver's form.
    let uid = unique("cg").replace('-', "_");
    let (parent, expected) = if systemd {
        let slice = format!("dockershimtest-pod{uid}.slice");
        (format!("/dockershimtest.slice/{slice}"), slice)
    } else {
        let path = format!("/dockershim-test/pod{uid}");
        (path.clone(), path)
    };
    let mut pod = pod_config(&cleanup, &unique("cgroup"));
    pod.linux = Some(LinuxPodSandboxConfig {
        cgroup_parent: parent.clone(),
        ..Default::default()
    });
    let pod_id = run_pod(&mut rt, &pod).await;
    let id = start_container(
        &mut rt,
        &pod_id,
        &pod,
        container_config(&cleanup, "main", "sleep 1000"),
    )
    .await;
    for (what, cid) in [("pause", &pod_id), ("app", &id)] {
        let pid = container_pid(cid).await;
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(
            cgroups
                .lines()
                .any(|l| l.contains(&format!("{expected}/")) && l.contains(cid.as_str())),
            "{what} container {cid} is not under {expected}:\n{cgroups}"
        );
    }
    stop_and_remove_pod(&mut rt, &pod_id).await;
    // Docker leaves the pod's cgroupfs parents behind; the kubelet owns them.
    if !systemd {
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let _ = std::fs::remove_dir(hierarchy.path().join(parent.trim_start_matches('/')));
            let _ = std::fs::remove_dir(hierarchy.path().join("dockershim-test"));
        }
    }
}

#[tokio::test]
async fn stop_and_remove_are_idempotent_even_when_concurrent() {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let pod = pod_config(&cleanup, &unique("twice"));
    let pod_id = run_pod(&mut rt, &pod).await;
    for round in 0..3 {
        let id = start_container(
            &mut rt,
            &pod_id,
            &pod,
            container_config(&cleanup, &format!("c{round}"), "sleep 1000"),
        )
        .await;
        let remove = |mut rt: Cri, id: String| async move {
            rt.remove_container(RemoveContainerRequest { container_id: id })
                .await
                .map(|_| ())
        };
        let (a, b) = tokio::join!(
            remove(rt.clone(), id.clone()),
            remove(rt.clone(), id.clone())
        );
        assert!(a.is_ok() && b.is_ok(), "round {round}: {a:?} {b:?}");
        let gone = eventually(Duration::from_secs(20), || {
            let docker_id = id.clone();
            async move {
                docker()
                    .await
                    .inspect_container(&docker_id, None::<InspectContainerOptions>)
                    .await
                    .is_err()
            }
        })
        .await;
        assert!(gone, "container {id} still exists in Docker");
    }
    // Stopping and removing what does not exist succeed, as the CRI says.
    rt.stop_container(StopContainerRequest {
        container_id: "f00d".repeat(16),
        timeout: 1,
    })
    .await
    .expect("StopContainer of a missing container");
    rt.remove_container(RemoveContainerRequest {
        container_id: "f00d".repeat(16),
    })
    .await
    .expect("RemoveContainer of a missing container");
    stop_and_remove_pod(&mut rt, &pod_id).await;
}

/// An image volume's sub-path is looked for in the image, whichever image
/// store Docker uses: a missing one fails CreateContainer, an existing one
/// is mounted. Before API 1.49 Docker has no sub-paths, and the shim says so.
#[tokio::test]
async fn image_volume_sub_paths_are_checked_in_the_image() {
    ensure_test_image();
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let pod_config = pod_config(&cleanup, &unique("subpath"));
    let pod = run_pod(&mut rt, &pod_config).await;
    let api = docker().await.version().await.unwrap().api_version.unwrap();
    let (major, minor) = api.split_once('.').unwrap();
    let sub_paths = (major.parse::<u32>().unwrap(), minor.parse::<u32>().unwrap()) >= (1, 49);
    let create = |sub_path: &str| {
        let mut config = container_config(&cleanup, &unique("subpath"), "sleep 60");
        config.mounts.push(Mount {
            container_path: "/from-image".into(),
            image: Some(ImageSpec {
                image: TEST_IMAGE.into(),
                ..Default::default()
            }),
            image_sub_path: sub_path.into(),
            readonly: true,
            ..Default::default()
        });
        CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(config),
            sandbox_config: Some(pod_config.clone()),
        }
    };
    let missing = rt.create_container(create("no/such/dir")).await;
    let present = rt.create_container(create("bin")).await;
    if sub_paths {
        let err = missing.expect_err("a missing sub-path was accepted");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("does not exist"), "{err:?}");
        present.expect("an existing sub-path was refused");
    } else {
        for answer in [missing, present] {
            let err = answer.expect_err("sub-path accepted before API 1.49");
            assert!(
                matches!(err.code(), Code::Unimplemented | Code::InvalidArgument),
                "{err:?}"
            );
        }
    }
    stop_and_remove_pod(&mut rt, &pod).await;
}

/// Two image volumes of one image in one container, as a pod with two
/// volumes of the same image has: Docker 28 names an image mount's layer by
/// its source and refused the second ("mount already exists with name").
/// Both are mounted, and ContainerStatus names the image by its id for each.
#[tokio::test]
async fn one_image_mounted_twice_in_a_container() {
    ensure_test_image();
    let api = docker().await.version().await.unwrap().api_version.unwrap();
    let (major, minor) = api.split_once('.').unwrap();
    if (major.parse::<u32>().unwrap(), minor.parse::<u32>().unwrap()) < (1, 48) {
        // Image volumes need API 1.48; image_volume_sub_paths_are_checked_in_the_image
        // covers the refusal before that.
        return;
    }
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let pod_config = pod_config(&cleanup, &unique("twice"));
    let pod = run_pod(&mut rt, &pod_config).await;
    let mut config = container_config(&cleanup, &unique("twice"), "sleep 60");
    for path in ["/image-a", "/image-b", "/image-c"] {
        config.mounts.push(Mount {
            container_path: path.into(),
            image: Some(ImageSpec {
                image: TEST_IMAGE.into(),
                ..Default::default()
            }),
            readonly: true,
            ..Default::default()
        });
    }
    let id = start_container(&mut rt, &pod, &pod_config, config).await;
    let (out, err, code) = exec(
        &mut rt,
        &id,
        &[
            "ls",
            "/image-a/bin/busybox",
            "/image-b/bin/busybox",
            "/image-c/bin/busybox",
        ],
    )
    .await;
    assert_eq!(code, 0, "every mount holds the image: {out} {err}");
    let image_id = docker()
        .await
        .inspect_image(TEST_IMAGE)
        .await
        .unwrap()
        .id
        .unwrap();
    let status = container_status(&mut rt, &id).await;
    let mut images: Vec<(String, String)> = status
        .mounts
        .iter()
        .filter_map(|m| Some((m.container_path.clone(), m.image.as_ref()?.image.clone())))
        .collect();
    images.sort();
    assert_eq!(
        images,
        ["/image-a", "/image-b", "/image-c"]
            .map(|p| (p.to_string(), image_id.clone()))
            .to_vec()
    );
    stop_and_remove_pod(&mut rt, &pod).await;
}

/// A read-only private mount of the host's root, as node agents (and the
/// node e2e suite's host-exec pod) have: the shim leaves private to Docker's
/// default, since Docker refuses an explicit rprivate for a source that
/// holds its data root.
#[tokio::test]
async fn a_read_only_mount_of_the_host_root_is_accepted() {
    ensure_test_image();
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let pod_config = pod_config(&cleanup, &unique("hostroot"));
    let pod = run_pod(&mut rt, &pod_config).await;
    let mut config = container_config(&cleanup, &unique("hostroot"), "sleep 60");
    config.mounts.push(Mount {
        container_path: "/rootfs".into(),
        host_path: "/".into(),
        readonly: true,
        propagation: MountPropagation::PropagationPrivate as i32,
        ..Default::default()
    });
    let id = start_container(&mut rt, &pod, &pod_config, config).await;
    let (out, err, code) = exec(&mut rt, &id, &["ls", "/rootfs/proc/self"]).await;
    assert_eq!(code, 0, "the host's root is mounted: {out} {err}");
    stop_and_remove_pod(&mut rt, &pod).await;
}
