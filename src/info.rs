//! Runtime identity and health: `Version`, `Status` and `RuntimeConfig`.

use std::collections::HashMap;

use crate::api::{
    LinuxRuntimeConfiguration, RuntimeCondition, RuntimeConfigResponse, RuntimeFeatures,
    RuntimeHandler, RuntimeHandlerFeatures, RuntimeStatus, StatusResponse, VersionResponse,
};
use crate::engine::Feature;
use crate::error::Result;
use crate::host::{CgroupDriver, ImageStore};
use crate::shim::Shim;

/// The CRI version this shim speaks (the kubelet's `version` argument is
/// informational).
const CRI_API_VERSION: &str = "v1";
/// Name the kubelet shows as the node's container runtime (`docker://...`).
const RUNTIME_NAME: &str = "docker";

/// `Version`: the runtime name, Docker's version and the CRI version.
pub async fn version(shim: &Shim) -> Result<VersionResponse> {
    let runtime_version = shim.docker_version.get(&shim.docker).await?;
    Ok(VersionResponse {
        version: env!("CARGO_PKG_VERSION").to_string(),
        runtime_name: RUNTIME_NAME.to_string(),
        runtime_version,
        runtime_api_version: CRI_API_VERSION.to_string(),
    })
}

/// `Status`: RuntimeReady follows a Docker ping made for each call;
/// NetworkReady is true with Docker's own networking, and with CNI once a
/// valid network configuration exists.
pub async fn status(shim: &Shim, verbose: bool) -> StatusResponse {
    let runtime_ready = match shim.docker.ping().await {
        Ok(()) => RuntimeCondition {
            r#type: "RuntimeReady".into(),
            status: true,
            ..Default::default()
        },
        Err(err) => RuntimeCondition {
            r#type: "RuntimeReady".into(),
            status: false,
            reason: "DockerDaemonNotReady".into(),
            message: format!(
                "docker at {} does not answer: {err}",
                shim.config.docker_endpoint
            ),
        },
    };
    let network_ready = match shim.network.ready() {
        Ok(()) => RuntimeCondition {
            r#type: "NetworkReady".into(),
            status: true,
            ..Default::default()
        },
        Err((reason, message)) => RuntimeCondition {
            r#type: "NetworkReady".into(),
            status: false,
            reason,
            message,
        },
    };
    let handler = |name: &str| RuntimeHandler {
        name: name.to_string(),
        features: Some(RuntimeHandlerFeatures {
            recursive_read_only_mounts: shim.host.features.has(Feature::RecursiveReadOnly),
            user_namespaces: false,
        }),
    };
    let mut runtime_handlers = vec![handler("")];
    runtime_handlers.extend(shim.host.runtimes.iter().map(|r| handler(r)));
    StatusResponse {
        status: Some(RuntimeStatus {
            conditions: vec![runtime_ready, network_ready],
        }),
        info: if verbose {
            verbose_info(shim)
        } else {
            HashMap::new()
        },
        runtime_handlers,
        features: Some(RuntimeFeatures::default()),
    }
}

fn verbose_info(shim: &Shim) -> HashMap<String, String> {
    let config = serde_json::json!({
        "sandboxImage": shim.config.pod_infra_container_image,
        "builtinSandboxImage": crate::image::pause::PauseImage::builtin(),
        "dockerEndpoint": shim.config.docker_endpoint,
        "rootDirectory": shim.config.root_directory,
        "networkPlugin": if shim.network.is_cni() { "cni" } else { "docker" },
        "cniConfDir": shim.config.cni_conf_dir,
        "cniBinDirs": shim.config.cni_bin_dir,
        "cniCacheDir": shim.config.cni_cache_dir,
    });
    let docker = serde_json::json!({
        "version": shim.host.docker_version,
        "apiVersion": shim.host.api_version,
        "cgroupDriver": match shim.host.cgroup_driver {
            CgroupDriver::Cgroupfs => "cgroupfs",
            CgroupDriver::Systemd => "systemd",
        },
        "cgroupVersion": shim.host.cgroup_version,
        "defaultRuntime": shim.host.default_runtime,
        "runtimes": shim.host.runtimes,
        "rootDir": shim.host.docker_root_dir,
        "imageStore": match &shim.host.image_store {
            ImageStore::Classic => "classic".to_string(),
            ImageStore::Containerd { snapshotter } => format!("containerd ({snapshotter})"),
        },
        "imageFsDir": shim.host.image_fs_dir,
        // CDI devices: on, off (no spec directory), unsupported (API below
        // 1.44) or unknown (Docker does not say), and the spec directories
        // Docker reads.
        "cdi": shim.host.features.cdi().state(),
        "cdiSpecDirs": shim.host.features.cdi().spec_dirs(),
    });
    HashMap::from([
        ("config".to_string(), config.to_string()),
        ("docker".to_string(), docker.to_string()),
    ])
}

/// `RuntimeConfig`: the cgroup driver Docker uses, which the kubelet adopts.
pub fn runtime_config(shim: &Shim) -> RuntimeConfigResponse {
    RuntimeConfigResponse {
        linux: Some(LinuxRuntimeConfiguration {
            cgroup_driver: shim.host.cgroup_driver as i32,
        }),
    }
}
