//! A tenant's abuse of the shim's memory through ExecSync (issue 21): exec
//! probes printing more than the kubelet's message can carry. The test
//! drives the abuse against the real shim and asserts that the shim's
//! resident memory grows by less than [`RSS_BOUND`], that the probe is
//! answered (truncated), and that the shim still serves another pod.

use dockershim::cri::*;
use dockershim::exec_output::EXEC_OUTPUT_CAP;

use crate::support::rss::RssWatch;
use crate::support::*;

/// Most the shim's RSS may grow during one abuse (docs/operations.md,
/// "Memory budget").
const RSS_BOUND: u64 = 64 * 1024 * 1024;
/// The kubelet's gRPC message limit, as its CRI client sets it.
const KUBELET_MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Another pod still starts, runs a container and answers an exec.
async fn still_serves_another_pod(rt: &mut Cri, cleanup: &Cleanup) {
    let pod = pod_config(cleanup, &unique("bystander"));
    let pod_id = run_pod(rt, &pod).await;
    let id = start_container(
        rt,
        &pod_id,
        &pod,
        container_config(cleanup, "bystander", "sleep 3600"),
    )
    .await;
    let (out, _, code) = exec(rt, &id, &["echo", "still here"]).await;
    assert_eq!((out.as_str(), code), ("still here\n", 0));
    stop_and_remove_pod(rt, &pod_id).await;
}

#[tokio::test]
async fn exec_probes_printing_floods_are_answered_truncated() {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let pod = pod_config(&cleanup, &unique("execflood"));
    let pod_id = run_pod(&mut rt, &pod).await;
    let id = start_container(
        &mut rt,
        &pod_id,
        &pod,
        container_config(&cleanup, "probed", "sleep 3600"),
    )
    .await;
    // The kubelet's client: it refuses answers over its message limit.
    let kubelet = shim
        .runtime()
        .await
        .max_decoding_message_size(KUBELET_MAX_MESSAGE);
    let probe = |bytes: u64| ExecSyncRequest {
        container_id: id.clone(),
        cmd: vec![
            "sh".into(),
            "-c".into(),
            format!("head -c {bytes} /dev/zero; echo done >&2"),
        ],
        timeout: 120,
    };

    let watch = RssWatch::start(shim.pid().expect("shim runs"));
    let answer = kubelet
        .clone()
        .exec_sync(probe(20_000_000))
        .await
        .expect("a 20 MB probe is answered, truncated")
        .into_inner();
    assert_eq!(answer.exit_code, 0);
    assert_eq!(answer.stdout.len() + answer.stderr.len(), EXEC_OUTPUT_CAP);

    let probes = (0..8).map(|_| {
        let mut kubelet = kubelet.clone();
        let request = probe(15_000_000);
        tokio::spawn(async move { kubelet.exec_sync(request).await })
    });
    for answer in futures_util::future::join_all(probes).await {
        let answer = answer
            .expect("probe task")
            .expect("each concurrent 15 MB probe is answered")
            .into_inner();
        assert_eq!(answer.exit_code, 0);
        assert!(answer.stdout.len() + answer.stderr.len() <= EXEC_OUTPUT_CAP);
    }
    watch
        .finish("ExecSync of 20 MB, then 8 concurrent of 15 MB")
        .await
        .assert_growth_under(RSS_BOUND, "ExecSync floods");
    still_serves_another_pod(&mut rt, &cleanup).await;
    stop_and_remove_pod(&mut rt, &pod_id).await;
}
