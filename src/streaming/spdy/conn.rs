//! A SPDY/3.1 connection over any tokio byte stream, in server or client role,
//! behaving the way moby/spdystream peers (kubelet, client-go, crictl) expect.
//!
//! [`Connection::server`] / [`Connection::client`] spawn a driver: a reader
//! (in the driver task) that dispatches frames to streams, and a writer task
//! that owns the outbound zlib context and serialises every frame. Control
//! frames jump ahead of queued DATA; DATA, FIN and user resets stay in the
//! order they were issued.
//!
//! There is no flow control, because spdystream does none: WINDOW_UPDATE and
//! SETTINGS are accepted and ignored. Memory stays bounded anyway: every
//! DATA frame is charged in full against its stream's receive buffer
//! ([`Config::stream_recv_buffer`], which also caps the frame size) and the
//! connection's ([`Config::connection_recv_buffer`]), and while either is full
//! the reader stops reading the socket, which pushes back on the peer through
//! TCP. The decoded headers of the streams the peer opened are charged
//! against [`Config::header_budget`]; a stream beyond it is refused. The price is head-of-line
//! blocking: a stream nobody reads stalls the whole connection, so drop (or
//! reset) streams you no longer read.

use std::collections::HashMap;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::{CancellationToken, PollSender};

use super::frame::{
    Frame, FrameLimits, GoAwayStatus, HeaderBlock, MAX_FRAME_LEN, MAX_STREAM_ID, RstStatus,
    SpdyCodec, SpdyError,
};

mod driver;
use driver::drive;

/// Connection tuning. The defaults follow kubelet's streaming server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Streams the peer may have open at once; more are refused with
    /// RST_STREAM(REFUSED_STREAM). Also caps streams we open ourselves.
    pub max_concurrent_streams: usize,
    /// Close the connection after this long without a frame in either direction.
    pub idle_timeout: Option<Duration>,
    /// How long [`Connection::open`] waits for SYN_REPLY (and [`Connection::ping`] for the echo).
    pub open_timeout: Duration,
    /// How long a graceful close may spend flushing queued frames and GOAWAY.
    pub close_timeout: Duration,
    /// Bytes buffered per stream before the reader stops reading the socket;
    /// also the largest DATA frame accepted, so every frame can be charged
    /// in full.
    pub stream_recv_buffer: usize,
    /// Bytes buffered over all streams of the connection before the reader
    /// stops reading the socket.
    pub connection_recv_buffer: usize,
    /// Memory the decoded headers of the peer's open streams may take
    /// ([`HeaderBlock::cost`]); a SYN_STREAM beyond it is refused.
    pub header_budget: usize,
    /// Largest DATA frame we send; larger writes are split.
    pub max_send_frame: usize,
    /// Frames queued for the writer (per queue: control and data) before
    /// senders wait. With [`Config::max_send_frame`] this bounds the bytes a
    /// connection holds on their way out; a deep queue of large frames made
    /// malloc trim and re-fault its heap on every burst (docs/performance.md,
    /// "stream").
    pub write_queue: usize,
    /// Decoder limits for inbound frames.
    pub limits: FrameLimits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 1024,
            idle_timeout: Some(Duration::from_secs(4 * 60 * 60)),
            open_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(5),
            stream_recv_buffer: 1024 * 1024,
            connection_recv_buffer: 16 * 1024 * 1024,
            header_budget: 1024 * 1024,
            max_send_frame: 64 * 1024,
            write_queue: 8,
            limits: FrameLimits::default(),
        }
    }
}

impl Config {
    fn sanitized(mut self) -> Self {
        let permit_cap = Semaphore::MAX_PERMITS.min(u32::MAX as usize);
        self.stream_recv_buffer = self.stream_recv_buffer.clamp(1, permit_cap);
        self.connection_recv_buffer = self
            .connection_recv_buffer
            .clamp(self.stream_recv_buffer, permit_cap);
        self.header_budget = self.header_budget.min(permit_cap);
        // A frame larger than the stream's buffer could never be charged in full.
        self.limits.max_data_frame_len =
            self.limits.max_data_frame_len.min(self.stream_recv_buffer);
        self.max_send_frame = self.max_send_frame.clamp(1, MAX_FRAME_LEN);
        self.write_queue = self.write_queue.max(1);
        self
    }
}

/// Which end of the connection we are; decides stream and ping id parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Opens odd stream ids (the side that sent the HTTP upgrade request).
    Client,
    /// Opens even stream ids.
    Server,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// [`Connection::close`] was called or every handle was dropped.
    Local,
    /// The peer sent GOAWAY and then every stream finished or it disconnected.
    GoAway(GoAwayStatus),
    /// The peer closed the transport without GOAWAY.
    PeerClosed,
    /// No frame in either direction for [`Config::idle_timeout`].
    IdleTimeout,
    /// The peer broke the protocol; we answered with GOAWAY(PROTOCOL_ERROR).
    ProtocolError(String),
    /// The transport failed.
    Io(String),
}

/// What a buffered DATA frame holds of the stream's and the connection's
/// receive buffers, given back when the owner takes the frame.
struct Charge {
    _stream: OwnedSemaphorePermit,
    _connection: OwnedSemaphorePermit,
}

enum Event {
    Data(Bytes, Charge),
    Fin,
    Reset(RstStatus),
    Closed,
}

struct Entry {
    events: mpsc::UnboundedSender<Event>,
    budget: Arc<Semaphore>,
    local: bool,
    local_closed: bool,
    remote_closed: bool,
    reply: Option<oneshot::Sender<Result<HeaderBlock, SpdyError>>>,
}

struct Pending {
    id: u32,
    headers: HeaderBlock,
    /// The headers' share of [`Config::header_budget`].
    header_charge: OwnedSemaphorePermit,
    events: mpsc::UnboundedReceiver<Event>,
    budget: Arc<Semaphore>,
}

struct State {
    streams: HashMap<u32, Entry>,
    next_local_id: u32,
    last_remote_id: u32,
    next_ping_id: u32,
    pings: HashMap<u32, oneshot::Sender<()>>,
    remote_goaway: Option<GoAwayStatus>,
    local_goaway: bool,
    closed: bool,
    accept_tx: Option<mpsc::Sender<Pending>>,
}

enum WriteCmd {
    Frame(Frame),
    /// Write the GOAWAY after everything queued before it, then shut the transport down.
    Shutdown(Frame),
}

struct Shared {
    role: Role,
    config: Config,
    state: Mutex<State>,
    /// [`Config::connection_recv_buffer`], in bytes.
    recv_budget: Arc<Semaphore>,
    /// [`Config::header_budget`], in bytes.
    header_budget: Arc<Semaphore>,
    ctrl_tx: mpsc::Sender<Frame>,
    data_tx: mpsc::Sender<WriteCmd>,
    // Serialises id allocation with queueing SYN_STREAM so ids hit the wire in order.
    open_lock: tokio::sync::Mutex<()>,
    activity: Mutex<Instant>,
    close_req: CancellationToken,
    drained: CancellationToken,
    closed_tx: watch::Sender<Option<CloseReason>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn touch(&self) {
        *self.activity.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn last_activity(&self) -> Instant {
        *self.activity.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every removal goes through here so a GOAWAY'd connection notices when it drains.
    fn remove(&self, st: &mut State, id: u32) -> Option<Entry> {
        let entry = st.streams.remove(&id);
        if entry.is_some() && st.remote_goaway.is_some() && st.streams.is_empty() {
            self.drained.cancel();
        }
        entry
    }

    fn new_entry(&self, local: bool) -> (Entry, mpsc::UnboundedReceiver<Event>, Arc<Semaphore>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let budget = Arc::new(Semaphore::new(self.config.stream_recv_buffer));
        let entry = Entry {
            events: tx,
            budget: budget.clone(),
            local,
            local_closed: false,
            remote_closed: false,
            reply: None,
        };
        (entry, rx, budget)
    }

    fn is_peer_id(&self, id: u32) -> bool {
        match self.role {
            Role::Server => id % 2 == 1,
            Role::Client => id.is_multiple_of(2),
        }
    }
}

fn abort_entry(entry: Entry, event: Event, reply_err: impl FnOnce() -> SpdyError) {
    let _ = entry.events.send(event);
    entry.budget.close();
    if let Some(reply) = entry.reply {
        let _ = reply.send(Err(reply_err()));
    }
}

struct Handle {
    shared: Arc<Shared>,
    accept_rx: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Last user handle (connection or stream) is gone: nobody can use the
        // connection any more, so close it instead of leaking the driver.
        self.shared.close_req.cancel();
    }
}

/// Handle to a running SPDY connection. Cheap to clone; the connection closes
/// when [`close`](Self::close) is called or the last handle and stream are dropped.
#[derive(Clone)]
pub struct Connection {
    handle: Arc<Handle>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.handle.shared.role)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Connection {
    /// Serves SPDY on `io` (the upgraded HTTP connection): accepts odd streams, opens even ones.
    ///
    /// Spawns the driver, so it must be called inside a tokio runtime.
    pub fn server<T>(io: T, config: Config) -> Self
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        Self::start(io, config, Role::Server)
    }

    /// Speaks SPDY as the client on `io`: opens odd streams. Needs a tokio runtime, like `server`.
    pub fn client<T>(io: T, config: Config) -> Self
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        Self::start(io, config, Role::Client)
    }

    fn start<T>(io: T, config: Config, role: Role) -> Self
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let config = config.sanitized();
        let (ctrl_tx, ctrl_rx) = mpsc::channel(config.write_queue);
        let (data_tx, data_rx) = mpsc::channel(config.write_queue);
        let (accept_tx, accept_rx) = mpsc::channel(config.max_concurrent_streams.max(1));
        let first_id = match role {
            Role::Client => 1,
            Role::Server => 2,
        };
        let state = State {
            streams: HashMap::new(),
            next_local_id: first_id,
            last_remote_id: 0,
            next_ping_id: first_id,
            pings: HashMap::new(),
            remote_goaway: None,
            local_goaway: false,
            closed: false,
            accept_tx: Some(accept_tx),
        };
        let shared = Arc::new(Shared {
            role,
            recv_budget: Arc::new(Semaphore::new(config.connection_recv_buffer)),
            header_budget: Arc::new(Semaphore::new(config.header_budget)),
            config,
            state: Mutex::new(state),
            ctrl_tx,
            data_tx,
            open_lock: tokio::sync::Mutex::new(()),
            activity: Mutex::new(Instant::now()),
            close_req: CancellationToken::new(),
            drained: CancellationToken::new(),
            closed_tx: watch::channel(None).0,
        });
        let (read, write) = tokio::io::split(io);
        tokio::spawn(drive(shared.clone(), read, write, ctrl_rx, data_rx));
        Connection {
            handle: Arc::new(Handle {
                shared,
                accept_rx: tokio::sync::Mutex::new(accept_rx),
            }),
        }
    }

    pub fn role(&self) -> Role {
        self.handle.shared.role
    }

    /// Next stream the peer opened, already answered with SYN_REPLY.
    /// `None` once the connection is closed.
    pub async fn accept(&self) -> Option<Stream> {
        let pending = self.handle.accept_rx.lock().await.recv().await?;
        let mut stream = Stream::new(
            self.handle.clone(),
            pending.id,
            pending.headers,
            HeaderBlock::new(),
            pending.events,
            pending.budget,
        );
        stream.header_charge = Some(pending.header_charge);
        Some(stream)
    }

    /// Opens a stream with `headers` and waits for the peer's SYN_REPLY.
    pub async fn open(&self, headers: HeaderBlock) -> Result<Stream, SpdyError> {
        headers.validate_request()?;
        let shared = &self.handle.shared;
        let (reply_tx, reply_rx) = oneshot::channel();
        let (id, events, budget, mut guard) = {
            let _order = shared.open_lock.lock().await;
            let (id, events, budget) = {
                let mut st = shared.lock();
                if st.closed {
                    return Err(SpdyError::ConnectionClosed);
                }
                if st.local_goaway || st.remote_goaway.is_some() {
                    return Err(SpdyError::GoingAway);
                }
                let max = shared.config.max_concurrent_streams;
                if st.streams.values().filter(|e| e.local).count() >= max {
                    return Err(SpdyError::TooManyStreams(max));
                }
                let id = st.next_local_id;
                if id > MAX_STREAM_ID {
                    return Err(SpdyError::StreamIdsExhausted);
                }
                st.next_local_id = id + 2;
                let (mut entry, events, budget) = shared.new_entry(true);
                entry.reply = Some(reply_tx);
                st.streams.insert(id, entry);
                (id, events, budget)
            };
            let guard = OpenGuard {
                shared: shared.clone(),
                id,
                armed: true,
            };
            let syn = Frame::SynStream {
                stream_id: id,
                associated_stream_id: 0,
                priority: 0,
                slot: 0,
                fin: false,
                unidirectional: false,
                headers: headers.clone(),
            };
            shared
                .ctrl_tx
                .send(syn)
                .await
                .map_err(|_| SpdyError::ConnectionClosed)?;
            (id, events, budget, guard)
        };
        let reply = match tokio::time::timeout(shared.config.open_timeout, reply_rx).await {
            Ok(Ok(Ok(reply))) => reply,
            Ok(Ok(Err(e))) => return Err(e),
            Ok(Err(_)) => return Err(SpdyError::ConnectionClosed),
            Err(_) => return Err(SpdyError::Timeout("SYN_REPLY")),
        };
        guard.disarm();
        Ok(Stream::new(
            self.handle.clone(),
            id,
            headers,
            reply,
            events,
            budget,
        ))
    }

    /// Sends a PING and returns the round-trip time once the peer echoes it.
    pub async fn ping(&self) -> Result<Duration, SpdyError> {
        let shared = &self.handle.shared;
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut st = shared.lock();
            if st.closed {
                return Err(SpdyError::ConnectionClosed);
            }
            let id = st.next_ping_id;
            st.next_ping_id = id.wrapping_add(2);
            st.pings.insert(id, tx);
            id
        };
        let start = Instant::now();
        if shared.ctrl_tx.send(Frame::Ping { id }).await.is_err() {
            shared.lock().pings.remove(&id);
            return Err(SpdyError::ConnectionClosed);
        }
        match tokio::time::timeout(shared.config.open_timeout, rx).await {
            Ok(Ok(())) => Ok(start.elapsed()),
            Ok(Err(_)) => Err(SpdyError::ConnectionClosed),
            Err(_) => {
                shared.lock().pings.remove(&id);
                Err(SpdyError::Timeout("PING reply"))
            }
        }
    }

    /// Sends GOAWAY after the frames already queued, closes the transport and
    /// ends every stream; returns once the connection is down.
    pub async fn close(&self) -> CloseReason {
        self.handle.shared.close_req.cancel();
        self.closed().await
    }

    /// Waits until the connection has ended, for whatever reason.
    pub async fn closed(&self) -> CloseReason {
        let mut rx = self.handle.shared.closed_tx.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or(CloseReason::Local),
            Err(_) => CloseReason::Local,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.handle.shared.closed_tx.borrow().is_some()
    }
}

/// Undoes a half-finished `open` (cancelled or timed out): forget the stream
/// and tell the peer, in case it already saw the SYN_STREAM.
struct OpenGuard {
    shared: Arc<Shared>,
    id: u32,
    armed: bool,
}

impl OpenGuard {
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let removed = {
            let mut st = self.shared.lock();
            self.shared.remove(&mut st, self.id)
        };
        if let Some(entry) = removed {
            entry.budget.close();
            let _ = self.shared.ctrl_tx.try_send(Frame::RstStream {
                stream_id: self.id,
                status: RstStatus::Cancel,
            });
        }
    }
}

#[derive(Clone, Copy)]
enum Done {
    Fin,
    Reset(RstStatus),
    Closed,
}

/// One SPDY stream: a bidirectional byte channel with the headers it was opened with.
pub struct Stream {
    sender: StreamSender,
    headers: HeaderBlock,
    reply_headers: HeaderBlock,
    events: mpsc::UnboundedReceiver<Event>,
    budget: Arc<Semaphore>,
    done: Option<Done>,
    /// Accepted streams: their headers' share of [`Config::header_budget`].
    header_charge: Option<OwnedSemaphorePermit>,
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.id())
            .field("headers", &self.headers)
            .finish()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // Nobody will read this stream again: let the reader discard its data
        // instead of stalling the connection on a full buffer.
        self.budget.close();
    }
}

impl Stream {
    fn new(
        handle: Arc<Handle>,
        id: u32,
        headers: HeaderBlock,
        reply_headers: HeaderBlock,
        events: mpsc::UnboundedReceiver<Event>,
        budget: Arc<Semaphore>,
    ) -> Self {
        Stream {
            sender: StreamSender {
                id,
                guard: Arc::new(StreamGuard { id, handle }),
            },
            headers,
            reply_headers,
            events,
            budget,
            done: None,
            header_charge: None,
        }
    }

    pub fn id(&self) -> u32 {
        self.sender.id
    }

    /// Whether the connection still knows the stream: false once either
    /// side reset it, both sides finished it, or the connection ended.
    pub fn is_live(&self) -> bool {
        self.sender.shared().lock().streams.contains_key(&self.id())
    }

    /// Headers of the SYN_STREAM that created the stream.
    pub fn headers(&self) -> &HeaderBlock {
        &self.headers
    }

    /// Headers of the peer's SYN_REPLY (streams we opened; empty for accepted ones).
    pub fn reply_headers(&self) -> &HeaderBlock {
        &self.reply_headers
    }

    /// Next chunk from the peer. `Ok(None)` after the peer's FIN; an error
    /// after a reset or when the connection ends first.
    pub async fn recv(&mut self) -> Result<Option<Bytes>, SpdyError> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Poll form of [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, SpdyError>> {
        loop {
            if let Some(done) = self.done {
                let id = self.id();
                return Poll::Ready(match done {
                    Done::Fin => Ok(None),
                    Done::Reset(status) => Err(SpdyError::StreamReset { id, status }),
                    Done::Closed => Err(SpdyError::ConnectionClosed),
                });
            }
            match ready!(self.events.poll_recv(cx)) {
                // The charge is released here, making room for the reader.
                Some(Event::Data(data, _charge)) => {
                    if !data.is_empty() {
                        return Poll::Ready(Ok(Some(data)));
                    }
                }
                Some(Event::Fin) => self.done = Some(Done::Fin),
                Some(Event::Reset(status)) => self.done = Some(Done::Reset(status)),
                Some(Event::Closed) | None => self.done = Some(Done::Closed),
            }
        }
    }

    /// Queues `data` as DATA frames; waits only while the write queue is full.
    pub async fn send(&self, data: Bytes) -> Result<(), SpdyError> {
        self.sender.send(data).await
    }

    /// Half-closes our side (empty DATA with FIN); receiving continues.
    pub async fn close(&self) -> Result<(), SpdyError> {
        self.sender.close().await
    }

    /// Aborts the stream in both directions with RST_STREAM(`status`).
    pub async fn reset(&self, status: RstStatus) -> Result<(), SpdyError> {
        self.sender.reset(status).await
    }

    /// A clonable sending handle, so one task can write while another reads.
    pub fn sender(&self) -> StreamSender {
        self.sender.clone()
    }

    /// Wraps the stream as `AsyncRead + AsyncWrite` (shutdown = FIN).
    pub fn into_io(self) -> StreamIo {
        let writer = PollSender::new(self.sender.shared().data_tx.clone());
        StreamIo {
            stream: self,
            pending: Bytes::new(),
            writer,
            shutdown: false,
        }
    }
}

/// Sending half of a [`Stream`]. When the stream and all its senders are
/// dropped without a FIN having been sent, the stream is reset with CANCEL.
#[derive(Clone)]
pub struct StreamSender {
    id: u32,
    guard: Arc<StreamGuard>,
}

impl fmt::Debug for StreamSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamSender")
            .field("id", &self.id)
            .finish()
    }
}

impl StreamSender {
    pub fn id(&self) -> u32 {
        self.id
    }

    fn shared(&self) -> &Shared {
        &self.guard.handle.shared
    }

    fn check_send(&self) -> Result<(), SpdyError> {
        let st = self.shared().lock();
        match st.streams.get(&self.id) {
            Some(e) if !e.local_closed => Ok(()),
            None if st.closed => Err(SpdyError::ConnectionClosed),
            _ => Err(SpdyError::StreamClosed(self.id)),
        }
    }

    /// Marks our side closed; `Ok(false)` if it already was (or the stream is gone).
    fn mark_local_closed(&self) -> Result<bool, SpdyError> {
        let shared = self.shared();
        let mut st = shared.lock();
        let closed = st.closed;
        let both_closed = match st.streams.get_mut(&self.id) {
            None if closed => return Err(SpdyError::ConnectionClosed),
            None => return Ok(false),
            Some(e) if e.local_closed => return Ok(false),
            Some(e) => {
                e.local_closed = true;
                e.remote_closed
            }
        };
        if both_closed {
            shared.remove(&mut st, self.id);
        }
        Ok(true)
    }

    /// See [`Stream::send`].
    pub async fn send(&self, mut data: Bytes) -> Result<(), SpdyError> {
        self.check_send()?;
        let shared = self.shared();
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(shared.config.max_send_frame));
            let frame = Frame::Data {
                stream_id: self.id,
                fin: false,
                data: chunk,
            };
            shared
                .data_tx
                .send(WriteCmd::Frame(frame))
                .await
                .map_err(|_| SpdyError::ConnectionClosed)?;
        }
        Ok(())
    }

    /// See [`Stream::close`]. Closing twice is a no-op.
    pub async fn close(&self) -> Result<(), SpdyError> {
        if !self.mark_local_closed()? {
            return Ok(());
        }
        let fin = Frame::Data {
            stream_id: self.id,
            fin: true,
            data: Bytes::new(),
        };
        self.shared()
            .data_tx
            .send(WriteCmd::Frame(fin))
            .await
            .map_err(|_| SpdyError::ConnectionClosed)
    }

    /// See [`Stream::reset`]. A no-op if the stream already ended.
    pub async fn reset(&self, status: RstStatus) -> Result<(), SpdyError> {
        let shared = self.shared();
        {
            let mut st = shared.lock();
            match shared.remove(&mut st, self.id) {
                Some(entry) => {
                    abort_entry(entry, Event::Reset(status), || SpdyError::ConnectionClosed)
                }
                None => return Ok(()),
            }
        }
        // Through the data queue so DATA written before the reset still goes out first.
        let rst = Frame::RstStream {
            stream_id: self.id,
            status,
        };
        shared
            .data_tx
            .send(WriteCmd::Frame(rst))
            .await
            .map_err(|_| SpdyError::ConnectionClosed)
    }
}

struct StreamGuard {
    id: u32,
    handle: Arc<Handle>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let shared = &self.handle.shared;
        let abandoned = {
            let mut st = shared.lock();
            match st.streams.get(&self.id) {
                Some(e) if !e.local_closed => shared.remove(&mut st, self.id),
                _ => None,
            }
        };
        let Some(entry) = abandoned else {
            return;
        };
        entry.budget.close();
        let cmd = WriteCmd::Frame(Frame::RstStream {
            stream_id: self.id,
            status: RstStatus::Cancel,
        });
        if let Err(TrySendError::Full(cmd)) = shared.data_tx.try_send(cmd)
            && let Ok(shim) = tokio::runtime::Handle::try_current()
        {
            let tx = shared.data_tx.clone();
            shim.spawn(async move {
                let _ = tx.send(cmd).await;
            });
        }
    }
}

/// [`Stream`] as `AsyncRead + AsyncWrite`. Reads end with EOF at the peer's
/// FIN; a reset reads as `ConnectionReset`. `poll_shutdown` sends FIN;
/// `poll_flush` returns once data is queued for the connection's writer.
pub struct StreamIo {
    stream: Stream,
    pending: Bytes,
    writer: PollSender<WriteCmd>,
    shutdown: bool,
}

impl fmt::Debug for StreamIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamIo")
            .field("id", &self.stream.id())
            .finish()
    }
}

impl StreamIo {
    pub fn stream(&self) -> &Stream {
        &self.stream
    }
}

fn to_io_error(e: SpdyError) -> io::Error {
    let kind = match e {
        SpdyError::StreamReset { .. } => io::ErrorKind::ConnectionReset,
        SpdyError::StreamClosed(_) => io::ErrorKind::BrokenPipe,
        _ => io::ErrorKind::ConnectionAborted,
    };
    io::Error::new(kind, e)
}

impl AsyncRead for StreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending.is_empty() {
            match ready!(this.stream.poll_recv(cx)) {
                Ok(Some(data)) => this.pending = data,
                Ok(None) => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(to_io_error(e))),
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for StreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.shutdown {
            return Poll::Ready(Err(to_io_error(SpdyError::StreamClosed(this.stream.id()))));
        }
        this.stream.sender.check_send().map_err(to_io_error)?;
        ready!(this.writer.poll_reserve(cx))
            .map_err(|_| to_io_error(SpdyError::ConnectionClosed))?;
        let n = buf
            .len()
            .min(this.stream.sender.shared().config.max_send_frame);
        let frame = Frame::Data {
            stream_id: this.stream.id(),
            fin: false,
            data: Bytes::copy_from_slice(&buf[..n]),
        };
        this.writer
            .send_item(WriteCmd::Frame(frame))
            .map_err(|_| to_io_error(SpdyError::ConnectionClosed))?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.shutdown {
            return Poll::Ready(Ok(()));
        }
        ready!(this.writer.poll_reserve(cx))
            .map_err(|_| to_io_error(SpdyError::ConnectionClosed))?;
        match this.stream.sender.mark_local_closed() {
            Ok(true) => {
                let fin = Frame::Data {
                    stream_id: this.stream.id(),
                    fin: true,
                    data: Bytes::new(),
                };
                this.writer
                    .send_item(WriteCmd::Frame(fin))
                    .map_err(|_| to_io_error(SpdyError::ConnectionClosed))?;
            }
            Ok(false) => {
                this.writer.abort_send();
            }
            Err(e) => {
                this.writer.abort_send();
                return Poll::Ready(Err(to_io_error(e)));
            }
        }
        this.shutdown = true;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::Frame;
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio_util::codec::Framed;

    const T: Duration = Duration::from_secs(5);

    fn pair(server_cfg: Config, client_cfg: Config) -> (Connection, Connection) {
        let (a, b) = tokio::io::duplex(256 * 1024);
        (
            Connection::server(a, server_cfg),
            Connection::client(b, client_cfg),
        )
    }

    fn hdrs(kind: &str) -> HeaderBlock {
        [("streamType", kind), ("port", "80")].into_iter().collect()
    }

    async fn recv_all(stream: &mut Stream) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(chunk) = tokio::time::timeout(T, stream.recv())
            .await
            .unwrap()
            .unwrap()
        {
            out.extend_from_slice(&chunk);
        }
        out
    }

    /// A hand-driven peer for protocol-level tests.
    fn raw_peer(io: DuplexStream) -> Framed<DuplexStream, SpdyCodec> {
        Framed::new(io, SpdyCodec::default())
    }

    async fn next_frame(peer: &mut Framed<DuplexStream, SpdyCodec>) -> Option<Frame> {
        tokio::time::timeout(T, peer.next())
            .await
            .unwrap()
            .map(|r| r.unwrap())
    }

    fn syn(id: u32, kind: &str) -> Frame {
        Frame::SynStream {
            stream_id: id,
            associated_stream_id: 0,
            priority: 0,
            slot: 0,
            fin: false,
            unidirectional: false,
            headers: hdrs(kind),
        }
    }

    #[tokio::test]
    async fn three_streams_with_headers_and_data_both_ways() {
        let (server, client) = pair(Config::default(), Config::default());
        let kinds = ["error", "stdout", "stdin"];
        let client_task = tokio::spawn({
            let client = client.clone();
            async move {
                let mut streams = Vec::new();
                for kind in kinds {
                    streams.push(client.open(hdrs(kind)).await.unwrap());
                }
                streams
            }
        });
        let mut accepted = Vec::new();
        for kind in kinds {
            let s = tokio::time::timeout(T, server.accept())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(s.headers().get("streamtype"), Some(kind));
            assert_eq!(s.headers().get("port"), Some("80"));
            accepted.push(s);
        }
        let mut opened = client_task.await.unwrap();
        assert_eq!(
            opened.iter().map(Stream::id).collect::<Vec<_>>(),
            vec![1, 3, 5]
        );
        assert_eq!(
            accepted.iter().map(Stream::id).collect::<Vec<_>>(),
            vec![1, 3, 5]
        );

        // 5 MiB client -> server on stream 5, split into many frames.
        let big: Vec<u8> = (0..5 * 1024 * 1024u32)
            .map(|i| (i * 31 + i / 7) as u8)
            .collect();
        let big = Bytes::from(big);
        let sender = opened[2].sender();
        let upload = tokio::spawn({
            let big = big.clone();
            async move {
                sender.send(big).await.unwrap();
                sender.close().await.unwrap();
            }
        });
        let got = recv_all(&mut accepted[2]).await;
        upload.await.unwrap();
        assert_eq!(got.len(), big.len());
        assert!(got == big[..], "payload differs");

        // And server -> client on stream 3.
        accepted[1]
            .send(Bytes::from_static(b"hello "))
            .await
            .unwrap();
        accepted[1]
            .send(Bytes::from_static(b"world"))
            .await
            .unwrap();
        accepted[1].close().await.unwrap();
        assert_eq!(recv_all(&mut opened[1]).await, b"hello world");

        // Error stream: both sides close with no data.
        opened[0].close().await.unwrap();
        accepted[0].close().await.unwrap();
        assert_eq!(recv_all(&mut accepted[0]).await, b"");
        assert_eq!(recv_all(&mut opened[0]).await, b"");
        assert_eq!(client.close().await, CloseReason::Local);
        let reason = tokio::time::timeout(T, server.closed()).await.unwrap();
        assert!(matches!(
            reason,
            CloseReason::GoAway(GoAwayStatus::Ok) | CloseReason::PeerClosed
        ));
    }

    #[tokio::test]
    async fn half_close_keeps_other_direction_open() {
        let (server, client) = pair(Config::default(), Config::default());
        let (opened, accepted) = tokio::join!(client.open(hdrs("data")), server.accept());
        let mut opened = opened.unwrap();
        let mut accepted = accepted.unwrap();

        opened.send(Bytes::from_static(b"request")).await.unwrap();
        opened.close().await.unwrap();
        assert!(matches!(
            opened.send(Bytes::from_static(b"x")).await,
            Err(SpdyError::StreamClosed(1))
        ));
        assert_eq!(recv_all(&mut accepted).await, b"request");
        assert_eq!(accepted.recv().await.unwrap(), None, "FIN is sticky");

        accepted
            .send(Bytes::from_static(b"response"))
            .await
            .unwrap();
        let chunk = tokio::time::timeout(T, opened.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(chunk.as_deref(), Some(&b"response"[..]));
        accepted.close().await.unwrap();
        assert_eq!(opened.recv().await.unwrap(), None);
    }

    #[tokio::test]
    async fn reset_ends_stream_on_both_sides() {
        let (server, client) = pair(Config::default(), Config::default());
        let (opened, accepted) = tokio::join!(client.open(hdrs("data")), server.accept());
        let mut opened = opened.unwrap();
        let mut accepted = accepted.unwrap();
        accepted.reset(RstStatus::Cancel).await.unwrap();
        let err = tokio::time::timeout(T, opened.recv())
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(
            err,
            SpdyError::StreamReset {
                id: 1,
                status: RstStatus::Cancel
            }
        ));
        assert!(opened.send(Bytes::from_static(b"x")).await.is_err());
        assert!(matches!(
            accepted.recv().await,
            Err(SpdyError::StreamReset { .. })
        ));
        // The connection itself is unaffected.
        let (second, _) = tokio::join!(client.open(hdrs("data")), server.accept());
        assert_eq!(second.unwrap().id(), 3);
    }

    #[tokio::test]
    async fn ping_round_trips_both_ways() {
        let (server, client) = pair(Config::default(), Config::default());
        tokio::time::timeout(T, client.ping())
            .await
            .unwrap()
            .unwrap();
        tokio::time::timeout(T, server.ping())
            .await
            .unwrap()
            .unwrap();
        tokio::time::timeout(T, client.ping())
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn peer_disconnect_ends_streams() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = Connection::server(a, Config::default());
        let mut peer = raw_peer(b);
        peer.send(syn(1, "stdin")).await.unwrap();
        peer.send(Frame::Data {
            stream_id: 1,
            fin: false,
            data: Bytes::from_static(b"partial"),
        })
        .await
        .unwrap();
        assert!(matches!(
            next_frame(&mut peer).await,
            Some(Frame::SynReply { stream_id: 1, .. })
        ));
        let mut stream = tokio::time::timeout(T, server.accept())
            .await
            .unwrap()
            .unwrap();
        let chunk = tokio::time::timeout(T, stream.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(chunk.as_deref(), Some(&b"partial"[..]));
        drop(peer);
        let err = tokio::time::timeout(T, stream.recv())
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, SpdyError::ConnectionClosed));
        assert_eq!(
            tokio::time::timeout(T, server.closed()).await.unwrap(),
            CloseReason::PeerClosed
        );
        assert!(server.accept().await.is_none());
        assert!(matches!(
            stream.send(Bytes::from_static(b"x")).await,
            Err(SpdyError::ConnectionClosed)
        ));
    }

    #[tokio::test]
    async fn idle_timeout_closes_connection() {
        let cfg = Config {
            idle_timeout: Some(Duration::from_millis(150)),
            ..Config::default()
        };
        let (server, client) = pair(cfg, Config::default());
        let started = Instant::now();
        assert_eq!(
            tokio::time::timeout(T, server.closed()).await.unwrap(),
            CloseReason::IdleTimeout
        );
        assert!(started.elapsed() >= Duration::from_millis(150));
        // The client saw our GOAWAY.
        let reason = tokio::time::timeout(T, client.closed()).await.unwrap();
        assert!(matches!(
            reason,
            CloseReason::GoAway(GoAwayStatus::Ok) | CloseReason::PeerClosed
        ));
    }

    #[tokio::test]
    async fn activity_defers_idle_timeout() {
        let cfg = Config {
            idle_timeout: Some(Duration::from_millis(300)),
            ..Config::default()
        };
        let (server, client) = pair(cfg, Config::default());
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            client.ping().await.unwrap();
        }
        assert!(!server.is_closed());
    }

    #[tokio::test]
    async fn streams_beyond_limit_are_refused() {
        let cfg = Config {
            max_concurrent_streams: 2,
            ..Config::default()
        };
        let (server, client) = pair(cfg, Config::default());
        let a = client.open(hdrs("a")).await.unwrap();
        let b = client.open(hdrs("b")).await.unwrap();
        let err = client.open(hdrs("c")).await.unwrap_err();
        assert!(matches!(
            err,
            SpdyError::StreamReset {
                id: 5,
                status: RstStatus::RefusedStream
            }
        ));
        // Finishing a stream frees its slot.
        let mut sa = server.accept().await.unwrap();
        let _sb = server.accept().await.unwrap();
        a.close().await.unwrap();
        sa.close().await.unwrap();
        assert_eq!(recv_all(&mut sa).await, b"");
        drop(b);
        let d = tokio::time::timeout(T, client.open(hdrs("d")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.id(), 7);
    }

    #[tokio::test]
    async fn protocol_violation_gets_goaway_protocol_error() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = Connection::server(a, Config::default());
        let mut peer = raw_peer(b);
        peer.send(syn(3, "a")).await.unwrap();
        assert!(matches!(
            next_frame(&mut peer).await,
            Some(Frame::SynReply { stream_id: 3, .. })
        ));
        // Ids must increase.
        peer.send(syn(1, "b")).await.unwrap();
        let mut saw_goaway = false;
        while let Some(frame) = next_frame(&mut peer).await {
            if let Frame::GoAway {
                status,
                last_good_stream_id,
            } = frame
            {
                assert_eq!(status, GoAwayStatus::ProtocolError);
                assert_eq!(last_good_stream_id, 3);
                saw_goaway = true;
            }
        }
        assert!(saw_goaway);
        assert!(matches!(
            server.closed().await,
            CloseReason::ProtocolError(_)
        ));
    }

    #[tokio::test]
    async fn wrong_parity_is_a_protocol_error() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = Connection::server(a, Config::default());
        let mut peer = raw_peer(b);
        peer.send(syn(2, "a")).await.unwrap();
        assert!(matches!(
            next_frame(&mut peer).await,
            Some(Frame::GoAway {
                status: GoAwayStatus::ProtocolError,
                ..
            })
        ));
        assert!(matches!(
            server.closed().await,
            CloseReason::ProtocolError(_)
        ));
    }

    #[tokio::test]
    async fn settings_window_update_and_unknown_frames_are_ignored() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = Connection::server(a, Config::default());
        let mut peer = raw_peer(b);
        peer.send(Frame::Settings {
            clear_previous: false,
            entries: vec![],
        })
        .await
        .unwrap();
        peer.send(Frame::WindowUpdate {
            stream_id: 1,
            delta: 1000,
        })
        .await
        .unwrap();
        // NOOP (type 5), an unknown control type.
        peer.get_mut()
            .write_all(&[0x80, 0x03, 0x00, 0x05, 0, 0, 0, 0])
            .await
            .unwrap();
        peer.send(Frame::Ping { id: 1 }).await.unwrap();
        assert_eq!(next_frame(&mut peer).await, Some(Frame::Ping { id: 1 }));
        assert!(!server.is_closed());
    }

    #[tokio::test]
    async fn open_times_out_without_reply() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let cfg = Config {
            open_timeout: Duration::from_millis(100),
            ..Config::default()
        };
        let client = Connection::client(a, cfg);
        let mut peer = raw_peer(b);
        let err = client.open(hdrs("x")).await.unwrap_err();
        assert!(matches!(err, SpdyError::Timeout("SYN_REPLY")));
        assert!(matches!(
            next_frame(&mut peer).await,
            Some(Frame::SynStream { stream_id: 1, .. })
        ));
        assert!(matches!(
            next_frame(&mut peer).await,
            Some(Frame::RstStream {
                stream_id: 1,
                status: RstStatus::Cancel
            })
        ));
    }

    #[tokio::test]
    async fn close_flushes_queued_data_before_goaway() {
        let (server, client) = pair(Config::default(), Config::default());
        let (opened, accepted) = tokio::join!(client.open(hdrs("a")), server.accept());
        let opened = opened.unwrap();
        let accepted = accepted.unwrap();
        // Server-side close: GOAWAY goes out after the queued data and FIN.
        accepted.send(Bytes::from_static(b"bye")).await.unwrap();
        accepted.close().await.unwrap();
        drop(accepted);
        let mut opened = opened;
        server.close().await;
        assert_eq!(recv_all(&mut opened).await, b"bye");
        assert!(matches!(
            client.open(hdrs("b")).await,
            Err(SpdyError::GoingAway | SpdyError::ConnectionClosed)
        ));
        let reason = tokio::time::timeout(T, client.closed()).await.unwrap();
        assert!(matches!(
            reason,
            CloseReason::GoAway(GoAwayStatus::Ok) | CloseReason::PeerClosed
        ));
    }

    #[tokio::test]
    async fn peer_goaway_lets_open_streams_finish_then_closes() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = Connection::server(a, Config::default());
        let mut peer = raw_peer(b);
        peer.send(syn(1, "stdout")).await.unwrap();
        assert!(matches!(
            next_frame(&mut peer).await,
            Some(Frame::SynReply { stream_id: 1, .. })
        ));
        let mut stream = server.accept().await.unwrap();
        peer.send(Frame::GoAway {
            last_good_stream_id: 0,
            status: GoAwayStatus::Ok,
        })
        .await
        .unwrap();
        // Frames are handled in order, so once the ping is echoed the GOAWAY is in effect.
        peer.send(Frame::Ping { id: 1 }).await.unwrap();
        assert_eq!(next_frame(&mut peer).await, Some(Frame::Ping { id: 1 }));
        assert!(matches!(
            server.open(hdrs("x")).await,
            Err(SpdyError::GoingAway)
        ));
        // The existing stream still works in both directions.
        stream.send(Bytes::from_static(b"out")).await.unwrap();
        stream.close().await.unwrap();
        peer.send(Frame::Data {
            stream_id: 1,
            fin: true,
            data: Bytes::from_static(b"in"),
        })
        .await
        .unwrap();
        assert_eq!(recv_all(&mut stream).await, b"in");
        let mut frames = Vec::new();
        while let Some(frame) = next_frame(&mut peer).await {
            frames.push(frame);
        }
        assert_eq!(
            frames,
            vec![
                Frame::Data {
                    stream_id: 1,
                    fin: false,
                    data: Bytes::from_static(b"out")
                },
                Frame::Data {
                    stream_id: 1,
                    fin: true,
                    data: Bytes::new()
                },
                Frame::GoAway {
                    last_good_stream_id: 1,
                    status: GoAwayStatus::Ok
                },
            ]
        );
        assert_eq!(server.closed().await, CloseReason::GoAway(GoAwayStatus::Ok));
    }

    #[tokio::test]
    async fn dropping_every_handle_closes_the_connection() {
        let (server, client) = pair(Config::default(), Config::default());
        drop(client);
        assert!(matches!(
            tokio::time::timeout(T, server.closed()).await.unwrap(),
            CloseReason::GoAway(GoAwayStatus::Ok) | CloseReason::PeerClosed
        ));
    }

    #[tokio::test]
    async fn stream_io_adapter_copies_bytes_and_shutdown_is_fin() {
        let (server, client) = pair(Config::default(), Config::default());
        let (opened, accepted) = tokio::join!(client.open(hdrs("data")), server.accept());
        let mut c = opened.unwrap().into_io();
        let mut s = accepted.unwrap().into_io();
        let payload: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let echo = tokio::spawn(async move {
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
            s.shutdown().await.unwrap();
        });
        c.write_all(&payload).await.unwrap();
        c.shutdown().await.unwrap();
        assert!(c.write_all(b"late").await.is_err());
        let mut back = Vec::new();
        tokio::time::timeout(T, c.read_to_end(&mut back))
            .await
            .unwrap()
            .unwrap();
        echo.await.unwrap();
        assert_eq!(back, payload);
    }

    #[tokio::test]
    async fn full_receive_buffer_pushes_back_on_the_sender() {
        let cfg = Config {
            stream_recv_buffer: 64 * 1024,
            ..Config::default()
        };
        let (a, b) = tokio::io::duplex(16 * 1024);
        let server = Connection::server(a, cfg);
        let client = Connection::client(b, Config::default());
        let (opened, accepted) = tokio::join!(client.open(hdrs("data")), server.accept());
        let opened = opened.unwrap();
        let mut accepted = accepted.unwrap();
        let total = 8 * 1024 * 1024;
        let sender = opened.sender();
        let upload = tokio::spawn(async move {
            sender.send(Bytes::from(vec![7u8; total])).await.unwrap();
            sender.close().await.unwrap();
        });
        // Nobody reads: the upload cannot complete, memory stays bounded.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!upload.is_finished());
        let got = recv_all(&mut accepted).await;
        assert_eq!(got.len(), total);
        upload.await.unwrap();
    }

    #[tokio::test]
    async fn dropped_stream_is_reset_and_does_not_stall_the_connection() {
        let (server, client) = pair(
            Config {
                stream_recv_buffer: 1024,
                ..Config::default()
            },
            Config::default(),
        );
        let (opened, accepted) = tokio::join!(client.open(hdrs("a")), server.accept());
        let mut opened = opened.unwrap();
        drop(accepted.unwrap());
        let err = tokio::time::timeout(T, opened.recv())
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(
            err,
            SpdyError::StreamReset {
                status: RstStatus::Cancel,
                ..
            }
        ));
        // Data the server cannot deliver is discarded rather than blocking others.
        let _ = opened.send(Bytes::from(vec![0u8; 100_000])).await;
        tokio::time::timeout(T, client.ping())
            .await
            .unwrap()
            .unwrap();
    }

    /// Issue 21: a frame above the stream's buffer was charged only the
    /// buffer's size, so the reader held more than it counted.
    #[tokio::test]
    async fn a_data_frame_larger_than_the_stream_buffer_is_refused() {
        let cfg = Config {
            stream_recv_buffer: 1024,
            ..Config::default()
        };
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = Connection::server(a, cfg);
        let mut peer = raw_peer(b);
        peer.send(syn(1, "a")).await.unwrap();
        assert!(matches!(
            next_frame(&mut peer).await,
            Some(Frame::SynReply { stream_id: 1, .. })
        ));
        let _accepted = server.accept().await.unwrap();
        peer.send(Frame::Data {
            stream_id: 1,
            fin: false,
            data: Bytes::from(vec![1u8; 1025]),
        })
        .await
        .unwrap();
        let reason = tokio::time::timeout(T, server.closed()).await.unwrap();
        assert!(
            matches!(&reason, CloseReason::ProtocolError(m) if m.contains("1025")),
            "{reason:?}"
        );
    }

    #[tokio::test]
    async fn buffered_data_of_all_streams_is_bounded_per_connection() {
        let cfg = Config {
            stream_recv_buffer: 1024,
            connection_recv_buffer: 2048,
            ..Config::default()
        };
        let (server, client) = pair(cfg, Config::default());
        let mut accepted = Vec::new();
        let mut opened = Vec::new();
        for kind in ["a", "b", "c"] {
            let (o, a) = tokio::join!(client.open(hdrs(kind)), server.accept());
            opened.push(o.unwrap());
            accepted.push(a.unwrap());
        }
        for stream in &opened {
            stream.send(Bytes::from(vec![9u8; 1024])).await.unwrap();
        }
        // Two streams' data fill the connection's budget: the third frame
        // waits, and so does everything behind it on the connection.
        let pinger = client.clone();
        let ping = tokio::spawn(async move { pinger.ping().await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!ping.is_finished(), "the reader went past a full budget");
        let first = tokio::time::timeout(T, accepted[0].recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(first.len(), 1024);
        tokio::time::timeout(T, ping)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let third = tokio::time::timeout(T, accepted[2].recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(third.len(), 1024);
    }

    /// Issue 21: every SYN_STREAM kept its decoded headers for as long as
    /// the stream was open, with no bound over the connection.
    #[tokio::test]
    async fn headers_of_open_streams_are_bounded_per_connection() {
        let cost = hdrs("a").cost();
        let cfg = Config {
            header_budget: cost * 2,
            ..Config::default()
        };
        let (server, client) = pair(cfg, Config::default());
        let (a, sa) = tokio::join!(client.open(hdrs("a")), server.accept());
        let (_a, sa) = (a.unwrap(), sa.unwrap());
        let (b, _sb) = tokio::join!(client.open(hdrs("b")), server.accept());
        let _b = b.unwrap();
        let err = client.open(hdrs("c")).await.unwrap_err();
        assert!(
            matches!(
                err,
                SpdyError::StreamReset {
                    status: RstStatus::RefusedStream,
                    ..
                }
            ),
            "{err:?}"
        );
        // Dropping an accepted stream gives its headers' share back.
        drop(sa);
        let (d, sd) = tokio::join!(client.open(hdrs("d")), server.accept());
        assert!(d.is_ok() && sd.is_some());
    }

    #[tokio::test]
    async fn request_headers_go_peers_reject_are_refused_locally() {
        let (_server, client) = pair(Config::default(), Config::default());
        let mut h = hdrs("a");
        h.insert("Connection", "close");
        assert!(matches!(
            client.open(h).await,
            Err(SpdyError::InvalidHeader { .. })
        ));
    }
}
