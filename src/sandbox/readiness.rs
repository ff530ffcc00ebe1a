//! Whether a sandbox is ready: the one rule PodSandboxStatus,
//! ListPodSandbox, the relist fast path and GetContainerEvents answer by.
//!
//! A sandbox is ready while its pause container runs, unless it is on a
//! CNI network that is not usable: its setup is in progress (pending), or
//! it was cut short and never gave the pod an address. The rule comes in
//! two steps because answers are cached per view generation and pending
//! is not part of the view: [`settled`] may be cached with the view,
//! [`with_pending`] is applied to what is read from a cache, and
//! [`caches_current`] tells when a whole cached answer is still true.

use bollard::models::ContainerInspectResponse;

use crate::api::PodSandboxState;
use crate::network::PodNetwork;

/// A sandbox's CRI state now.
pub fn state(network: &dyn PodNetwork, inspected: &ContainerInspectResponse) -> PodSandboxState {
    let id = inspected.id.as_deref().unwrap_or_default();
    with_pending(network, id, settled(network, inspected))
}

/// The state as of the view: not ready when the pause container does not
/// run, or when its CNI setup ended without an address (the shim was
/// killed during ADD and no result was cached), so the kubelet replaces
/// the pod instead of running containers without a network.
pub fn settled(network: &dyn PodNetwork, inspected: &ContainerInspectResponse) -> PodSandboxState {
    if !crate::host::is_running(inspected) {
        return PodSandboxState::SandboxNotready;
    }
    let id = inspected.id.as_deref().unwrap_or_default();
    // A pod being set up has no IPs yet, and must not be remembered as
    // having none: the pending step says it is not ready.
    let incomplete = on_cni_network(inspected)
        && !network.is_pending(id)
        && network.pod_ips(id).is_some_and(|ips| ips.is_empty());
    if incomplete {
        PodSandboxState::SandboxNotready
    } else {
        PodSandboxState::SandboxReady
    }
}

/// `settled` with what the view does not show: a sandbox whose network is
/// being set up is not ready yet.
pub fn with_pending(
    network: &dyn PodNetwork,
    sandbox_id: &str,
    settled: PodSandboxState,
) -> PodSandboxState {
    if settled == PodSandboxState::SandboxReady
        && network.any_pending()
        && network.is_pending(sandbox_id)
    {
        PodSandboxState::SandboxNotready
    } else {
        settled
    }
}

/// True when no sandbox's state differs from its settled state, so an
/// answer built for the current view generation may be given as it is.
pub fn caches_current(network: &dyn PodNetwork) -> bool {
    !network.any_pending()
}

/// True for a pause container on Docker's `none` network, which CNI
/// plugins attach; pods on Docker's bridge or the host's network are not
/// CNI's to tear down.
pub fn on_cni_network(inspected: &ContainerInspectResponse) -> bool {
    inspected
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.as_deref())
        == Some("none")
}
