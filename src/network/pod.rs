//! The pod network as sandbox orchestration sees it: set a pod's network
//! up while it reads as pending, tear it down (from the live pod or, after
//! a restart, from what its labels say), and tell its IPs. CNI plugins
//! ([`super::CniNetwork`]) and Docker's own bridge
//! ([`super::bridge::DockerBridge`]) implement it; unit tests use a
//! recording fake.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::api::PodSandboxConfig;
use crate::error::Result;

/// What the pod's network attachment needs from the sandbox.
pub struct PodAttachment<'a> {
    /// The pause container's id (CNI's container id).
    pub sandbox_id: &'a str,
    /// The pause process, whose network namespace the pod uses.
    pub pid: u32,
    /// The pod's configuration.
    pub config: &'a PodSandboxConfig,
}

/// Pod networking: the port sandbox orchestration calls.
#[async_trait]
pub trait PodNetwork: Send + Sync {
    /// True when pods get their network from CNI plugins, attached after
    /// the pause container starts; false when Docker gives it.
    fn is_cni(&self) -> bool;

    /// Docker's network mode for a pod's pause container that is not on
    /// the host's network.
    fn docker_network_mode(&self) -> &'static str;

    /// NetworkReady: `Ok` or the reason and message why not. A network
    /// with nothing to load is always ready.
    fn ready(&self) -> std::result::Result<(), (String, String)> {
        Ok(())
    }

    /// Takes the pod CIDR the kubelet sends; a network that does not
    /// allocate addresses itself ignores it.
    fn set_pod_cidr(&self, _cidr: &str) {}

    /// Marks a sandbox's network as being set up: the sandbox reads as not
    /// ready until the guard is dropped, whichever way the setup ends (done,
    /// failed, or abandoned when the RunPodSandbox call is cancelled).
    fn begin(&self, sandbox_id: &str) -> PendingSetup<'_>;

    /// True while any sandbox's network is being set up.
    fn any_pending(&self) -> bool;

    /// True while a sandbox's network is being set up.
    fn is_pending(&self, sandbox_id: &str) -> bool;

    /// Attaches a started pod to its network. On failure everything
    /// attached is detached again.
    async fn attach(&self, pod: &PodAttachment<'_>) -> Result<()>;

    /// Detaches a pod from every network it was attached to. `pid` is the
    /// pause process while it runs; `pod` gives the pod's names, host ports
    /// and annotations (read back from the pause container's labels after a
    /// restart), which plugins such as portmap need to find what to remove.
    /// With neither, what the network remembers of the pod is torn down.
    async fn detach(
        &self,
        sandbox_id: &str,
        pid: Option<u32>,
        pod: Option<&PodSandboxConfig>,
    ) -> Result<()>;

    /// The sandboxes whose network namespace is pinned: each has had a
    /// successful setup and no teardown yet, so a crash may have left them.
    fn pinned_sandboxes(&self) -> Result<Vec<String>>;

    /// The pod's IPs, primary first; `None` when the network does not know
    /// them (Docker reports the IPs then). An empty list is a pod whose
    /// setup never finished.
    fn pod_ips(&self, sandbox_id: &str) -> Option<Vec<IpAddr>>;
}

/// The sandboxes whose network is being set up right now.
#[derive(Default)]
pub struct PendingSet(Mutex<HashSet<String>>);

impl PendingSet {
    /// Marks `sandbox_id` pending until the guard is dropped.
    pub fn begin(&self, sandbox_id: &str) -> PendingSetup<'_> {
        self.lock().insert(sandbox_id.to_string());
        PendingSetup {
            set: Some(self),
            sandbox_id: sandbox_id.to_string(),
        }
    }

    /// True while `sandbox_id`'s setup runs.
    pub fn contains(&self, sandbox_id: &str) -> bool {
        self.lock().contains(sandbox_id)
    }

    /// True while no setup runs.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A sandbox's network set-up in progress ([`PodNetwork::begin`]); ends
/// when dropped.
pub struct PendingSetup<'a> {
    set: Option<&'a PendingSet>,
    sandbox_id: String,
}

impl PendingSetup<'_> {
    /// A setup nothing waits for: Docker's bridge is ready when the pause
    /// container starts.
    pub fn none(sandbox_id: &str) -> Self {
        Self {
            set: None,
            sandbox_id: sandbox_id.to_string(),
        }
    }
}

impl Drop for PendingSetup<'_> {
    fn drop(&mut self) {
        if let Some(set) = self.set {
            set.lock().remove(&self.sandbox_id);
        }
    }
}
