//! Security contexts, devices, stop signals, and what ContainerStatus
//! reports back, checked inside the container where Docker applied them.

use bollard::query_parameters::InspectContainerOptions;
use dockershim::cri::security_profile::ProfileType;
use dockershim::cri::*;

use crate::support::*;

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn security_context_takes_effect_inside_the_container() {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let pod = pod_config(&cleanup, &unique("secure"));
    let pod_id = run_pod(&mut rt, &pod).await;

    let mut config = container_config(&cleanup, "locked", "sleep 1000");
    config.devices = vec![Device {
        container_path: "/dev/xnull".into(),
        host_path: "/dev/null".into(),
        permissions: "rw".into(),
    }];
    config.stop_signal = Signal::Sigusr1 as i32;
    config.linux = Some(LinuxContainerConfig {
        security_context: Some(LinuxContainerSecurityContext {
            run_as_user: Some(Int64Value { value: 1000 }),
            run_as_group: Some(Int64Value { value: 2000 }),
            supplemental_groups: vec![3000],
            readonly_rootfs: true,
            no_new_privs: true,
            capabilities: Some(Capability {
                drop_capabilities: vec!["ALL".into()],
                ..Default::default()
            }),
            seccomp: Some(SecurityProfile {
                profile_type: ProfileType::RuntimeDefault as i32,
                localhost_ref: String::new(),
            }),
            masked_paths: vec!["/proc/keys".into(), "/proc/timer_list".into()],
            readonly_paths: vec!["/proc/sys".into()],
            ..Default::default()
        }),
        resources: Some(LinuxContainerResources {
            cpu_shares: 512,
            memory_limit_in_bytes: 96 << 20,
            ..Default::default()
        }),
    });
    let id = start_container(&mut rt, &pod_id, &pod, config).await;

    let (ids, _, _) = exec(&mut rt, &id, &["id"]).await;
    assert!(
        ids.contains("uid=1000") && ids.contains("gid=2000") && ids.contains("3000"),
        "{ids}"
    );
    let (status, _, _) = exec(&mut rt, &id, &["cat", "/proc/self/status"]).await;
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    assert_eq!(
        status_field(&status, "Seccomp"),
        "2",
        "RuntimeDefault is Docker's seccomp filter"
    );
    assert_eq!(status_field(&status, "CapEff"), "0000000000000000");
    let (_, _, code) = exec(&mut rt, &id, &["touch", "/written"]).await;
    assert_ne!(code, 0, "the root filesystem is read-only");
    let (out, err, code) = exec(
        &mut rt,
        &id,
        &["sh", "-c", "ls -l /dev/xnull; echo x > /dev/xnull"],
    )
    .await;
    assert_eq!(code, 0, "the device is there and writable: {out} {err}");
    let (mounts, _, _) = exec(&mut rt, &id, &["cat", "/proc/self/mountinfo"]).await;
    assert!(
        mounts.lines().any(|l| l.contains(" /proc/keys ")),
        "/proc/keys is masked: {mounts}"
    );
    assert!(
        mounts
            .lines()
            .any(|l| l.contains(" /proc/sys ") && l.contains(" ro,")),
        "/proc/sys is read-only"
    );

    let inspected = docker()
        .await
        .inspect_container(&id, None::<InspectContainerOptions>)
        .await
        .unwrap();
    assert_eq!(
        inspected.config.unwrap().stop_signal.as_deref(),
        Some("SIGUSR1")
    );

    // Status reports what Docker applied, including after a resize.
    rt.update_container_resources(UpdateContainerResourcesRequest {
        container_id: id.clone(),
        linux: Some(LinuxContainerResources {
            cpu_shares: 1024,
            memory_limit_in_bytes: 128 << 20,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let s = container_status(&mut rt, &id).await;
    let resources = s.resources.unwrap().linux.unwrap();
    assert_eq!(
        (resources.cpu_shares, resources.memory_limit_in_bytes),
        (1024, 128 << 20)
    );
    // As the kernel reports them: runc also lists the primary group.
    let user = s.user.unwrap().linux.unwrap();
    assert_eq!(
        (user.uid, user.gid, user.supplemental_groups),
        (1000, 2000, vec![2000, 3000])
    );
    assert_eq!(s.stop_signal, Signal::Sigusr1 as i32);

    // Unconfined seccomp.
    let mut open = container_config(&cleanup, "open", "sleep 1000");
    open.linux = Some(LinuxContainerConfig {
        security_context: Some(LinuxContainerSecurityContext {
            seccomp: Some(SecurityProfile {
                profile_type: ProfileType::Unconfined as i32,
                localhost_ref: String::new(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let open_id = start_container(&mut rt, &pod_id, &pod, open).await;
    let (status, _, _) = exec(&mut rt, &open_id, &["cat", "/proc/self/status"]).await;
    assert_eq!(status_field(&status, "Seccomp"), "0");
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod_id,
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn pids_limits_apply_and_unsupported_limits_are_refused() {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let pod = pod_config(&cleanup, &unique("pids"));
    let pod_id = run_pod(&mut rt, &pod).await;
    let mut config = container_config(&cleanup, "limited", "sleep 1000");
    config.linux = Some(LinuxContainerConfig {
        resources: Some(LinuxContainerResources {
            unified: std::collections::HashMap::from([("pids.max".into(), "42".into())]),
            hugepage_limits: vec![HugepageLimit {
                page_size: "2MB".into(),
                limit: 0,
            }],
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = start_container(&mut rt, &pod_id, &pod, config.clone()).await;
    let (max, _, _) = exec(
        &mut rt,
        &id,
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
        ],
    )
    .await;
    assert_eq!(max.trim(), "42");

    let mut huge = config;
    huge.metadata.as_mut().unwrap().name = "huge".into();
    huge.linux
        .as_mut()
        .unwrap()
        .resources
        .as_mut()
        .unwrap()
        .hugepage_limits = vec![HugepageLimit {
        page_size: "2MB".into(),
        limit: 2 << 20,
    }];
    let err = rt
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod_id.clone(),
            config: Some(huge),
            sandbox_config: Some(pod),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented, "{err:?}");
    assert!(err.message().contains("huge page"), "{}", err.message());
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod_id,
    })
    .await
    .unwrap();
    assert!(cleanup.docker_ids().is_empty());
}

#[tokio::test]
async fn the_pods_seccomp_and_groups_apply_to_the_pause_process() {
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let cleanup = Cleanup::new();
    let mut pod = pod_config(&cleanup, &unique("pause-seccomp"));
    pod.linux = Some(LinuxPodSandboxConfig {
        security_context: Some(LinuxSandboxSecurityContext {
            seccomp: Some(SecurityProfile {
                profile_type: ProfileType::RuntimeDefault as i32,
                localhost_ref: String::new(),
            }),
            supplemental_groups: vec![4321],
            ..Default::default()
        }),
        ..Default::default()
    });
    let pod_id = run_pod(&mut rt, &pod).await;
    let pid = container_pid(&pod_id).await;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(status_field(&status, "Seccomp"), "2", "filter mode");
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    assert!(
        status_field(&status, "Groups")
            .split_whitespace()
            .any(|g| g == "4321"),
        "{status}"
    );
}

#[tokio::test]
async fn status_reports_the_identity_an_image_user_name_resolves_to() {
    docker().await;
    ensure_test_image();
    let tag = format!("dockershim-test/named-user:{}", std::process::id());
    let dockerfile = format!(
        "FROM {TEST_IMAGE}\n\
         RUN echo 'app:x:4242:4343::/:/bin/sh' > /etc/passwd && \
         printf 'app:x:4343:\\nextra:x:5555:app\\n' > /etc/group\n\
         USER app\n"
    );
    let mut build = std::process::Command::new("docker")
        .args(["build", "-q", "-t", &tag, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        build
            .stdin
            .take()
            .unwrap()
            .write_all(dockerfile.as_bytes())
            .unwrap();
    }
    assert!(build.wait().unwrap().success(), "docker build");

    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let cleanup = Cleanup::new();
    let pod = pod_config(&cleanup, &unique("named-user"));
    let pod_id = run_pod(&mut rt, &pod).await;
    let mut config = container_config(&cleanup, "app", "exec sleep 600");
    config.image = Some(ImageSpec {
        image: tag.clone(),
        ..Default::default()
    });
    let id = start_container(&mut rt, &pod_id, &pod, config).await;
    let user = container_status(&mut rt, &id)
        .await
        .user
        .and_then(|u| u.linux)
        .expect("the user is reported");
    assert_eq!((user.uid, user.gid), (4242, 4343));
    assert!(user.supplemental_groups.contains(&5555), "{user:?}");
    drop(cleanup);
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", &tag])
        .output();
}
