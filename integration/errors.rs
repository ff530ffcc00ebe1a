//! Bad input: clear gRPC codes naming the problem, and nothing left behind
//! in Docker.

use dockershim::cri::*;
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn bad_sandbox_requests_are_refused_without_side_effects() {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;

    let err = rt
        .run_pod_sandbox(RunPodSandboxRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("config"), "{}", err.message());

    let mut config = pod_config(&cleanup, "bad_name");
    let err = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("bad_name"), "{}", err.message());

    config.metadata.as_mut().unwrap().name = unique("ok");
    let err = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: "no-such-runtime".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("no-such-runtime"),
        "{}",
        err.message()
    );

    config.port_mappings = vec![PortMapping {
        container_port: 80,
        host_port: 70000,
        ..Default::default()
    }];
    let err = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        cleanup.docker_ids().is_empty(),
        "a refused request created a container"
    );

    for (rpc, err) in [
        (
            "status",
            rt.pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: "f00d".repeat(16),
                verbose: false,
            })
            .await
            .map(|_| ())
            .unwrap_err(),
        ),
        (
            "status-empty",
            rt.pod_sandbox_status(PodSandboxStatusRequest::default())
                .await
                .map(|_| ())
                .unwrap_err(),
        ),
    ] {
        assert!(
            matches!(err.code(), Code::NotFound | Code::InvalidArgument),
            "{rpc}: {err:?}"
        );
    }
    // Stop and remove are idempotent, also for ids never seen.
    rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: "f00d".repeat(16),
    })
    .await
    .unwrap();
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: "f00d".repeat(16),
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn bad_container_requests_are_refused_without_side_effects() {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let shared = rt.clone();
    let pod = pod_config(&cleanup, &unique("badctr"));
    let pod_id = run_pod(&mut rt, &pod).await;
    let create = |sandbox: String, config: Option<ContainerConfig>| {
        let mut rt = shared.clone();
        let pod = pod.clone();
        async move {
            rt.create_container(CreateContainerRequest {
                pod_sandbox_id: sandbox,
                config,
                sandbox_config: Some(pod),
            })
            .await
            .map(|r| r.into_inner().container_id)
        }
    };

    let err = create(
        "f00d".repeat(16),
        Some(container_config(&cleanup, "c", "true")),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("f00d"), "{}", err.message());
    let err = create(pod_id.clone(), None).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut no_image = container_config(&cleanup, "c", "true");
    no_image.image = Some(ImageSpec::default());
    assert_eq!(
        create(pod_id.clone(), Some(no_image))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    let mut missing_image = container_config(&cleanup, "c", "true");
    missing_image.image = Some(ImageSpec {
        image: "dockershim-test/no-such-image:0".into(),
        ..Default::default()
    });
    let err = create(pod_id.clone(), Some(missing_image))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    // An app container's id is not a sandbox id.
    let ctr = start_container(
        &mut rt,
        &pod_id,
        &pod,
        container_config(&cleanup, "main", "sleep 1000"),
    )
    .await;
    let err = create(ctr.clone(), Some(container_config(&cleanup, "c", "true")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // ...and a sandbox id is not a container id.
    let err = rt
        .container_status(ContainerStatusRequest {
            container_id: pod_id.clone(),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    for err in [
        rt.start_container(StartContainerRequest {
            container_id: "f00d".repeat(16),
        })
        .await
        .map(|_| ())
        .unwrap_err(),
        rt.container_status(ContainerStatusRequest {
            container_id: "f00d".repeat(16),
            verbose: false,
        })
        .await
        .map(|_| ())
        .unwrap_err(),
        rt.exec_sync(ExecSyncRequest {
            container_id: "f00d".repeat(16),
            cmd: vec!["true".into()],
            timeout: 1,
        })
        .await
        .map(|_| ())
        .unwrap_err(),
        rt.update_container_resources(UpdateContainerResourcesRequest {
            container_id: "f00d".repeat(16),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .unwrap_err(),
    ] {
        assert_eq!(err.code(), Code::NotFound, "{err:?}");
    }
    let err = rt
        .exec_sync(ExecSyncRequest {
            container_id: ctr.clone(),
            cmd: vec![],
            timeout: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    rt.remove_container(RemoveContainerRequest {
        container_id: "f00d".repeat(16),
    })
    .await
    .unwrap();

    // A container cannot be created in a stopped pod.
    rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod_id.clone(),
    })
    .await
    .unwrap();
    let err = create(
        pod_id.clone(),
        Some(container_config(&cleanup, "late", "true")),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    let ids = cleanup.docker_ids();
    assert_eq!(
        ids.len(),
        2,
        "only the pod and its one good container exist: {ids:?}"
    );
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod_id,
    })
    .await
    .unwrap();
    assert!(cleanup.docker_ids().is_empty());
}

#[tokio::test]
async fn a_container_whose_binary_is_missing_fails_to_start_and_says_why() {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let pod = pod_config(&cleanup, &unique("nobin"));
    let pod_id = run_pod(&mut rt, &pod).await;
    let mut config = container_config(&cleanup, "nobin", "");
    config.command = vec!["/no/such/binary".into()];
    let id = rt
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod_id.clone(),
            config: Some(config),
            sandbox_config: Some(pod),
        })
        .await
        .unwrap()
        .into_inner()
        .container_id;
    let err = rt
        .start_container(StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("/no/such/binary"), "{err:?}");
    let s = container_status(&mut rt, &id).await;
    assert_eq!(s.reason, "ContainerCannotRun", "{s:?}");
    assert!(s.message.contains("/no/such/binary"), "{s:?}");
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod_id,
    })
    .await
    .unwrap();
    assert!(cleanup.docker_ids().is_empty());
}

/// Sends raw bytes as a gRPC message, whatever they decode to.
#[derive(Clone, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let len = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, len).to_vec()))
    }
}

#[tokio::test]
async fn undecodable_and_oversized_requests_are_the_callers_error() {
    let shim = Shim::start().await;
    let grpc = tonic::client::Grpc::new(shim.channel().await).max_encoding_message_size(64 << 20);
    let call = |body: Vec<u8>| {
        let mut grpc = grpc.clone();
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(
            "/runtime.v1.RuntimeService/Version",
        );
        async move {
            grpc.ready().await.unwrap();
            grpc.unary(tonic::Request::new(body), path, RawCodec)
                .await
                .map(|_| ())
                .unwrap_err()
        }
    };
    // A truncated length-delimited field, and a string that is not UTF-8.
    for body in [vec![0x0a, 0x05, b'v'], vec![0x0a, 0x02, 0xff, 0xfe]] {
        let status = call(body.clone()).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{body:?}: {status:?}");
    }
    // A message over the 16 MiB limit.
    let mut big = vec![0x0a];
    let len = 17usize << 20;
    let mut varint = len;
    while varint >= 0x80 {
        big.push(u8::try_from(varint & 0x7f).unwrap() | 0x80);
        varint >>= 7;
    }
    big.push(u8::try_from(varint).unwrap());
    big.resize(big.len() + len, b'v');
    let status = call(big).await;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
}

#[tokio::test]
async fn names_held_by_running_pods_and_containers_are_refused_untouched() {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let pod = pod_config(&cleanup, &unique("dup"));
    let pod_id = run_pod(&mut rt, &pod).await;
    let err = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert!(err.message().contains(&pod_id), "{}", err.message());
    let config = container_config(&cleanup, "main", "sleep 1000");
    let id = start_container(&mut rt, &pod_id, &pod, config.clone()).await;
    let err = rt
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod_id.clone(),
            config: Some(config),
            sandbox_config: Some(pod.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    // Both still run and are listed.
    assert_eq!(
        sandbox_status(&mut rt, &pod_id).await.state,
        PodSandboxState::SandboxReady as i32
    );
    assert_eq!(
        container_status(&mut rt, &id).await.state,
        ContainerState::ContainerRunning as i32
    );
    stop_and_remove_pod(&mut rt, &pod_id).await;
}

#[tokio::test]
async fn paths_outside_the_pods_directories_are_refused_before_anything_is_made() {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let pod = pod_config(&cleanup, &unique("paths"));
    let pod_id = run_pod(&mut rt, &pod).await;
    let victim = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(victim.path(), "line one\nno newline at the end").unwrap();
    let escape = format!("../../../..{}", victim.path().display());
    let mut cases: Vec<(&str, ContainerConfig)> = Vec::new();
    for log_path in [escape.clone(), victim.path().display().to_string()] {
        let mut config = container_config(&cleanup, "esc", "true");
        config.log_path = log_path;
        cases.push(("log_path", config));
    }
    let mut config = container_config(&cleanup, "rel", "true");
    config.mounts = vec![Mount {
        host_path: "relative-volume".into(),
        container_path: "/data".into(),
        ..Default::default()
    }];
    cases.push(("host_path", config));
    let mut config = container_config(&cleanup, "relc", "true");
    config.mounts = vec![Mount {
        host_path: "/tmp".into(),
        container_path: "data".into(),
        ..Default::default()
    }];
    cases.push(("container_path", config));
    for (field, config) in cases {
        let err = rt
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod_id.clone(),
                config: Some(config),
                sandbox_config: Some(pod.clone()),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(err.message().contains(field), "{}", err.message());
    }
    let mut relative_dir = pod_config(&cleanup, &unique("reldir"));
    relative_dir.log_directory = "relative/logs".into();
    let err = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(relative_dir),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(
        std::fs::read_to_string(victim.path()).unwrap(),
        "line one\nno newline at the end"
    );
    assert!(!std::path::Path::new("relative/logs").exists());
    // Nothing but the pause container was made.
    assert_eq!(cleanup.docker_ids().len(), 1);
    stop_and_remove_pod(&mut rt, &pod_id).await;
}
