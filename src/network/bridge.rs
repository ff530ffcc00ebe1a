//! Docker's own bridge as the pod network (`--network-plugin` empty or
//! `docker`): Docker attaches the pause container when it starts and
//! reports its IPs, so there is nothing to set up, wait for or tear down.

use std::net::IpAddr;

use async_trait::async_trait;

use super::pod::{PendingSetup, PodAttachment, PodNetwork};
use crate::api::PodSandboxConfig;
use crate::error::Result;

/// Pods on Docker's default bridge network.
pub struct DockerBridge;

#[async_trait]
impl PodNetwork for DockerBridge {
    fn is_cni(&self) -> bool {
        false
    }

    fn docker_network_mode(&self) -> &'static str {
        "bridge"
    }

    fn begin(&self, sandbox_id: &str) -> PendingSetup<'_> {
        PendingSetup::none(sandbox_id)
    }

    fn any_pending(&self) -> bool {
        false
    }

    fn is_pending(&self, _sandbox_id: &str) -> bool {
        false
    }

    async fn attach(&self, _pod: &PodAttachment<'_>) -> Result<()> {
        Ok(())
    }

    async fn detach(
        &self,
        _sandbox_id: &str,
        _pid: Option<u32>,
        _pod: Option<&PodSandboxConfig>,
    ) -> Result<()> {
        Ok(())
    }

    fn pinned_sandboxes(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn pod_ips(&self, _sandbox_id: &str) -> Option<Vec<IpAddr>> {
        None
    }
}
