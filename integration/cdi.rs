//! CDI devices: the `cdi_devices` field and `cdi.k8s.io/*` annotations
//! become devices Docker injects, from a CDI spec in the spec directory
//! integration/dockerd.sh gives the engine (DOCKERSHIM_TEST_CDI_DIR). On an
//! engine that cannot inject them (API below 1.44, or CDI off) the same
//! requests must be refused clearly instead.

use std::path::PathBuf;
use std::time::Duration;

use dockershim::cri::*;
use tonic::Code;

use crate::support::*;

/// The device kind of the test spec.
const KIND: &str = "dockershim.test/cdi";

/// The test spec: two devices, each re-exposing a harmless host device node
/// under a path of its own and setting an environment variable.
const SPEC: &str = r#"cdiVersion: "0.5.0"
kind: dockershim.test/cdi
devices:
  - name: field
    containerEdits:
      env: ["DOCKERSHIM_CDI_FIELD=from-field"]
      deviceNodes:
        - path: /dev/dockershim-test-cdi-field
          hostPath: /dev/null
  - name: annotated
    containerEdits:
      env: ["DOCKERSHIM_CDI_ANNOTATED=from-annotation"]
      deviceNodes:
        - path: /dev/dockershim-test-cdi-annotated
          hostPath: /dev/zero
"#;

/// What the engine under test can do with CDI devices, asked of Docker
/// itself rather than of the shim.
enum Engine {
    /// CDI is on and reads the test's spec directory, which holds the spec.
    Injects(PathBuf),
    /// The API is below 1.44, or Docker reports no spec directory.
    Refuses,
}

async fn engine() -> Engine {
    let docker = docker().await;
    let api = docker.version().await.unwrap().api_version.unwrap();
    let (major, minor) = api.split_once('.').unwrap();
    if (major.parse::<u32>().unwrap(), minor.parse::<u32>().unwrap()) < (1, 44) {
        return Engine::Refuses;
    }
    let dirs = docker
        .info()
        .await
        .unwrap()
        .cdi_spec_dirs
        .unwrap_or_default();
    if dirs.is_empty() {
        return Engine::Refuses;
    }
    let dir = PathBuf::from(std::env::var("DOCKERSHIM_TEST_CDI_DIR").expect(
        "DOCKERSHIM_TEST_CDI_DIR: start the engine with integration/dockerd.sh and eval its env",
    ));
    assert!(
        dirs.iter().any(|d| std::path::Path::new(d) == dir),
        "Docker reads CDI specs from {dirs:?}, not from {}: start it with integration/dockerd.sh",
        dir.display()
    );
    write_spec(&dir).await;
    Engine::Injects(dir)
}

/// Writes the test spec (atomically, so Docker's watcher never reads half a
/// file) and waits until Docker can inject its devices.
async fn write_spec(dir: &std::path::Path) {
    let path = dir.join("dockershim-test.yaml");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(SPEC) {
        let partial = dir.join(format!(".{}", unique("spec")));
        std::fs::write(&partial, SPEC).unwrap();
        std::fs::rename(&partial, &path).unwrap();
    }
    let ready = eventually(Duration::from_secs(20), || async {
        std::process::Command::new("docker")
            .args(["run", "--rm", "--device"])
            .arg(format!("{KIND}=field"))
            .args([TEST_IMAGE, "true"])
            .output()
            .is_ok_and(|out| out.status.success())
    })
    .await;
    assert!(
        ready,
        "Docker does not inject {KIND}=field from {}",
        path.display()
    );
}

/// A pod with a `cdi.k8s.io` annotation of its own, which (as in
/// containerd) its containers do not get.
fn pod(cleanup: &Cleanup, name: &str) -> PodSandboxConfig {
    let mut pod = pod_config(cleanup, name);
    pod.annotations.insert(
        "cdi.k8s.io/dockershim-test-pod".into(),
        format!("{KIND}=annotated"),
    );
    pod
}

async fn create(
    rt: &mut Cri,
    pod_id: &str,
    pod: &PodSandboxConfig,
    config: ContainerConfig,
) -> Result<String, tonic::Status> {
    rt.create_container(CreateContainerRequest {
        pod_sandbox_id: pod_id.to_string(),
        config: Some(config),
        sandbox_config: Some(pod.clone()),
    })
    .await
    .map(|r| r.into_inner().container_id)
}

/// The container's command: it writes what it sees of the two test devices
/// to /tmp/probe. (Docker applies a CDI spec's environment to the
/// container's own process, not to `docker exec` sessions, so an exec
/// cannot ask for it.)
const PROBE: &str = "{ echo \"field=$DOCKERSHIM_CDI_FIELD annotated=$DOCKERSHIM_CDI_ANNOTATED\"; \
     for d in field annotated; do [ -c /dev/dockershim-test-cdi-$d ] && echo \"node $d\"; done; } \
     >/tmp/probe.part; mv /tmp/probe.part /tmp/probe; exec sleep 300";

/// What the container saw, read through ExecSync.
async fn probe(rt: &mut Cri, id: &str) -> String {
    for _ in 0..100 {
        let (out, _, code) = exec(rt, id, &["cat", "/tmp/probe"]).await;
        if code == 0 {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("container {id} wrote no /tmp/probe");
}

#[tokio::test]
async fn cdi_devices_from_the_field_and_from_annotations_are_injected() {
    ensure_test_image();
    let engine = engine().await;
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let cleanup = Cleanup::new();
    let pod = pod(&cleanup, &unique("cdi"));
    let pod_id = run_pod(&mut rt, &pod).await;

    let mut both = container_config(&cleanup, "both", PROBE);
    both.cdi_devices = vec![CdiDevice {
        name: format!("{KIND}=field"),
    }];
    both.annotations.insert(
        "cdi.k8s.io/dockershim-test".into(),
        format!("{KIND}=annotated,{KIND}=field"),
    );
    let mut annotated = container_config(&cleanup, "annotated", PROBE);
    annotated.annotations.insert(
        "cdi.k8s.io/dockershim-test".into(),
        format!("{KIND}=annotated"),
    );
    let plain = container_config(&cleanup, "plain", PROBE);

    match engine {
        Engine::Injects(dir) => {
            let both = start_container(&mut rt, &pod_id, &pod, both).await;
            assert_eq!(
                probe(&mut rt, &both).await,
                "field=from-field annotated=from-annotation\nnode field\nnode annotated\n",
                "spec dir {}",
                dir.display()
            );
            // Asked for twice, requested once.
            let inspected = docker().await.inspect_container(&both, None).await.unwrap();
            let requests = inspected.host_config.unwrap().device_requests.unwrap();
            assert_eq!(
                requests[0].device_ids,
                Some(vec![format!("{KIND}=field"), format!("{KIND}=annotated")])
            );

            let annotated = start_container(&mut rt, &pod_id, &pod, annotated).await;
            assert_eq!(
                probe(&mut rt, &annotated).await,
                "field= annotated=from-annotation\nnode annotated\n"
            );

            // The pod's own annotation does not reach its containers.
            let plain = start_container(&mut rt, &pod_id, &pod, plain).await;
            assert_eq!(probe(&mut rt, &plain).await, "field= annotated=\n");
        }
        Engine::Refuses => {
            for config in [both, annotated] {
                let err = create(&mut rt, &pod_id, &pod, config).await.unwrap_err();
                assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
                assert!(
                    err.message().contains(&format!("{KIND}=annotated"))
                        && (err.message().contains("1.44")
                            || err.message().contains("\"cdi\": true")),
                    "{}",
                    err.message()
                );
            }
            // Without CDI devices the pod's annotation changes nothing.
            start_container(&mut rt, &pod_id, &pod, plain).await;
        }
    }
    stop_and_remove_pod(&mut rt, &pod_id).await;
}

#[tokio::test]
async fn a_bad_cdi_annotation_is_invalid_argument_naming_key_and_value() {
    ensure_test_image();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let cleanup = Cleanup::new();
    let pod = pod_config(&cleanup, &unique("cdi-bad"));
    let pod_id = run_pod(&mut rt, &pod).await;
    let mut config = container_config(&cleanup, "bad", "sleep 300");
    config.annotations.insert(
        "cdi.k8s.io/dockershim-test-bad".into(),
        format!("{KIND}=field,gpu0"),
    );
    let err = create(&mut rt, &pod_id, &pod, config).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("cdi.k8s.io/dockershim-test-bad")
            && err.message().contains(&format!("{KIND}=field,gpu0")),
        "{}",
        err.message()
    );
    assert!(cleanup.docker_ids().len() == 1, "only the pause container");
    stop_and_remove_pod(&mut rt, &pod_id).await;
}

#[tokio::test]
async fn a_cdi_device_no_spec_names_is_refused_naming_it() {
    ensure_test_image();
    let engine = engine().await;
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let cleanup = Cleanup::new();
    let pod = pod_config(&cleanup, &unique("cdi-unknown"));
    let pod_id = run_pod(&mut rt, &pod).await;
    let mut config = container_config(&cleanup, "unknown", "sleep 300");
    config.cdi_devices = vec![CdiDevice {
        name: format!("{KIND}=no-such-device"),
    }];
    let err = match engine {
        // Docker finds out at start.
        Engine::Injects(_) => {
            let id = create(&mut rt, &pod_id, &pod, config).await.unwrap();
            rt.start_container(StartContainerRequest { container_id: id })
                .await
                .unwrap_err()
        }
        Engine::Refuses => create(&mut rt, &pod_id, &pod, config).await.unwrap_err(),
    };
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains(&format!("{KIND}=no-such-device")),
        "{}",
        err.message()
    );
    stop_and_remove_pod(&mut rt, &pod_id).await;
}

#[tokio::test]
async fn status_verbose_shows_whether_cdi_is_on_and_its_spec_dirs() {
    let engine = engine().await;
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let status = rt
        .status(StatusRequest { verbose: true })
        .await
        .unwrap()
        .into_inner();
    let docker_info: serde_json::Value = serde_json::from_str(&status.info["docker"]).unwrap();
    match engine {
        Engine::Injects(dir) => {
            assert_eq!(docker_info["cdi"], "on", "{docker_info}");
            let dirs: Vec<PathBuf> = docker_info["cdiSpecDirs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| PathBuf::from(d.as_str().unwrap()))
                .collect();
            assert!(dirs.contains(&dir), "{docker_info}");
        }
        Engine::Refuses => {
            let state = docker_info["cdi"].as_str().unwrap();
            assert!(state == "unsupported" || state == "off", "{docker_info}");
            assert_eq!(docker_info["cdiSpecDirs"], serde_json::json!([]));
        }
    }
}
