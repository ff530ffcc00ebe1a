//! The shim's live view of Docker: every sandbox and container carrying the
//! shim's labels, as Docker last reported it (`docker inspect`).
//!
//! The kubelet lists every pod and container once a second and asks for
//! their statuses; answering those from memory keeps dockerd idle. The view
//! is filled by one list at start ([`watch`]), kept current by Docker's event
//! stream, and refreshed by the shim itself after each change it makes, so a
//! caller's own change is visible in its next call.
//!
//! Every refresh takes a sequence number *before* asking Docker; an answer
//! older than what the view already holds is dropped, so a slow inspect can
//! never overwrite a newer one, and a removed container is not brought back
//! by an inspect that raced its removal. Each state change a refresh reveals
//! is broadcast as a [`Change`] (for `GetContainerEvents`).
//!
//! An exit is recorded only once the container's log writer has copied all
//! its output ([`LogWriters::drained`]): whoever learns from the view that a
//! container exited can read its whole log file, as with containerd.

pub mod watch;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, ImageInspect, ImageSummary,
};
use tokio::sync::broadcast;

use crate::docker::{DockerApi, DockerError, DockerResult, now_nanos, timestamp_nanos};
use crate::error::{DockerContext, Error, Result};
use crate::logs::LogWriters;
use crate::naming;

/// How long a removed id is remembered, so that late answers about it are
/// recognised as stale.
const TOMBSTONE_TTL: Duration = Duration::from_secs(60);

/// Longest wait for a log writer before an exit is recorded anyway (a
/// writer that cannot keep up must not hold every status back).
const LOG_DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Changes buffered for slow `GetContainerEvents` readers.
const CHANGE_BUFFER: usize = 4096;

/// What kind of shim object a Docker container is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A pod's pause container.
    Sandbox,
    /// An application container.
    Container,
}

impl Kind {
    /// The kind named by the shim's type label, if any.
    fn of(inspected: &ContainerInspectResponse) -> Option<Self> {
        match labels(inspected).get(naming::TYPE_LABEL)?.as_str() {
            naming::TYPE_SANDBOX => Some(Kind::Sandbox),
            naming::TYPE_CONTAINER => Some(Kind::Container),
            _ => None,
        }
    }
}

/// Where a container is in its life, as far as events care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Created, never started.
    Created,
    /// Running (or paused, restarting).
    Running,
    /// Exited or dead.
    Exited,
}

impl Phase {
    fn of(inspected: &ContainerInspectResponse) -> Self {
        use ContainerStateStatusEnum as S;
        match inspected.state.as_ref().and_then(|s| s.status) {
            Some(S::RUNNING | S::PAUSED | S::RESTARTING) => Phase::Running,
            Some(S::EXITED | S::DEAD | S::REMOVING) => Phase::Exited,
            _ => Phase::Created,
        }
    }
}

/// One sandbox or container as Docker last reported it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Sandbox or container.
    pub kind: Kind,
    /// Docker's full answer.
    pub inspected: Arc<ContainerInspectResponse>,
    seq: u64,
}

impl Entry {
    /// The full container id.
    pub fn id(&self) -> &str {
        self.inspected.id.as_deref().unwrap_or_default()
    }

    /// The sandbox an application container belongs to; a sandbox's own id.
    pub fn sandbox_id(&self) -> &str {
        match self.kind {
            Kind::Sandbox => self.id(),
            Kind::Container => labels(&self.inspected)
                .get(naming::SANDBOX_ID_LABEL)
                .map(String::as_str)
                .unwrap_or_default(),
        }
    }

    /// Where it is in its life.
    pub fn phase(&self) -> Phase {
        Phase::of(&self.inspected)
    }

    /// The Docker labels.
    pub fn labels(&self) -> &HashMap<String, String> {
        labels(&self.inspected)
    }
}

fn labels(inspected: &ContainerInspectResponse) -> &HashMap<String, String> {
    static EMPTY: std::sync::LazyLock<HashMap<String, String>> =
        std::sync::LazyLock::new(HashMap::new);
    inspected
        .config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .unwrap_or(&EMPTY)
}

/// A state change of a sandbox or container, in the CRI's event terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    /// It was created.
    Created,
    /// It started.
    Started,
    /// It stopped.
    Stopped,
    /// It was removed.
    Deleted,
}

/// One change, broadcast to event subscribers.
#[derive(Debug, Clone)]
pub struct Change {
    /// The object as it was after the change (before, for a removal).
    pub entry: Entry,
    /// What happened.
    pub change: ChangeType,
    /// When, in Unix nanoseconds (Docker's time where it reports one).
    pub at: i64,
}

/// The result of looking an id up.
#[derive(Debug)]
pub enum Lookup {
    /// Exactly one object has this id or id prefix.
    Found(Entry),
    /// Several objects share this prefix.
    Ambiguous,
    /// Nothing in the view matches.
    Missing,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// Removed ids with the sequence number of their removal.
    removed: HashMap<String, (u64, Instant)>,
    /// Inspected images by id; `None` for an image Docker no longer has.
    images: HashMap<String, Option<Arc<ImageInspect>>>,
    /// Docker's image list.
    image_list: Option<Arc<Vec<ImageSummary>>>,
    /// Bumped by every image change, so an answer that raced one is not kept.
    image_generation: u64,
}

/// The live view. Cheap to share; never holds its lock across an await.
pub struct View {
    docker: Arc<dyn DockerApi>,
    /// Consulted before an exit is recorded: see [`View::settle`].
    logs: Arc<LogWriters>,
    state: RwLock<State>,
    seq: AtomicU64,
    changes: broadcast::Sender<Change>,
    /// Rebuilds from a full list; a metric ([`View::register_metrics`]).
    resyncs: prometheus_client::metrics::counter::Counter,
    /// Bumped whenever an entry is added, replaced or removed.
    generation: AtomicU64,
}

/// A value built from the view, kept until the view changes: the kubelet
/// relists every second, and most seconds nothing changed.
pub struct GenerationCache<V> {
    built: Mutex<Option<(u64, V)>>,
}

/// A list built from the view, kept per view generation.
pub type ListCache<T> = GenerationCache<Arc<Vec<T>>>;

impl<V> Default for GenerationCache<V> {
    fn default() -> Self {
        Self {
            built: Mutex::new(None),
        }
    }
}

impl<V: Clone> GenerationCache<V> {
    /// The value as of `generation`, built by `build` when the cached one is
    /// older. A value built while the view changed is stored under the
    /// generation read before building, so the next call rebuilds it.
    pub fn get(&self, generation: u64, build: impl FnOnce() -> V) -> V {
        let lock = || self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((built_at, value)) = lock().as_ref()
            && *built_at == generation
        {
            return value.clone();
        }
        let value = build();
        *lock() = Some((generation, value.clone()));
        value
    }
}

impl View {
    /// An empty view over `docker`; [`watch::start`] fills it.
    pub fn new(docker: Arc<dyn DockerApi>, logs: Arc<LogWriters>) -> Self {
        Self {
            docker,
            logs,
            state: RwLock::new(State::default()),
            seq: AtomicU64::new(1),
            changes: broadcast::channel(CHANGE_BUFFER).0,
            resyncs: Default::default(),
            generation: AtomicU64::new(0),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way that matters more than serving stale data would.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Asks Docker about `id` (an id, prefix or name) and records the answer.
    /// Returns what the view now holds for it: `None` when Docker has no such
    /// container or it is not one of the shim's.
    pub async fn reinspect(&self, id: &str) -> DockerResult<Option<Entry>> {
        let seq = self.next_seq();
        match self.docker.inspect_container(id).await {
            Ok(inspected) => {
                self.settle(&inspected).await;
                Ok(self.record(seq, inspected))
            }
            Err(DockerError::NotFound(_)) => {
                self.remove_seen(seq, id);
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// Finds a container by id (or unique prefix) that must be of `kind` (a
    /// sandbox or an application container), from the live view; an id the
    /// view does not hold is asked of Docker once. Anything else is reported
    /// as not found, named as `what`.
    pub async fn find(&self, id: &str, kind: Kind, what: &str) -> Result<Entry> {
        if id.is_empty() {
            return Err(Error::InvalidArgument(format!("{what} id is required")));
        }
        let not_found = || Error::NotFound(format!("{what} {id:?} not found"));
        let entry = match self.lookup(id) {
            Lookup::Found(entry) => Some(entry),
            Lookup::Ambiguous => {
                return Err(Error::InvalidArgument(format!(
                    "{what} id prefix {id:?} is ambiguous"
                )));
            }
            Lookup::Missing => self
                .reinspect(id)
                .await
                .context(|| format!("inspect {what} {id}"))?,
        };
        entry.filter(|e| e.kind == kind).ok_or_else(not_found)
    }

    /// Re-reads a container the shim just changed, so its next answer shows
    /// the change; a failure only delays that to Docker's event.
    pub async fn refresh(&self, id: &str) {
        if let Err(err) = self.reinspect(id).await {
            tracing::warn!(container = id, error = %err, "cannot inspect after a change");
        }
    }

    /// Waits until a container Docker reports not running has all its
    /// output in its CRI log file, so no reader of the view (statuses,
    /// lists, events) sees an exit before the whole log is readable.
    async fn settle(&self, inspected: &ContainerInspectResponse) {
        // Only an exit is held back: a container still being created or
        // started has a writer registered that has nothing to finish yet.
        let exited = inspected
            .state
            .as_ref()
            .and_then(|s| s.status)
            .is_some_and(|s| {
                matches!(
                    s,
                    ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD
                )
            });
        if !exited {
            return;
        }
        if let Some(id) = inspected.id.as_deref() {
            self.logs.drained(id, LOG_DRAIN_LIMIT).await;
        }
    }

    /// Records that the shim removed `id`.
    pub fn forget(&self, id: &str) {
        let seq = self.next_seq();
        self.remove_seen(seq, id);
    }

    /// Stores an inspect answer taken at `seq`, unless a newer one is held.
    fn record(&self, seq: u64, inspected: ContainerInspectResponse) -> Option<Entry> {
        let kind = Kind::of(&inspected)?;
        let id = inspected.id.clone()?;
        let mut state = self.write();
        if state.removed.get(&id).is_some_and(|(gone, _)| *gone > seq) {
            return None;
        }
        let old = state.entries.get(&id);
        if let Some(old) = old
            && old.seq > seq
        {
            return Some(old.clone());
        }
        let entry = Entry {
            kind,
            inspected: Arc::new(inspected),
            seq,
        };
        let changes = transitions(old, &entry);
        state.removed.remove(&id);
        state.entries.insert(id, entry.clone());
        self.generation.fetch_add(1, Ordering::Release);
        drop(state);
        for change in changes {
            self.announce(&entry, change);
        }
        Some(entry)
    }

    /// Drops `id` (full id or the prefix/name it was asked by) as removed at
    /// `seq`.
    fn remove_seen(&self, seq: u64, id: &str) {
        let mut state = self.write();
        let now = Instant::now();
        state
            .removed
            .retain(|_, (_, at)| now.duration_since(*at) < TOMBSTONE_TTL);
        let full_id = match find(&state, id) {
            Lookup::Found(entry) if entry.seq < seq => entry.id().to_string(),
            Lookup::Found(_) => return,
            // An id the view never held: remember it, so a slower answer
            // about it cannot add it back.
            _ => {
                state.removed.insert(id.to_string(), (seq, now));
                return;
            }
        };
        state.removed.insert(full_id.clone(), (seq, now));
        let removed = state.entries.remove(&full_id);
        self.generation.fetch_add(1, Ordering::Release);
        drop(state);
        if let Some(entry) = removed {
            self.announce(&entry, ChangeType::Deleted);
        }
    }

    fn announce(&self, entry: &Entry, change: ChangeType) {
        let state = entry.inspected.state.as_ref();
        let docker_time = match change {
            ChangeType::Created => timestamp_nanos(entry.inspected.created.as_deref()),
            ChangeType::Started => timestamp_nanos(state.and_then(|s| s.started_at.as_deref())),
            ChangeType::Stopped => timestamp_nanos(state.and_then(|s| s.finished_at.as_deref())),
            ChangeType::Deleted => 0,
        };
        let at = if docker_time > 0 {
            docker_time
        } else {
            now_nanos()
        };
        // Nobody listening is fine: events are best-effort by CRI design.
        let _ = self.changes.send(Change {
            entry: entry.clone(),
            change,
            at,
        });
    }

    /// Finds an object by full id or unique id prefix.
    pub fn lookup(&self, id: &str) -> Lookup {
        find(&self.read(), id)
    }

    /// Every object of `kind`.
    pub fn all(&self, kind: Kind) -> Vec<Entry> {
        self.read()
            .entries
            .values()
            .filter(|e| e.kind == kind)
            .cloned()
            .collect()
    }

    /// The application containers of a sandbox.
    pub fn containers_of(&self, sandbox_id: &str) -> Vec<Entry> {
        self.read()
            .entries
            .values()
            .filter(|e| e.kind == Kind::Container && e.sandbox_id() == sandbox_id)
            .cloned()
            .collect()
    }

    /// Changes whenever an entry is added, replaced or removed.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Subscribes to changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// How many times the view was rebuilt from a full list (start, and
    /// after each loss of the event stream).
    pub fn resyncs(&self) -> u64 {
        self.resyncs.get()
    }

    /// Registers the view's metrics in `registry`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "view_resyncs",
            "Rebuilds of the live view from a full container list (start, and each loss of Docker's event stream)",
            self.resyncs.clone(),
        );
    }

    /// An image by id, inspected once and cached until Docker reports an
    /// image event (or the shim changes an image). `None` when Docker no longer has it.
    pub async fn image(&self, image_id: &str) -> DockerResult<Option<Arc<ImageInspect>>> {
        if let Some(cached) = self.read().images.get(image_id) {
            return Ok(cached.clone());
        }
        let generation = self.read().image_generation;
        let image = match self.docker.inspect_image(image_id).await {
            Ok(image) => Some(Arc::new(image)),
            Err(DockerError::NotFound(_)) => None,
            Err(err) => return Err(err),
        };
        let mut state = self.write();
        if state.image_generation == generation {
            state.images.insert(image_id.to_string(), image.clone());
        }
        Ok(image)
    }

    /// Docker's image list, listed once and cached until an image changes.
    pub async fn image_list(&self) -> DockerResult<Arc<Vec<ImageSummary>>> {
        let generation = {
            let state = self.read();
            if let Some(list) = &state.image_list {
                return Ok(list.clone());
            }
            state.image_generation
        };
        let list = Arc::new(self.docker.list_images().await?);
        let mut state = self.write();
        if state.image_generation == generation {
            state.image_list = Some(list.clone());
        }
        Ok(list)
    }

    /// Forgets every cached image (an image was pulled, tagged or removed).
    pub fn invalidate_images(&self) {
        let mut state = self.write();
        state.images.clear();
        state.image_list = None;
        state.image_generation += 1;
    }

    /// Replaces the view with a full list from Docker; objects that are gone
    /// are announced as deleted. Answers newer than the list are kept.
    pub async fn resync(&self) -> DockerResult<()> {
        use futures_util::stream::{self, StreamExt, TryStreamExt};
        let seq = self.next_seq();
        let filters = crate::docker::Filters::from([(
            "label".to_string(),
            vec![naming::TYPE_LABEL.to_string()],
        )]);
        let listed = self.docker.list_containers(filters).await?;
        let ids: Vec<String> = listed.into_iter().filter_map(|c| c.id).collect();
        let inspected: Vec<Option<ContainerInspectResponse>> = stream::iter(ids.clone())
            .map(|id| {
                let docker = self.docker.clone();
                async move {
                    match docker.inspect_container(&id).await {
                        Ok(inspected) => {
                            self.settle(&inspected).await;
                            Ok(Some(inspected))
                        }
                        Err(DockerError::NotFound(_)) => Ok(None),
                        Err(err) => Err(err),
                    }
                }
            })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        for found in inspected.into_iter().flatten() {
            self.record(seq, found);
        }
        let gone: Vec<String> = self
            .read()
            .entries
            .values()
            .filter(|e| e.seq <= seq && !ids.iter().any(|id| id == e.id()))
            .map(|e| e.id().to_string())
            .collect();
        for id in gone {
            self.remove_seen(seq + 1, &id);
        }
        self.invalidate_images();
        self.resyncs.inc();
        Ok(())
    }
}

fn find(state: &State, id: &str) -> Lookup {
    if id.is_empty() {
        return Lookup::Missing;
    }
    if let Some(entry) = state.entries.get(id) {
        return Lookup::Found(entry.clone());
    }
    let mut matches = state.entries.values().filter(|e| e.id().starts_with(id));
    match (matches.next(), matches.next()) {
        (Some(entry), None) => Lookup::Found(entry.clone()),
        (Some(_), Some(_)) => Lookup::Ambiguous,
        _ => Lookup::Missing,
    }
}

/// The changes between what was held and the new answer, in order.
fn transitions(old: Option<&Entry>, new: &Entry) -> Vec<ChangeType> {
    let started_at = |e: &Entry| {
        timestamp_nanos(
            e.inspected
                .state
                .as_ref()
                .and_then(|s| s.started_at.as_deref()),
        )
    };
    let new_phase = new.phase();
    let ever_started = started_at(new) > 0;
    let mut changes = Vec::new();
    let old_phase = match old {
        Some(old) => old.phase(),
        None => {
            changes.push(ChangeType::Created);
            Phase::Created
        }
    };
    let restarted = old.is_some_and(|o| started_at(o) != started_at(new)) && ever_started;
    match (old_phase, new_phase) {
        (Phase::Created, Phase::Running) => changes.push(ChangeType::Started),
        (Phase::Created, Phase::Exited) => {
            if ever_started {
                changes.push(ChangeType::Started);
            }
            changes.push(ChangeType::Stopped);
        }
        (Phase::Running, Phase::Exited) => changes.push(ChangeType::Stopped),
        (Phase::Exited, Phase::Running) => changes.push(ChangeType::Started),
        (Phase::Running, Phase::Running) if restarted => {
            changes.extend([ChangeType::Stopped, ChangeType::Started]);
        }
        (Phase::Exited, Phase::Exited) if restarted => {
            changes.extend([ChangeType::Started, ChangeType::Stopped]);
        }
        _ => {}
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerConfig, ContainerState};

    fn inspected(
        id: &str,
        status: ContainerStateStatusEnum,
        started: &str,
    ) -> ContainerInspectResponse {
        ContainerInspectResponse {
            id: Some(id.into()),
            created: Some("2026-11-26T10:00:00Z".into()),
            config: Some(ContainerConfig {
                labels: Some(HashMap::from([
                    (
                        naming::TYPE_LABEL.to_string(),
                        naming::TYPE_CONTAINER.to_string(),
                    ),
                    (naming::SANDBOX_ID_LABEL.to_string(), "sb".to_string()),
                ])),
                ..Default::default()
            }),
            state: Some(ContainerState {
                status: Some(status),
                started_at: Some(started.into()),
                finished_at: Some("0001-01-01T00:00:00Z".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn entry(status: ContainerStateStatusEnum, started: &str) -> Entry {
        Entry {
            kind: Kind::Container,
            inspected: Arc::new(inspected("c1", status, started)),
            seq: 1,
        }
    }

    const NEVER: &str = "0001-01-01T00:00:00Z";
    const T1: &str = "2026-11-26T10:00:01Z";
    const T2: &str = "2026-11-26T10:00:05Z";

    #[test]
    fn transitions_follow_the_lifecycle() {
        use ChangeType::*;
        use ContainerStateStatusEnum as S;
        assert_eq!(transitions(None, &entry(S::CREATED, NEVER)), [Created]);
        assert_eq!(
            transitions(None, &entry(S::EXITED, T1)),
            [Created, Started, Stopped],
            "a container that ran and died before we looked"
        );
        let created = entry(S::CREATED, NEVER);
        assert_eq!(
            transitions(Some(&created), &entry(S::RUNNING, T1)),
            [Started]
        );
        let running = entry(S::RUNNING, T1);
        assert_eq!(transitions(Some(&running), &entry(S::RUNNING, T1)), []);
        assert_eq!(
            transitions(Some(&running), &entry(S::EXITED, T1)),
            [Stopped]
        );
        assert_eq!(
            transitions(Some(&running), &entry(S::RUNNING, T2)),
            [Stopped, Started],
            "restarted between two looks"
        );
        assert_eq!(
            transitions(Some(&created), &entry(S::EXITED, NEVER)),
            [Stopped],
            "failed to start"
        );
    }

    #[test]
    fn lists_are_rebuilt_only_when_the_view_changed() {
        use ContainerStateStatusEnum as S;
        let view = View::new(
            Arc::new(crate::docker::fake::FakeDocker::new()),
            Arc::new(LogWriters::new(Arc::new(
                crate::docker::fake::FakeDocker::new(),
            ))),
        );
        let cache = ListCache::<u32>::default();
        let builds = std::cell::Cell::new(0);
        let build = || {
            builds.set(builds.get() + 1);
            Arc::new(vec![builds.get()])
        };
        let first = cache.get(view.generation(), build);
        let again = cache.get(view.generation(), build);
        assert!(Arc::ptr_eq(&first, &again));
        let seq = view.next_seq();
        view.record(seq, inspected("c1", S::RUNNING, T1));
        let after = cache.get(view.generation(), build);
        assert_eq!(*after, [2]);
    }

    #[test]
    fn stale_answers_never_overwrite_newer_ones_or_revive_removed_objects() {
        use ContainerStateStatusEnum as S;
        let view = View::new(
            Arc::new(crate::docker::fake::FakeDocker::new()),
            Arc::new(LogWriters::new(Arc::new(
                crate::docker::fake::FakeDocker::new(),
            ))),
        );
        let mut changes = view.subscribe();
        let old = view.next_seq();
        let newer = view.next_seq();
        view.record(newer, inspected("c1", S::RUNNING, T1));
        view.record(old, inspected("c1", S::CREATED, NEVER));
        let Lookup::Found(entry) = view.lookup("c") else {
            panic!("prefix lookup failed");
        };
        assert_eq!(entry.phase(), Phase::Running);

        let removal = view.next_seq();
        view.remove_seen(removal, "c1");
        view.record(newer, inspected("c1", S::RUNNING, T1));
        assert!(matches!(view.lookup("c1"), Lookup::Missing));

        let seen: Vec<ChangeType> = std::iter::from_fn(|| changes.try_recv().ok())
            .map(|c| c.change)
            .collect();
        assert_eq!(
            seen,
            [
                ChangeType::Created,
                ChangeType::Started,
                ChangeType::Deleted
            ]
        );
    }

    #[tokio::test]
    async fn each_resync_counts_in_the_registered_metric() {
        let docker = Arc::new(crate::docker::fake::FakeDocker::new());
        let view = View::new(docker.clone(), Arc::new(LogWriters::new(docker)));
        let mut registry = prometheus_client::registry::Registry::with_prefix("dockershim");
        view.register_metrics(&mut registry);
        view.resync().await.unwrap();
        view.resync().await.unwrap();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("dockershim_view_resyncs_total 2"), "{text}");
    }
}
