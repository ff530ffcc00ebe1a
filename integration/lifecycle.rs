//! Whole-pod scenarios and the shim's own lifecycle: a pod with two
//! containers from pull to removal, restarts of the shim, shutdown,
//! start-up failures, the shim's own log, and its build information.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bollard::query_parameters::InspectContainerOptions;
use dockershim::cri::*;

use crate::support::*;

#[tokio::test]
async fn a_two_container_pod_from_start_to_nothing_left() {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let pod = pod_config(&cleanup, &unique("web"));
    let pod_id = run_pod(&mut rt, &pod).await;
    let server = start_container(
        &mut rt,
        &pod_id,
        &pod,
        container_config(
            &cleanup,
            "server",
            "echo served-by-pod > /tmp/index.html; httpd -f -p 8080 -h /tmp",
        ),
    )
    .await;
    let client = start_container(
        &mut rt,
        &pod_id,
        &pod,
        container_config(&cleanup, "client", "sleep 1000"),
    )
    .await;

    // The containers share the pod's network: the client reaches the server on localhost.
    let served = eventually(Duration::from_secs(10), || {
        let (mut rt, client) = (rt.clone(), client.clone());
        async move {
            let (out, _, code) = exec(
                &mut rt,
                &client,
                &["wget", "-q", "-O-", "http://127.0.0.1:8080/index.html"],
            )
            .await;
            code == 0 && out == "served-by-pod\n"
        }
    })
    .await;
    assert!(
        served,
        "the client cannot reach the server over the pod's localhost"
    );

    let containers = rt
        .list_containers(ListContainersRequest {
            filter: Some(ContainerFilter {
                pod_sandbox_id: pod_id.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(containers.len(), 2);
    assert!(
        containers
            .iter()
            .all(|c| c.state == ContainerState::ContainerRunning as i32)
    );

    for id in [&server, &client] {
        rt.stop_container(StopContainerRequest {
            container_id: id.clone(),
            timeout: 2,
        })
        .await
        .unwrap();
        rt.remove_container(RemoveContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();
    }
    stop_and_remove_pod(&mut rt, &pod_id).await;
    assert!(
        cleanup.docker_ids().is_empty(),
        "Docker objects left behind"
    );
}

#[tokio::test]
async fn state_survives_a_shim_restart() {
    let cleanup = Cleanup::new();
    let mut shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let pod = pod_config(&cleanup, &unique("restart"));
    let pod_id = run_pod(&mut rt, &pod).await;
    let ctr = start_container(
        &mut rt,
        &pod_id,
        &pod,
        container_config(&cleanup, "main", "sleep 1000"),
    )
    .await;

    shim.restart().await; // SIGKILL, then start again on the same socket
    let mut rt = shim.runtime().await;
    let pods = rt
        .list_pod_sandbox(ListPodSandboxRequest {
            filter: Some(PodSandboxFilter {
                label_selector: cleanup.labels(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(
        pods.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        vec![pod_id.as_str()]
    );
    assert_eq!(pods[0].metadata, pod.metadata);
    let status = container_status(&mut rt, &ctr).await;
    assert_eq!(status.state, ContainerState::ContainerRunning as i32);
    let (out, _, _) = exec(&mut rt, &ctr, &["echo", "still here"]).await;
    assert_eq!(out, "still here\n");
    stop_and_remove_pod(&mut rt, &pod_id).await;
    assert!(cleanup.docker_ids().is_empty());
}

#[tokio::test]
async fn pods_created_by_cri_dockerd_are_recognised() {
    // A sandbox and container made directly in Docker the way cri-dockerd
    // names and labels them (without this shim).
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let uid = unique("uid");
    let sandbox_name = format!("k8s_POD_legacy_default_{uid}_1");
    let run = |args: &[&str]| {
        let out = Command::new("docker").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let label = format!("{TEST_LABEL}={}", cleanup.run);
    let sandbox = run(&[
        "run",
        "-d",
        "--name",
        &sandbox_name,
        "--label",
        "io.kubernetes.docker.type=podsandbox",
        "--label",
        "io.kubernetes.container.name=POD",
        "--label",
        "annotation.kubernetes.io/config.source=api",
        "--label",
        &label,
        TEST_IMAGE,
        "sleep",
        "1000",
    ]);
    let container = run(&[
        "run",
        "-d",
        "--name",
        &format!("k8s_app_legacy_default_{uid}_2"),
        "--label",
        "io.kubernetes.docker.type=container",
        "--label",
        &format!("io.kubernetes.sandbox.id={sandbox}"),
        "--label",
        "io.kubernetes.container.logpath=/var/log/pods/x/app/2.log",
        "--label",
        &label,
        "--network",
        &format!("container:{sandbox}"),
        TEST_IMAGE,
        "sleep",
        "1000",
    ]);
    let pods = rt
        .list_pod_sandbox(ListPodSandboxRequest {
            filter: Some(PodSandboxFilter {
                id: sandbox.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .items;
    let meta = pods[0].metadata.clone().unwrap();
    assert_eq!(
        (
            meta.name.as_str(),
            meta.namespace.as_str(),
            meta.uid.as_str(),
            meta.attempt
        ),
        ("legacy", "default", uid.as_str(), 1)
    );
    assert_eq!(pods[0].annotations["kubernetes.io/config.source"], "api");
    let status = container_status(&mut rt, &container).await;
    assert_eq!(status.metadata.unwrap().attempt, 2);
    assert_eq!(status.log_path, "/var/log/pods/x/app/2.log");
    stop_and_remove_pod(&mut rt, &sandbox).await;
    assert!(cleanup.docker_ids().is_empty());
}

#[tokio::test]
async fn the_socket_is_private_replaced_when_stale_and_removed_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // A stale socket from a killed run is replaced.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let mut shim = Shim::start_on(&stale, &["--pod-infra-container-image", UNPULLABLE_PAUSE]).await;
    let version = shim
        .runtime()
        .await
        .version(VersionRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(version.runtime_name, "docker");
    let mode = std::fs::metadata(&stale).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let status = shim.terminate().await;
    assert!(status.success(), "SIGTERM is a clean exit: {status:?}");
    assert!(!stale.exists(), "socket left behind after shutdown");
}

#[tokio::test]
async fn an_unreachable_docker_is_a_clear_start_up_failure() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dockershim"))
        .args([
            "--container-runtime-endpoint",
            &format!("unix://{}/cri.sock", dir.path().display()),
            "--docker-endpoint",
            "unix:///nonexistent/docker.sock",
            "--cri-dockerd-root-directory",
            &dir.path().join("state").display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/docker.sock"), "{stderr}");
    assert!(!dir.path().join("cri.sock").exists());
}

/// Runs the shim with a Docker endpoint that does not exist, its stderr
/// (the log) redirected to a file as under systemd or `>file`, and returns
/// what it wrote. No Docker is needed: the shim logs, then exits.
fn unreachable_docker_log(extra_args: &[&str], env: &[(&str, &str)]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("shim.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dockershim"));
    cmd.args([
        "--container-runtime-endpoint",
        &format!("unix://{}/cri.sock", dir.path().display()),
        "--docker-endpoint",
        "unix:///nonexistent/docker.sock",
        "--cri-dockerd-root-directory",
        &dir.path().join("state").display().to_string(),
        // Debug: more lines (bollard's requests) than the one error, where
        // the libraries log them.
        "--log-level",
        "debug",
    ])
    .args(extra_args)
    // Whatever the test runner's environment holds, colour is decided by
    // the redirect and by what each case sets.
    .env_remove("NO_COLOR")
    .env_remove("JOURNAL_STREAM")
    .env_remove("DOCKERSHIM_LOG_FORMAT")
    .envs(env.iter().copied())
    .stdout(std::process::Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap());
    let status = cmd.status().unwrap();
    assert!(!status.success(), "started without Docker: {status:?}");
    std::fs::read(&log).unwrap()
}

#[tokio::test]
async fn the_log_has_no_colour_escapes_in_a_file_or_the_journal() {
    for env in [&[][..], &[("JOURNAL_STREAM", "1:2")][..]] {
        let log = unreachable_docker_log(&[], env);
        let text = String::from_utf8_lossy(&log);
        assert!(text.contains("dockershim failed"), "{env:?}: {text}");
        assert!(
            !log.contains(&0x1b),
            "{env:?}: ESC in the log:\n{}",
            text.escape_debug()
        );
    }
}

#[tokio::test]
async fn log_format_json_writes_one_object_a_line() {
    let log = unreachable_docker_log(&["--log-format", "json"], &[]);
    assert!(!log.contains(&0x1b));
    let text = String::from_utf8(log).unwrap();
    // After the log, anyhow prints the error that main returns, as text.
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with('{')).collect();
    assert!(!lines.is_empty(), "{text}");
    for line in &lines {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        for key in ["timestamp", "level", "target", "message"] {
            assert!(event.get(key).is_some(), "no {key} in {line}");
        }
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains(r#""message":"dockershim failed""#)),
        "{text}"
    );
}

#[tokio::test]
async fn a_container_created_in_a_host_ipc_pod_shares_the_hosts_ipc() {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let mut pod = pod_config(&cleanup, &unique("hostipc"));
    pod.linux = Some(LinuxPodSandboxConfig {
        security_context: Some(LinuxSandboxSecurityContext {
            namespace_options: Some(NamespaceOption {
                ipc: NamespaceMode::Node as i32,
                pid: NamespaceMode::Container as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let pod_id = run_pod(&mut rt, &pod).await;
    let mut config = container_config(&cleanup, "main", "sleep 1000");
    config.linux = Some(LinuxContainerConfig {
        security_context: Some(LinuxContainerSecurityContext {
            namespace_options: Some(NamespaceOption {
                ipc: NamespaceMode::Node as i32,
                pid: NamespaceMode::Container as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let ctr = start_container(&mut rt, &pod_id, &pod, config).await;
    let inspected = docker()
        .await
        .inspect_container(&ctr, None::<InspectContainerOptions>)
        .await
        .unwrap();
    let host = inspected.host_config.unwrap();
    assert_eq!(host.ipc_mode.as_deref(), Some("host"));
    assert_eq!(
        host.pid_mode.as_deref().unwrap_or(""),
        "",
        "private PID namespace"
    );
    let pid = inspected.state.unwrap().pid.unwrap();
    let ns = |p: String| std::fs::read_link(p).unwrap();
    assert_eq!(
        ns(format!("/proc/{pid}/ns/ipc")),
        ns("/proc/self/ns/ipc".into())
    );
    assert_ne!(
        ns(format!("/proc/{pid}/ns/pid")),
        ns("/proc/self/ns/pid".into())
    );
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod_id,
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn systemd_socket_activation_and_readiness_notification() {
    docker().await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("activated.sock");
    let notify_path = dir.path().join("notify");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // systemd-socket-activate binds the socket and hands it over as fd 3 with
    // LISTEN_FDS, exactly as the dockershim.socket unit does.
    // cri-dockerd's packaged cri-docker.service runs
    // `cri-dockerd --container-runtime-endpoint fd://`; operators add the
    // rest of its flags there, so all of them must start the shim.
    let runtime_cgroup = unique("/dockershim-test-runtime");
    let mut activator = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&socket)
        .arg("-E")
        .arg(format!("NOTIFY_SOCKET={}", notify_path.display()))
        .arg(env!("CARGO_BIN_EXE_dockershim"))
        .args([
            "--container-runtime-endpoint",
            "fd://",
            "--docker-endpoint",
            &format!("unix://{}", docker_socket()),
            "--cri-dockerd-root-directory",
            &dir.path().join("state").display().to_string(),
            "--pod-infra-container-image",
            UNPULLABLE_PAUSE,
            "--ipv6-dual-stack",
            "--image-pull-progress-deadline",
            "1m0s",
            "--runtime-request-timeout",
            "2m0s",
            "--runtime-cgroups",
            &runtime_cgroup,
            "--streaming-bind-addr",
            "127.0.0.1",
            "--network-plugin",
            "cni",
            "--cni-conf-dir",
            &dir.path().join("cni").display().to_string(),
            "--hairpin-mode",
            "hairpin-veth",
            "--network-plugin-mtu",
            "1460",
            "--pod-cidr",
            "10.233.250.0/24",
            "--log-level",
            "warning",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("systemd-socket-activate (Debian's systemd package)");
    let listening = eventually(Duration::from_secs(10), || async { socket.exists() }).await;
    assert!(listening);
    let shim_socket = socket.clone();
    let channel = tonic::transport::Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = shim_socket.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .unwrap();
    let mut rt = dockershim::cri::v1::runtime_service_client::RuntimeServiceClient::new(channel);
    let version = rt
        .version(VersionRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(version.runtime_name, "docker");
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("readiness notification");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    // The shim moved itself into --runtime-cgroups.
    let shim_pid = activator.id();
    let cgroups = std::fs::read_to_string(format!("/proc/{shim_pid}/cgroup")).unwrap();
    assert!(
        cgroups.lines().any(|l| l.ends_with(&runtime_cgroup)),
        "{cgroups}"
    );
    let _ = activator.kill();
    let _ = activator.wait();
    remove_cgroup(&runtime_cgroup);
}

/// Removes a cgroup the test made, in every hierarchy (v1) or the unified one.
fn remove_cgroup(path: &str) {
    let root = Path::new("/sys/fs/cgroup");
    let relative = path.trim_start_matches('/');
    let mut dirs = vec![root.join(relative)];
    if let Ok(entries) = std::fs::read_dir(root) {
        dirs.extend(entries.flatten().map(|e| e.path().join(relative)));
    }
    for dir in dirs {
        let _ = std::fs::remove_dir(dir);
    }
}

#[tokio::test]
async fn buildinfo_and_info_print_the_build_and_exit() {
    for flag in ["--buildinfo", "--info"] {
        let out = Command::new(env!("CARGO_BIN_EXE_dockershim"))
            .arg(flag)
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Program: dockershim"), "{text}");
        assert!(
            text.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))),
            "{text}"
        );
        assert!(text.contains("Git commit: "), "{text}");
        assert!(text.contains("Build date: "), "{text}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_dockershim"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!(
            "dockershim {} (commit ",
            env!("CARGO_PKG_VERSION")
        )) && text.contains(", built "),
        "{text}"
    );
}
