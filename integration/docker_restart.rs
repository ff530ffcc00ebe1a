//! The live view survives Docker restarting under the shim: a Docker daemon
//! of the test's own (its own socket, data and exec roots, a bridge the test
//! creates, no iptables) is stopped and started again while a shim watches
//! it.
//!
//! The daemon must not run with `--bridge none`: Docker then deletes the
//! host's `docker0`, which the main daemon needs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dockershim::cri::*;

use crate::support::*;

/// A dockerd started by this test; stopped (by its PID) when dropped.
struct OwnDocker {
    child: Option<Child>,
    root: PathBuf,
}

/// A Linux bridge for the test's daemon; deleted when dropped.
struct Bridge(String);

impl Bridge {
    /// A bridge of its own for each test that starts a daemon: the tests
    /// run in parallel.
    fn create() -> Bridge {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("dsrst{:x}-{n}", std::process::id() % 0x000f_ffff);
        let out = Command::new("ip")
            .args(["link", "add", &name, "type", "bridge"])
            .output()
            .expect("ip link add");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bridge = Bridge(name);
        let out = Command::new("ip")
            .args([
                "addr",
                "add",
                &format!("10.234.{}.1/24", 77 + n),
                "dev",
                &bridge.0,
            ])
            .output()
            .expect("ip addr add");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        bridge
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

impl OwnDocker {
    fn socket(root: &Path) -> PathBuf {
        root.join("docker.sock")
    }

    fn start(root: &Path, bridge: &Bridge) -> OwnDocker {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("dockerd.log"))
            .unwrap();
        let child = Command::new("dockerd")
            .arg("--host")
            .arg(format!("unix://{}", Self::socket(root).display()))
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("dockerd.pid"))
            .args(["--bridge", &bridge.0, "--iptables=false", "--ip-masq=false"])
            // The engine's own settings (integration/dockerd.sh env), e.g. its
            // image store, so this daemon is of the same kind.
            .args(
                std::env::var_os("DOCKERSHIM_TEST_DOCKERD_CONFIG")
                    .map(|config| [std::ffi::OsString::from("--config-file"), config])
                    .into_iter()
                    .flatten(),
            )
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start dockerd");
        let own = OwnDocker {
            child: Some(child),
            root: root.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !own.answers() {
            assert!(
                Instant::now() < deadline,
                "own dockerd did not start: {}",
                std::fs::read_to_string(root.join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        own
    }

    /// A daemon that has the main daemon's test image.
    fn start_with_test_image(root: &Path, bridge: &Bridge) -> OwnDocker {
        let own = OwnDocker::start(root, bridge);
        let mut save = Command::new("docker")
            .args(["save", TEST_IMAGE])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let load = own
            .cli()
            .arg("load")
            .stdin(save.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(save.wait().unwrap().success());
        assert!(
            load.status.success(),
            "{}",
            String::from_utf8_lossy(&load.stderr)
        );
        own
    }

    fn cli(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.arg("--host")
            .arg(format!("unix://{}", Self::socket(&self.root).display()));
        cmd
    }

    fn answers(&self) -> bool {
        self.cli()
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// SIGTERM, then wait: dockerd stops its containers on the way out.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(60);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnDocker {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.cli().args(["ps", "-aq"]).output();
            if let Ok(ids) = ids {
                let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
                let ids: Vec<&str> = ids.split_whitespace().collect();
                if !ids.is_empty() {
                    let _ = self.cli().args(["rm", "-f"]).args(&ids).output();
                }
            }
        }
        self.stop();
    }
}

#[tokio::test]
async fn the_view_is_rebuilt_after_docker_restarts_under_the_shim() {
    // The test image comes from the main daemon.
    docker().await;
    ensure_test_image();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let bridge = Bridge::create();
    let mut own = OwnDocker::start_with_test_image(&root, &bridge);

    let socket = format!("unix://{}", OwnDocker::socket(&root).display());
    let shim = Shim::start_with(&[
        "--docker-endpoint",
        &socket,
        "--pod-infra-container-image",
        UNPULLABLE_PAUSE,
        "--pod-infra-pull-timeout",
        "5",
    ])
    .await;
    let mut rt = shim.runtime().await;
    let cleanup = Cleanup::new();
    // The pod uses the host's network: this daemon's bridge leads nowhere.
    let mut pod = pod_config(&cleanup, &unique("restart"));
    pod.linux = Some(LinuxPodSandboxConfig {
        security_context: Some(LinuxSandboxSecurityContext {
            namespace_options: Some(NamespaceOption {
                network: NamespaceMode::Node as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let pod_id = run_pod(&mut rt, &pod).await;
    let id = start_container(
        &mut rt,
        &pod_id,
        &pod,
        container_config(&cleanup, "app", "exec sleep 600"),
    )
    .await;
    assert_eq!(
        container_status(&mut rt, &id).await.state,
        ContainerState::ContainerRunning as i32
    );

    own.stop();
    let own = OwnDocker::start(&root, &bridge);
    let rebuilt = eventually(Duration::from_secs(20), || {
        let mut rt = rt.clone();
        let (id, pod_id) = (id.clone(), pod_id.clone());
        async move {
            container_status(&mut rt, &id).await.state == ContainerState::ContainerExited as i32
                && sandbox_status(&mut rt, &pod_id).await.state
                    == PodSandboxState::SandboxNotready as i32
        }
    })
    .await;
    assert!(
        rebuilt,
        "the shim sees the containers Docker stopped while it restarted:\n{}",
        shim.logs()
    );

    // Docker's "die" events, sent as it stops, can show the states above
    // before the new daemon answers; the rebuild follows within the
    // watcher's backoff.
    let relisted = eventually(Duration::from_secs(20), || {
        let seen = shim.logs().contains("view rebuilt");
        async move { seen }
    })
    .await;
    assert!(
        relisted,
        "the view was rebuilt from a new list:\n{}",
        shim.logs()
    );

    // Events flow again: a removal with the CLI is seen.
    let out = own.cli().args(["rm", "-f", &id]).output().unwrap();
    assert!(out.status.success());
    let gone = eventually(Duration::from_secs(10), || {
        let mut rt = rt.clone();
        let id = id.clone();
        async move {
            rt.container_status(ContainerStatusRequest {
                container_id: id,
                verbose: false,
            })
            .await
            .is_err_and(|s| s.code() == tonic::Code::NotFound)
        }
    })
    .await;
    assert!(gone, "a removal after the restart is seen");
    drop(shim);
    drop(own);
    drop(bridge);
}

/// Issue 21's finding: dockerd restarted under CNI pods (bridge with
/// ipMasq) killed every pause process before the kubelet tore the pods
/// down, and each teardown then left the bridge plugin's masquerade rules
/// behind (four a pod). With the namespaces pinned, nothing is left.
#[tokio::test]
async fn cni_pods_torn_down_after_docker_restarted_under_them_leave_no_rules() {
    docker().await;
    ensure_test_image();
    let lab = crate::network::Lab::new();
    lab.write_masquerading_config();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let bridge = Bridge::create();
    let mut own = OwnDocker::start_with_test_image(&root, &bridge);
    let socket = format!("unix://{}", OwnDocker::socket(&root).display());
    let mut flags = lab.shim_flags();
    flags.extend(["--docker-endpoint".to_string(), socket]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let shim = Shim::start_with(&flags).await;
    let mut rt = shim.runtime().await;
    let cleanup = Cleanup::new();
    let mut pods = Vec::new();
    for i in 0..10 {
        let pod = pod_config(&cleanup, &unique(&format!("rst-cni{i}")));
        pods.push(run_pod(&mut rt, &pod).await);
    }
    for id in &pods {
        assert!(
            !crate::network::rules_naming(id).is_empty(),
            "the bridge plugin made its masquerade rules for {id}"
        );
    }

    own.stop();
    let own = OwnDocker::start(&root, &bridge);
    let all_down = eventually(Duration::from_secs(30), || {
        let mut rt = rt.clone();
        let pods = pods.clone();
        async move {
            for id in &pods {
                if sandbox_status(&mut rt, id).await.state
                    != PodSandboxState::SandboxNotready as i32
                {
                    return false;
                }
            }
            true
        }
    })
    .await;
    assert!(all_down, "the restart stopped every pod:\n{}", shim.logs());
    for id in &pods {
        stop_and_remove_pod(&mut rt, id).await;
    }
    let left: Vec<String> = pods
        .iter()
        .flat_map(|id| crate::network::rules_naming(id))
        .collect();
    assert_eq!(left, Vec::<String>::new(), "rules left behind");
    assert_eq!(
        lab.allocations(&lab.network),
        Vec::<String>::new(),
        "IPs left allocated"
    );
    drop(shim);
    drop(own);
    drop(bridge);
}
