//! The live view survives Docker restarting under the shim: a Docker daemon
//! of the test's own (its own socket, data and exec roots, a bridge the test
//! creates, no iptables) is stopped and started again while a shim watches
//! it.
//!
//! The daemon must not run with `--bridge none`: Docker then deletes the
//! host's `docker0`, which the main daemon needs.

use std::time::Duration;

use dockershim::cri::*;

use crate::support::own_docker::{Bridge, OwnDocker};
use crate::support::*;

#[tokio::test]
async fn the_view_is_rebuilt_after_docker_restarts_under_the_shim() {
    // The test image comes from the main daemon.
    docker().await;
    ensure_test_image();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let bridge = Bridge::create();
    let mut own = OwnDocker::start_with_test_image(&root, &bridge);

    let shim = own.start_shim().await;
    let mut rt = shim.runtime().await;
    let cleanup = Cleanup::new();
    // The pod uses the host's network: this daemon's bridge leads nowhere.
    let mut pod = pod_config(&cleanup, &unique("restart"));
    use_host_network(&mut pod);
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
