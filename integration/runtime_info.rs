//! Version, Status, RuntimeConfig, and the RPCs answered UNIMPLEMENTED.

use dockershim::cri::*;
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn version_reports_docker_and_cri_v1() {
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let version = rt
        .version(VersionRequest {
            version: "v1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let docker_version = docker().await.version().await.unwrap().version.unwrap();
    assert_eq!(version.runtime_name, "docker");
    assert_eq!(version.runtime_version, docker_version);
    assert_eq!(version.runtime_api_version, "v1");
}

#[tokio::test]
async fn status_is_ready_and_lists_dockers_runtimes() {
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let status = rt
        .status(StatusRequest { verbose: true })
        .await
        .unwrap()
        .into_inner();
    let conditions = status.status.unwrap().conditions;
    for kind in ["RuntimeReady", "NetworkReady"] {
        let condition = conditions.iter().find(|c| c.r#type == kind).unwrap();
        assert!(condition.status, "{kind} should be true: {condition:?}");
    }
    let info = docker().await.info().await.unwrap();
    let names: Vec<_> = status
        .runtime_handlers
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    assert!(names.contains(&""), "default handler missing: {names:?}");
    for runtime in info.runtimes.unwrap().keys() {
        assert!(
            names.contains(&runtime.as_str()),
            "{runtime} missing from {names:?}"
        );
    }
    let config: serde_json::Value = serde_json::from_str(&status.info["config"]).unwrap();
    assert_eq!(config["sandboxImage"], UNPULLABLE_PAUSE);
    let docker_info: serde_json::Value = serde_json::from_str(&status.info["docker"]).unwrap();
    assert_eq!(docker_info["version"], info.server_version.unwrap());
}

#[tokio::test]
async fn runtime_config_reports_dockers_cgroup_driver() {
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let config = rt
        .runtime_config(RuntimeConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    let driver = docker()
        .await
        .info()
        .await
        .unwrap()
        .cgroup_driver
        .unwrap()
        .to_string();
    let expected = if driver == "systemd" {
        CgroupDriver::Systemd
    } else {
        CgroupDriver::Cgroupfs
    };
    assert_eq!(config.linux.unwrap().cgroup_driver, expected as i32);
}

#[tokio::test]
async fn unserved_rpcs_answer_unimplemented_with_a_message() {
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let codes = vec![
        (
            "CheckpointPod",
            rt.checkpoint_pod(CheckpointPodRequest::default())
                .await
                .map(|_| ())
                .unwrap_err(),
        ),
        (
            "CheckpointContainer",
            rt.checkpoint_container(CheckpointContainerRequest::default())
                .await
                .map(|_| ())
                .unwrap_err(),
        ),
        (
            "RestorePod",
            rt.restore_pod(RestorePodRequest::default())
                .await
                .map(|_| ())
                .unwrap_err(),
        ),
    ];
    for (rpc, status) in codes {
        assert_eq!(status.code(), Code::Unimplemented, "{rpc}: {status:?}");
        // gRPC's wording, which the kubelet's e2e suite recognises.
        assert_eq!(
            status.message(),
            format!("method {rpc} not implemented"),
            "{rpc}"
        );
    }
}
