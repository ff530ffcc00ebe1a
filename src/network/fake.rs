//! A recording fake of [`PodNetwork`] for unit tests of sandbox
//! orchestration: a CNI-like network held in memory that records every
//! call naming a sandbox, hands out one IP per attached pod, and can be
//! told to fail or to stall the next ADD.
//!
//! It follows the contract the sandbox code relies on: an ADD that fails
//! releases what it took; an ADD cut short (its future dropped) leaves its
//! IP allocated and its namespace pinned until a DEL; a DEL of an unknown
//! pod succeeds; a pod whose ADD never finished has no IPs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::pod::{PendingSet, PendingSetup, PodAttachment, PodNetwork};
use crate::api::{PodSandboxConfig, PortMapping};
use crate::error::{Error, Result};

/// One call that named a sandbox, with its arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum NetCall {
    /// `begin`: the setup is pending.
    Begin(String),
    /// `attach` (ADD) with the pause process.
    Attach(String, u32),
    /// `detach` (DEL) with the pause process, if given, and the port
    /// mappings of the pod config, if one was given.
    Detach(String, Option<u32>, Option<Vec<PortMapping>>),
    /// `is_pending`.
    IsPending(String),
    /// `pod_ips`.
    PodIps(String),
}

impl NetCall {
    /// True for the calls that change the network (not queries).
    pub fn is_change(&self) -> bool {
        matches!(self, Self::Begin(_) | Self::Attach(..) | Self::Detach(..))
    }
}

/// An ADD held until the test releases it.
#[derive(Default)]
pub struct Stall {
    started: Notify,
    release: Notify,
}

impl Stall {
    /// Waits until the stalled ADD runs.
    pub async fn started(&self) {
        self.started.notified().await;
    }

    /// Lets the stalled ADD finish (successfully).
    pub fn release(&self) {
        self.release.notify_one();
    }
}

/// What the next ADD does instead of succeeding at once.
enum Script {
    Fail(Error),
    Stall(Arc<Stall>),
}

/// The fake network.
#[derive(Default)]
pub struct FakeNetwork {
    calls: Mutex<Vec<NetCall>>,
    pending: PendingSet,
    /// IPs handed out by ADDs and not yet released by a DEL.
    allocated: Mutex<BTreeMap<String, IpAddr>>,
    /// Pods whose ADD finished, with their IPs.
    attached: Mutex<HashMap<String, Vec<IpAddr>>>,
    /// Pods with an ADD started and no DEL since.
    pinned: Mutex<BTreeSet<String>>,
    next_add: Mutex<Option<Script>>,
    next_ip: Mutex<u8>,
}

impl FakeNetwork {
    /// An empty network.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The next ADD fails with `err` (after taking, then releasing, an IP).
    pub fn fail_next_add(&self, err: Error) {
        *lock(&self.next_add) = Some(Script::Fail(err));
    }

    /// The next ADD waits until the returned handle releases it.
    pub fn stall_next_add(&self) -> Arc<Stall> {
        let stall = Arc::new(Stall::default());
        *lock(&self.next_add) = Some(Script::Stall(stall.clone()));
        stall
    }

    /// Every call naming a sandbox, in order.
    pub fn calls(&self) -> Vec<NetCall> {
        lock(&self.calls).clone()
    }

    /// The calls that change the network, in order.
    pub fn changes(&self) -> Vec<NetCall> {
        self.calls()
            .into_iter()
            .filter(NetCall::is_change)
            .collect()
    }

    /// The sandboxes holding an IP.
    pub fn allocated(&self) -> Vec<String> {
        lock(&self.allocated).keys().cloned().collect()
    }

    fn record(&self, call: NetCall) {
        lock(&self.calls).push(call);
    }

    fn allocate(&self, sandbox_id: &str) -> IpAddr {
        let mut next = lock(&self.next_ip);
        *next = next.wrapping_add(1);
        let ip = IpAddr::V4(Ipv4Addr::new(10, 88, 0, *next));
        lock(&self.allocated).insert(sandbox_id.to_string(), ip);
        ip
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl PodNetwork for FakeNetwork {
    fn is_cni(&self) -> bool {
        true
    }

    fn docker_network_mode(&self) -> &'static str {
        "none"
    }

    fn begin(&self, sandbox_id: &str) -> PendingSetup<'_> {
        self.record(NetCall::Begin(sandbox_id.to_string()));
        self.pending.begin(sandbox_id)
    }

    fn any_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn is_pending(&self, sandbox_id: &str) -> bool {
        self.record(NetCall::IsPending(sandbox_id.to_string()));
        self.pending.contains(sandbox_id)
    }

    async fn attach(&self, pod: &PodAttachment<'_>) -> Result<()> {
        let id = pod.sandbox_id;
        self.record(NetCall::Attach(id.to_string(), pod.pid));
        lock(&self.pinned).insert(id.to_string());
        let ip = self.allocate(id);
        let script = lock(&self.next_add).take();
        match script {
            Some(Script::Fail(err)) => {
                lock(&self.allocated).remove(id);
                lock(&self.pinned).remove(id);
                return Err(err);
            }
            Some(Script::Stall(stall)) => {
                stall.started.notify_one();
                stall.release.notified().await;
            }
            None => {}
        }
        lock(&self.attached).insert(id.to_string(), vec![ip]);
        Ok(())
    }

    async fn detach(
        &self,
        sandbox_id: &str,
        pid: Option<u32>,
        pod: Option<&PodSandboxConfig>,
    ) -> Result<()> {
        self.record(NetCall::Detach(
            sandbox_id.to_string(),
            pid,
            pod.map(|p| p.port_mappings.clone()),
        ));
        lock(&self.allocated).remove(sandbox_id);
        lock(&self.attached).remove(sandbox_id);
        lock(&self.pinned).remove(sandbox_id);
        Ok(())
    }

    fn pinned_sandboxes(&self) -> Result<Vec<String>> {
        Ok(lock(&self.pinned).iter().cloned().collect())
    }

    fn pod_ips(&self, sandbox_id: &str) -> Option<Vec<IpAddr>> {
        self.record(NetCall::PodIps(sandbox_id.to_string()));
        Some(
            lock(&self.attached)
                .get(sandbox_id)
                .cloned()
                .unwrap_or_default(),
        )
    }
}
