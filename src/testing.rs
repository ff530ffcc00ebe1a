//! Unit-test support: a [`Shim`] over a [`FakeDocker`], for the tests of
//! the orchestration: Docker's bridge network, a state
//! directory of its own, facts as Docker 20.10 on cgroup v2 reports them.

use std::sync::Arc;

use clap::Parser;

use crate::api::{
    ContainerConfig, ContainerMetadata, CreateContainerRequest, ImageSpec, PodSandboxConfig,
    PodSandboxMetadata, RunPodSandboxRequest,
};
use crate::config::Config;
use crate::docker::fake::FakeDocker;
use crate::host::{CgroupDriver, HostFacts};
use crate::shim::Shim;

/// The shim, its Docker, and the state directory (removed on drop).
pub(crate) struct TestShim {
    pub shim: Arc<Shim>,
    pub docker: Arc<FakeDocker>,
    _dir: tempfile::TempDir,
}

/// A fresh shim over an empty fake Docker.
pub(crate) fn shim() -> TestShim {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = Config::parse_from(["dockershim", "--network-plugin", ""]);
    config.root_directory = dir.path().to_path_buf();
    let docker = Arc::new(FakeDocker::new());
    let host = HostFacts {
        docker_version: "20.10.24".into(),
        api_version: "1.41".into(),
        cgroup_driver: CgroupDriver::Cgroupfs,
        cgroup_version: "2".into(),
        default_runtime: "runc".into(),
        runtimes: vec!["runc".into()],
        docker_root_dir: "/var/lib/docker".into(),
        image_store: crate::host::ImageStore::Classic,
        image_fs_dir: "/var/lib/docker".into(),
        log_driver: "json-file".into(),
        features: crate::engine::EngineFeatures::new(crate::engine::ApiVersion::MIN, "6.1.0", None),
        may_lower_oom_score: true,
    };
    let shim = Shim::with_facts(config, docker.clone(), host).expect("shim");
    TestShim {
        shim: Arc::new(shim),
        docker,
        _dir: dir,
    }
}

/// A pod `name` in namespace `default`, uid `uid-<name>`.
pub(crate) fn pod_request(name: &str) -> RunPodSandboxRequest {
    RunPodSandboxRequest {
        config: Some(PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: "default".into(),
                attempt: 0,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A busybox container `name` in `sandbox` (of the pod `web`).
pub(crate) fn create_request(sandbox: &str, name: &str) -> CreateContainerRequest {
    CreateContainerRequest {
        pod_sandbox_id: sandbox.into(),
        config: Some(ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: "busybox".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        sandbox_config: pod_request("web").config,
    }
}

/// Creates and starts a container `name` in `sandbox`; returns its id.
pub(crate) async fn create_started(shim: &Shim, sandbox: &str, name: &str) -> String {
    let id = crate::container::create(&shim.containers(), create_request(sandbox, name))
        .await
        .unwrap();
    crate::container::start(&shim.containers(), &id)
        .await
        .unwrap();
    id
}
