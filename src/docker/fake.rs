//! A recording fake of [`DockerApi`] for unit tests of the orchestration:
//! containers, images and events held in memory, every call recorded with
//! its arguments, and any kind of call made to fail on demand.
//!
//! It follows the daemon's rules the shim relies on: 404 for an unknown id
//! or name, 409 when a name is taken, stopping a stopped container and
//! starting a running one succeed, removal is forced (`force=1`). Ids are
//! 64 hex digits from a counter, so tests are deterministic. It needs no
//! socket, process or root, and answers at once.
//!
//! Exec, attach and log streams are scripted by the test ([`scripts`]):
//! [`FakeDocker::script_exec`] and [`FakeDocker::script_attach`] give the
//! container's side of the next exec or attach, and [`FakeDocker::log`]
//! writes a container's output to its log, which followers see until the
//! container stops.

mod scripts;

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bollard::models::{
    ContainerConfig, ContainerCreateBody, ContainerInspectResponse, ContainerState,
    ContainerStateStatusEnum, ContainerSummary, ContainerUpdateBody, EventActor, EventMessage,
    EventMessageTypeEnum, ExecInspectResponse, ImageInspect, ImageSummary, SystemInfo,
    SystemInfoCgroupDriverEnum, SystemVersion,
};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::broadcast;

use super::{
    DockerApi, DockerError, DockerResult, ExecSpec, Filters, LogMessage, LogStream, ProcessStreams,
    RegistryAuth, TermSize,
};
use scripts::{ContainerLog, PendingProcess, SharedStatus};

pub use scripts::{ProcessScript, scripted_process};

/// Docker's zero time, which the shim reads as "not set".
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A kind of call, to make it fail with [`FakeDocker::fail_next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `create_container`.
    Create,
    /// `start_container`.
    Start,
    /// `stop_container`.
    Stop,
    /// `remove_container`.
    Remove,
    /// `inspect_container`.
    Inspect,
    /// `pull_image`.
    Pull,
    /// `remove_image`.
    RemoveImage,
    /// `container_logs`.
    Logs,
}

/// One call the shim made, with its arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// `ping`.
    Ping,
    /// `version`.
    Version,
    /// `info`.
    Info,
    /// `events`.
    Events,
    /// `list_containers` with its filters.
    List(Filters),
    /// `inspect_container` of an id, prefix or name.
    Inspect(String),
    /// `create_container` with the name and body.
    Create(String, Box<ContainerCreateBody>),
    /// `start_container`.
    Start(String),
    /// `stop_container` with the grace period.
    Stop(String, Duration),
    /// `remove_container`.
    Remove(String),
    /// `update_container`.
    Update(String),
    /// `create_exec` in a container.
    CreateExec(String, ExecSpec),
    /// `start_exec`, `attach`, `container_logs` and the resizes, by name,
    /// with the exec or container they were for.
    Stream(&'static str, String),
    /// `inspect_exec`.
    InspectExec(String),
    /// `stat_path` (container, path).
    StatPath(String, String),
    /// `list_images`.
    ListImages,
    /// `inspect_image`.
    InspectImage(String),
    /// `pull_image` of a repository and tag, with or without credentials.
    Pull(String, String, bool),
    /// `remove_image`.
    RemoveImage(String),
    /// `import_image` as `repository:tag`.
    Import(String),
}

impl Call {
    /// The id, name or image the call was about, if any.
    pub fn target(&self) -> Option<&str> {
        match self {
            Call::Inspect(t)
            | Call::Start(t)
            | Call::Stop(t, _)
            | Call::Remove(t)
            | Call::Update(t)
            | Call::InspectImage(t)
            | Call::RemoveImage(t)
            | Call::Import(t) => Some(t),
            Call::Create(name, _) => Some(name),
            _ => None,
        }
    }
}

#[derive(Default)]
struct State {
    /// Containers by id, in creation order.
    containers: Vec<ContainerInspectResponse>,
    /// Images: id and the `repository:tag` names pointing at it.
    images: Vec<ImageInspect>,
    calls: Vec<Call>,
    failures: Vec<(Op, DockerError)>,
    next_id: u64,
    /// Execs by id, created or started.
    execs: HashMap<String, SharedStatus>,
    /// Scripted processes for the next `start_exec` calls, in order.
    pending_execs: VecDeque<PendingProcess>,
    /// Scripted processes for the next `attach` to a container, by id.
    pending_attaches: HashMap<String, PendingProcess>,
    /// Containers' logs, by id.
    logs: HashMap<String, ContainerLog>,
}

/// The in-memory Docker.
pub struct FakeDocker {
    state: Mutex<State>,
    events: broadcast::Sender<EventMessage>,
}

impl Default for FakeDocker {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            events: broadcast::channel(256).0,
        }
    }
}

impl FakeDocker {
    /// An empty Docker.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the next call of kind `op` fail with `err`.
    pub fn fail_next(&self, op: Op, err: DockerError) {
        self.lock().failures.push((op, err));
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The calls that change something (create, start, stop, remove, pull,
    /// image removal), in order: what a test of the orchestration checks.
    pub fn changes(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| {
                matches!(
                    c,
                    Call::Create(..)
                        | Call::Start(_)
                        | Call::Stop(..)
                        | Call::Remove(_)
                        | Call::Pull(..)
                        | Call::RemoveImage(_)
                        | Call::Import(_)
                )
            })
            .collect()
    }

    /// Forgets the calls recorded so far.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// The container Docker holds under an id, prefix or name.
    pub fn container(&self, id_or_name: &str) -> Option<ContainerInspectResponse> {
        let state = self.lock();
        find(&state.containers, id_or_name).map(|i| state.containers[i].clone())
    }

    /// How many containers Docker holds.
    pub fn container_count(&self) -> usize {
        self.lock().containers.len()
    }

    /// Adds an image tagged `name`; returns its id.
    pub fn add_image(&self, name: &str) -> String {
        let mut state = self.lock();
        add_image(&mut state, name)
    }

    /// Gives the image `existing` (an id or name) one more name, as
    /// `docker tag` does.
    pub fn tag_image(&self, existing: &str, name: &str) {
        let mut state = self.lock();
        if let Some(i) = find_image(&state.images, existing) {
            state.images[i]
                .repo_tags
                .get_or_insert_with(Vec::new)
                .push(name.to_string());
        }
    }

    /// Whether Docker holds an image by that id or name.
    pub fn has_image(&self, id_or_name: &str) -> bool {
        find_image(&self.lock().images, id_or_name).is_some()
    }

    /// Creates and starts a container `name`, with a TTY or not, as
    /// `docker run -d` would; its id. For tests of streams, which need a
    /// running container but nothing the shim puts in one.
    pub async fn run_container(&self, name: &str, tty: bool) -> String {
        let body = ContainerCreateBody {
            tty: Some(tty),
            ..Default::default()
        };
        let id = self.create_container(name, body).await.expect("create");
        self.start_container(&id).await.expect("start");
        id
    }

    /// Scripts the process of the next exec started: with a TTY or not, as
    /// the shim will start it. Without a script, starting an exec fails.
    pub fn script_exec(&self, tty: bool) -> ProcessScript {
        let (pending, script) = scripts::pair(tty);
        self.lock().pending_execs.push_back(pending);
        script
    }

    /// Scripts what the next attach to a container (which must exist) sees
    /// and reads. Without a script, attaching fails.
    pub fn script_attach(&self, container: &str) -> ProcessScript {
        let mut state = self.lock();
        let i = find(&state.containers, container).expect("attach script for a known container");
        let id = state.containers[i].id.clone().unwrap_or_default();
        let (pending, script) = scripts::pair(has_tty(&state.containers[i]));
        state.pending_attaches.insert(id, pending);
        script
    }

    /// The container prints `message`: Docker logs it, and whoever follows
    /// the container's log receives it.
    pub fn log(&self, container: &str, message: LogMessage) {
        let mut state = self.lock();
        let i = find(&state.containers, container).expect("log of a known container");
        let (id, tty) = (
            state.containers[i].id.clone().unwrap_or_default(),
            has_tty(&state.containers[i]),
        );
        state.logs.entry(id).or_default().push(tty, message);
    }

    /// Breaks the connections of whoever follows the container's log.
    pub fn break_logs(&self, container: &str) {
        let mut state = self.lock();
        if let Some(i) = find(&state.containers, container) {
            let id = state.containers[i].id.clone().unwrap_or_default();
            if let Some(log) = state.logs.get_mut(&id) {
                log.break_followers();
            }
        }
    }

    /// Sends an event to every open event stream.
    pub fn emit(&self, event: EventMessage) {
        // Nobody listening is fine.
        let _ = self.events.send(event);
    }

    /// Records a call, then fails it if a test asked for that.
    fn call(&self, call: Call, op: Option<Op>) -> DockerResult<MutexGuard<'_, State>> {
        let mut state = self.lock();
        state.calls.push(call);
        if let Some(op) = op
            && let Some(i) = state.failures.iter().position(|(o, _)| *o == op)
        {
            return Err(state.failures.remove(i).1);
        }
        Ok(state)
    }

    /// [`Self::call`] for calls that need no state.
    fn record(&self, call: Call, op: Option<Op>) -> DockerResult<()> {
        self.call(call, op).map(drop)
    }

    fn container_event(&self, action: &str, inspected: &ContainerInspectResponse) {
        self.emit(EventMessage {
            typ: Some(EventMessageTypeEnum::CONTAINER),
            action: Some(action.to_string()),
            actor: Some(EventActor {
                id: inspected.id.clone(),
                attributes: inspected.config.as_ref().and_then(|c| c.labels.clone()),
            }),
            ..Default::default()
        });
    }
}

fn has_tty(container: &ContainerInspectResponse) -> bool {
    container
        .config
        .as_ref()
        .and_then(|c| c.tty)
        .unwrap_or(false)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// An id, unique prefix or name (with or without Docker's leading `/`).
fn find(containers: &[ContainerInspectResponse], key: &str) -> Option<usize> {
    let id = |c: &ContainerInspectResponse| c.id.clone().unwrap_or_default();
    if let Some(i) = containers.iter().position(|c| id(c) == key) {
        return Some(i);
    }
    let name = format!("/{}", key.trim_start_matches('/'));
    if let Some(i) = containers
        .iter()
        .position(|c| c.name.as_deref() == Some(name.as_str()))
    {
        return Some(i);
    }
    let matches: Vec<usize> = (0..containers.len())
        .filter(|&i| !key.is_empty() && id(&containers[i]).starts_with(key))
        .collect();
    (matches.len() == 1).then(|| matches[0])
}

/// Docker's short and long forms of a name as one (`busybox`,
/// `busybox:latest` and `docker.io/library/busybox:latest` alike), as far as
/// the tests' names need; the shim's own normalisation is tested in
/// `image::reference`, and the fake must not depend on the code it tests.
fn normalise(name: &str) -> String {
    let short = name.strip_prefix("docker.io/").unwrap_or(name);
    let short = short.strip_prefix("library/").unwrap_or(short);
    let last = short.rsplit('/').next().unwrap_or(short);
    if last.contains(':') || last.contains('@') {
        short.to_string()
    } else {
        format!("{short}:latest")
    }
}

fn find_image(images: &[ImageInspect], key: &str) -> Option<usize> {
    let wanted = normalise(key);
    images.iter().position(|image| {
        let id = image.id.as_deref().unwrap_or_default();
        id == key
            || (key.len() >= 4 && id.trim_start_matches("sha256:").starts_with(key))
            || image
                .repo_tags
                .iter()
                .flatten()
                .any(|tag| normalise(tag) == wanted)
    })
}

fn add_image(state: &mut State, name: &str) -> String {
    if let Some(i) = find_image(&state.images, name) {
        return state.images[i].id.clone().unwrap_or_default();
    }
    state.next_id += 1;
    let id = format!("sha256:{:064x}", state.next_id);
    state.images.push(ImageInspect {
        id: Some(id.clone()),
        repo_tags: Some(vec![name.to_string()]),
        repo_digests: Some(vec![]),
        size: Some(1024),
        ..Default::default()
    });
    id
}

fn not_found(what: &str, key: &str) -> DockerError {
    DockerError::NotFound(format!("no such {what}: {key}"))
}

fn matches_filters(labels: &HashMap<String, String>, filters: &Filters) -> bool {
    filters
        .get("label")
        .into_iter()
        .flatten()
        .all(|wanted| match wanted.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|l| l == v),
            None => labels.contains_key(wanted),
        })
}

#[async_trait]
impl DockerApi for FakeDocker {
    async fn ping(&self) -> DockerResult<()> {
        self.record(Call::Ping, None).map(drop)
    }

    async fn version(&self) -> DockerResult<SystemVersion> {
        self.record(Call::Version, None)?;
        Ok(SystemVersion {
            version: Some("20.10.24".into()),
            api_version: Some("1.41".into()),
            ..Default::default()
        })
    }

    async fn info(&self) -> DockerResult<SystemInfo> {
        self.record(Call::Info, None)?;
        Ok(SystemInfo {
            cgroup_driver: Some(SystemInfoCgroupDriverEnum::CGROUPFS),
            default_runtime: Some("runc".into()),
            docker_root_dir: Some("/var/lib/docker".into()),
            ..Default::default()
        })
    }

    fn events(
        &self,
        _since: Option<i64>,
        _actions: &[&str],
    ) -> BoxStream<'static, DockerResult<EventMessage>> {
        self.lock().calls.push(Call::Events);
        let events = self.events.subscribe();
        futures_util::stream::unfold(events, |mut events| async move {
            loop {
                match events.recv().await {
                    Ok(event) => return Some((Ok(event), events)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed()
    }

    async fn list_containers(&self, filters: Filters) -> DockerResult<Vec<ContainerSummary>> {
        let state = self.call(Call::List(filters.clone()), None)?;
        Ok(state
            .containers
            .iter()
            .filter(|c| {
                let labels = c.config.as_ref().and_then(|c| c.labels.clone());
                matches_filters(&labels.unwrap_or_default(), &filters)
            })
            // Docker's `ancestor`: made from that image (by any of its names).
            .filter(|c| {
                let image = find_image(&state.images, c.image.as_deref().unwrap_or_default());
                filters
                    .get("ancestor")
                    .into_iter()
                    .flatten()
                    .all(|wanted| image.is_some() && image == find_image(&state.images, wanted))
            })
            .map(|c| ContainerSummary {
                id: c.id.clone(),
                names: c.name.clone().map(|n| vec![n]),
                labels: c.config.as_ref().and_then(|c| c.labels.clone()),
                ..Default::default()
            })
            .collect())
    }

    async fn inspect_container(&self, id: &str) -> DockerResult<ContainerInspectResponse> {
        let state = self.call(Call::Inspect(id.into()), Some(Op::Inspect))?;
        find(&state.containers, id)
            .map(|i| state.containers[i].clone())
            .ok_or_else(|| not_found("container", id))
    }

    async fn create_container(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> DockerResult<String> {
        let mut state = self.call(
            Call::Create(name.into(), Box::new(body.clone())),
            Some(Op::Create),
        )?;
        let docker_name = format!("/{name}");
        if state
            .containers
            .iter()
            .any(|c| c.name.as_deref() == Some(docker_name.as_str()))
        {
            return Err(DockerError::Conflict(format!(
                "the container name {docker_name:?} is already in use"
            )));
        }
        state.next_id += 1;
        let id = format!("{:064x}", state.next_id);
        let inspected = ContainerInspectResponse {
            id: Some(id.clone()),
            name: Some(docker_name),
            created: Some(now()),
            image: body.image.clone(),
            config: Some(ContainerConfig {
                image: body.image,
                labels: body.labels,
                env: body.env,
                cmd: body.cmd,
                entrypoint: body.entrypoint,
                tty: body.tty,
                ..Default::default()
            }),
            host_config: body.host_config,
            state: Some(ContainerState {
                status: Some(ContainerStateStatusEnum::CREATED),
                running: Some(false),
                pid: Some(0),
                exit_code: Some(0),
                started_at: Some(ZERO_TIME.into()),
                finished_at: Some(ZERO_TIME.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        state.containers.push(inspected.clone());
        drop(state);
        self.container_event("create", &inspected);
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> DockerResult<()> {
        let mut state = self.call(Call::Start(id.into()), Some(Op::Start))?;
        let i = find(&state.containers, id).ok_or_else(|| not_found("container", id))?;
        let pid = 1000 + i64::try_from(state.next_id).unwrap_or(0);
        let container = &mut state.containers[i];
        let s = container.state.get_or_insert_with(Default::default);
        if s.running == Some(true) {
            return Ok(());
        }
        s.status = Some(ContainerStateStatusEnum::RUNNING);
        s.running = Some(true);
        s.pid = Some(pid);
        s.started_at = Some(now());
        let inspected = container.clone();
        drop(state);
        self.container_event("start", &inspected);
        Ok(())
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> DockerResult<()> {
        let mut state = self.call(Call::Stop(id.into(), grace), Some(Op::Stop))?;
        let i = find(&state.containers, id).ok_or_else(|| not_found("container", id))?;
        let container = &mut state.containers[i];
        let s = container.state.get_or_insert_with(Default::default);
        if s.running != Some(true) {
            return Ok(());
        }
        s.status = Some(ContainerStateStatusEnum::EXITED);
        s.running = Some(false);
        s.pid = Some(0);
        s.exit_code = Some(0);
        s.finished_at = Some(now());
        let inspected = container.clone();
        if let Some(log) = state
            .logs
            .get_mut(inspected.id.as_deref().unwrap_or_default())
        {
            log.end();
        }
        drop(state);
        self.container_event("die", &inspected);
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> DockerResult<()> {
        let mut state = self.call(Call::Remove(id.into()), Some(Op::Remove))?;
        let i = find(&state.containers, id).ok_or_else(|| not_found("container", id))?;
        let inspected = state.containers.remove(i);
        if let Some(mut log) = state
            .logs
            .remove(inspected.id.as_deref().unwrap_or_default())
        {
            log.end();
        }
        drop(state);
        self.container_event("destroy", &inspected);
        Ok(())
    }

    async fn update_container(&self, id: &str, _update: ContainerUpdateBody) -> DockerResult<()> {
        let state = self.call(Call::Update(id.into()), None)?;
        find(&state.containers, id)
            .map(drop)
            .ok_or_else(|| not_found("container", id))
    }

    async fn create_exec(&self, container_id: &str, spec: ExecSpec) -> DockerResult<String> {
        let mut state = self.call(Call::CreateExec(container_id.into(), spec), None)?;
        find(&state.containers, container_id)
            .ok_or_else(|| not_found("container", container_id))?;
        state.next_id += 1;
        let id = format!("exec{:060x}", state.next_id);
        state.execs.insert(id.clone(), SharedStatus::default());
        Ok(id)
    }

    async fn start_exec(
        &self,
        exec_id: &str,
        tty: bool,
        _console: Option<TermSize>,
    ) -> DockerResult<ProcessStreams> {
        let mut state = self.call(Call::Stream("start_exec", exec_id.into()), None)?;
        if !state.execs.contains_key(exec_id) {
            return Err(not_found("exec instance", exec_id));
        }
        let Some(pending) = state.pending_execs.pop_front() else {
            return Err(DockerError::Transport(
                "no exec scripted (FakeDocker::script_exec)".into(),
            ));
        };
        assert_eq!(pending.tty, tty, "the exec script's TTY setting");
        state.execs.insert(exec_id.into(), pending.status.clone());
        Ok(pending.start())
    }

    async fn resize_exec(&self, exec_id: &str, _size: TermSize) -> DockerResult<()> {
        self.record(Call::Stream("resize_exec", exec_id.into()), None)
            .map(drop)
    }

    async fn attach(
        &self,
        container_id: &str,
        _stdin: bool,
        _stdout: bool,
        _stderr: bool,
    ) -> DockerResult<ProcessStreams> {
        let mut state = self.call(Call::Stream("attach", container_id.into()), None)?;
        let i = find(&state.containers, container_id)
            .ok_or_else(|| not_found("container", container_id))?;
        let id = state.containers[i].id.clone().unwrap_or_default();
        let pending = state.pending_attaches.remove(&id).ok_or_else(|| {
            DockerError::Transport("no attach scripted (FakeDocker::script_attach)".into())
        })?;
        Ok(pending.start())
    }

    async fn resize_container(&self, container_id: &str, _size: TermSize) -> DockerResult<()> {
        self.record(Call::Stream("resize_container", container_id.into()), None)
            .map(drop)
    }

    async fn container_logs(
        &self,
        container_id: &str,
        tty: bool,
        follow: bool,
        since: Option<(i64, u32)>,
    ) -> DockerResult<LogStream> {
        let mut state = self.call(
            Call::Stream("container_logs", container_id.into()),
            Some(Op::Logs),
        )?;
        let i = find(&state.containers, container_id)
            .ok_or_else(|| not_found("container", container_id))?;
        let container = &state.containers[i];
        let (id, logged_with_tty) = (container.id.clone().unwrap_or_default(), has_tty(container));
        // Docker follows a stopped container's log only to its end.
        let running = container.state.as_ref().and_then(|s| s.running) == Some(true);
        let since = since.and_then(|(secs, nanos)| chrono::DateTime::from_timestamp(secs, nanos));
        Ok(state
            .logs
            .entry(id)
            .or_default()
            .stream(logged_with_tty, tty, follow && running, since))
    }

    async fn inspect_exec(&self, exec_id: &str) -> DockerResult<ExecInspectResponse> {
        let state = self.call(Call::InspectExec(exec_id.into()), None)?;
        let status = state
            .execs
            .get(exec_id)
            .ok_or_else(|| not_found("exec instance", exec_id))?;
        let status = scripts::status(status);
        Ok(ExecInspectResponse {
            id: Some(exec_id.into()),
            running: Some(status.running),
            exit_code: status.exit_code,
            // No host process: a kill by PID must find nothing to kill.
            pid: Some(0),
            ..Default::default()
        })
    }

    async fn stat_path(&self, container_id: &str, path: &str) -> DockerResult<()> {
        let state = self.call(Call::StatPath(container_id.into(), path.into()), None)?;
        // The fake keeps no files: every container holds only its root.
        find(&state.containers, container_id)
            .ok_or_else(|| not_found("container", container_id))?;
        if path.trim_end_matches('/').is_empty() {
            Ok(())
        } else {
            Err(not_found("path", path))
        }
    }

    async fn list_images(&self) -> DockerResult<Vec<ImageSummary>> {
        let state = self.call(Call::ListImages, None)?;
        Ok(state
            .images
            .iter()
            .map(|image| ImageSummary {
                id: image.id.clone().unwrap_or_default(),
                repo_tags: image.repo_tags.clone().unwrap_or_default(),
                repo_digests: image.repo_digests.clone().unwrap_or_default(),
                size: image.size.unwrap_or_default(),
                ..Default::default()
            })
            .collect())
    }

    async fn inspect_image(&self, name: &str) -> DockerResult<ImageInspect> {
        let state = self.call(Call::InspectImage(name.into()), None)?;
        find_image(&state.images, name)
            .map(|i| state.images[i].clone())
            .ok_or_else(|| not_found("image", name))
    }

    async fn pull_image(
        &self,
        repository: &str,
        tag: &str,
        auth: Option<RegistryAuth>,
    ) -> DockerResult<()> {
        let mut state = self.call(
            Call::Pull(repository.into(), tag.into(), auth.is_some()),
            Some(Op::Pull),
        )?;
        let separator = if tag.contains(':') { "@" } else { ":" };
        add_image(&mut state, &format!("{repository}{separator}{tag}"));
        Ok(())
    }

    async fn remove_image(&self, name: &str) -> DockerResult<()> {
        let mut state = self.call(Call::RemoveImage(name.into()), Some(Op::RemoveImage))?;
        let i = find_image(&state.images, name).ok_or_else(|| not_found("image", name))?;
        let wanted = normalise(name);
        let image = &mut state.images[i];
        let tags = image.repo_tags.get_or_insert_with(Vec::new);
        let before = tags.len();
        tags.retain(|t| normalise(t) != wanted);
        // By a tag: only that tag goes, unless it was the last; by id: all.
        if tags.len() == before || tags.is_empty() {
            let user = state.containers.iter().find(|c| {
                find_image(&state.images, c.image.as_deref().unwrap_or_default()) == Some(i)
            });
            if let Some(user) = user {
                let user = user.id.clone().unwrap_or_default();
                return Err(DockerError::Conflict(format!(
                    "unable to delete {name} (must be forced) - image is being used by container {user}"
                )));
            }
            state.images.remove(i);
        }
        Ok(())
    }

    async fn import_image(
        &self,
        _rootfs_tar: Vec<u8>,
        repository: &str,
        tag: &str,
        _changes: Vec<String>,
    ) -> DockerResult<()> {
        let name = format!("{repository}:{tag}");
        let mut state = self.call(Call::Import(name.clone()), None)?;
        add_image(&mut state, &name);
        Ok(())
    }
}
