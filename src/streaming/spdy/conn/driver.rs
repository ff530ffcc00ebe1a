//! The connection's driver: the task that reads frames and dispatches them
//! to streams (SYN_STREAM, SYN_REPLY, DATA, RST_STREAM, PING, GOAWAY), the
//! writer that sends control frames before data, and the idle watch. The
//! handles in the parent module talk to it through [`Shared`] and channels.

use super::*;

pub(super) async fn drive<T>(
    shared: Arc<Shared>,
    read: ReadHalf<T>,
    write: WriteHalf<T>,
    ctrl_rx: mpsc::Receiver<Frame>,
    data_rx: mpsc::Receiver<WriteCmd>,
) where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let stop = CancellationToken::new();
    let sink = FramedWrite::new(write, SpdyCodec::new(shared.config.limits));
    let mut writer = tokio::spawn(write_loop(
        sink,
        ctrl_rx,
        data_rx,
        stop.clone(),
        shared.clone(),
    ));
    let mut writer_done = false;
    let mut reader = FramedRead::new(read, SpdyCodec::new(shared.config.limits));
    let reason = tokio::select! {
        reason = read_loop(&shared, &mut reader) => reason,
        result = &mut writer => {
            writer_done = true;
            match result {
                Ok(Ok(())) => CloseReason::Io("writer stopped".into()),
                Ok(Err(e)) => CloseReason::Io(e.to_string()),
                Err(e) => CloseReason::Io(e.to_string()),
            }
        }
        _ = shared.close_req.cancelled() => CloseReason::Local,
        _ = shared.drained.cancelled() => {
            CloseReason::GoAway(shared.lock().remote_goaway.unwrap_or(GoAwayStatus::Ok))
        }
        _ = idle_watch(&shared) => CloseReason::IdleTimeout,
    };
    tracing::debug!(role = ?shared.role, ?reason, "SPDY connection closing");
    finish(&shared, &reason, &mut writer, writer_done, &stop).await;
}

async fn finish(
    shared: &Shared,
    reason: &CloseReason,
    writer: &mut JoinHandle<Result<(), SpdyError>>,
    mut writer_done: bool,
    stop: &CancellationToken,
) {
    let goaway = match reason {
        CloseReason::PeerClosed | CloseReason::Io(_) => None,
        CloseReason::ProtocolError(_) => Some(GoAwayStatus::ProtocolError),
        CloseReason::Local | CloseReason::IdleTimeout | CloseReason::GoAway(_) => {
            Some(GoAwayStatus::Ok)
        }
    };
    let last_good = {
        let mut st = shared.lock();
        st.closed = true;
        st.local_goaway = true;
        st.accept_tx = None;
        st.pings.clear();
        for (_, entry) in st.streams.drain() {
            abort_entry(entry, Event::Closed, || SpdyError::ConnectionClosed);
        }
        st.last_remote_id
    };
    if let (Some(status), false) = (goaway, writer_done) {
        let frame = Frame::GoAway {
            last_good_stream_id: last_good,
            status,
        };
        let graceful = async {
            if shared
                .data_tx
                .send(WriteCmd::Shutdown(frame))
                .await
                .is_err()
            {
                return false;
            }
            let _ = (&mut *writer).await;
            true
        };
        if let Ok(true) = tokio::time::timeout(shared.config.close_timeout, graceful).await {
            writer_done = true;
        }
    }
    stop.cancel();
    if !writer_done {
        let _ = writer.await;
    }
    shared.closed_tx.send_replace(Some(reason.clone()));
}

async fn idle_watch(shared: &Shared) {
    let Some(timeout) = shared.config.idle_timeout else {
        return std::future::pending().await;
    };
    loop {
        let Some(deadline) = shared.last_activity().checked_add(timeout) else {
            return std::future::pending().await;
        };
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

async fn write_loop<W>(
    mut sink: FramedWrite<W, SpdyCodec>,
    mut ctrl: mpsc::Receiver<Frame>,
    mut data: mpsc::Receiver<WriteCmd>,
    stop: CancellationToken,
    shared: Arc<Shared>,
) -> Result<(), SpdyError>
where
    W: AsyncWrite + Unpin,
{
    let work = async {
        loop {
            let first = tokio::select! {
                biased;
                Some(frame) = ctrl.recv() => WriteCmd::Frame(frame),
                Some(cmd) = data.recv() => cmd,
                else => return Ok(()),
            };
            // Batch whatever else is ready into one flush.
            let mut next = Some(first);
            let mut batch = 0;
            while let Some(cmd) = next.take() {
                match cmd {
                    WriteCmd::Frame(frame) => sink.feed(frame).await?,
                    WriteCmd::Shutdown(goaway) => {
                        while let Ok(frame) = ctrl.try_recv() {
                            sink.feed(frame).await?;
                        }
                        sink.feed(goaway).await?;
                        sink.close().await?;
                        return Ok(());
                    }
                }
                shared.touch();
                batch += 1;
                if batch < 32 {
                    next = match ctrl.try_recv() {
                        Ok(frame) => Some(WriteCmd::Frame(frame)),
                        Err(_) => data.try_recv().ok(),
                    };
                }
            }
            sink.flush().await?;
        }
    };
    tokio::select! {
        _ = stop.cancelled() => Ok(()),
        result = work => result,
    }
}

async fn read_loop<R>(shared: &Shared, reader: &mut FramedRead<R, SpdyCodec>) -> CloseReason
where
    R: AsyncRead + Unpin,
{
    loop {
        let frame = match reader.next().await {
            None => {
                return match shared.lock().remote_goaway {
                    Some(status) => CloseReason::GoAway(status),
                    None => CloseReason::PeerClosed,
                };
            }
            Some(Err(SpdyError::Io(e))) => return CloseReason::Io(e.to_string()),
            Some(Err(e)) => return CloseReason::ProtocolError(e.to_string()),
            Some(Ok(frame)) => frame,
        };
        shared.touch();
        if let Err(reason) = handle_frame(shared, frame).await {
            return reason;
        }
    }
}

async fn send_ctrl(shared: &Shared, frame: Frame) -> Result<(), CloseReason> {
    shared
        .ctrl_tx
        .send(frame)
        .await
        .map_err(|_| CloseReason::Io("writer stopped".into()))
}

async fn handle_frame(shared: &Shared, frame: Frame) -> Result<(), CloseReason> {
    match frame {
        Frame::Data {
            stream_id,
            fin,
            data,
        } => on_data(shared, stream_id, fin, data).await,
        Frame::SynStream {
            stream_id,
            fin,
            unidirectional,
            headers,
            ..
        } => on_syn_stream(shared, stream_id, fin, unidirectional, headers).await,
        Frame::SynReply {
            stream_id,
            fin,
            headers,
        } => on_syn_reply(shared, stream_id, fin, headers).await,
        Frame::Headers { stream_id, fin, .. } => {
            if fin {
                on_remote_fin(shared, stream_id);
            }
            Ok(())
        }
        Frame::RstStream { stream_id, status } => {
            let mut st = shared.lock();
            if let Some(entry) = shared.remove(&mut st, stream_id) {
                abort_entry(entry, Event::Reset(status), || SpdyError::StreamReset {
                    id: stream_id,
                    status,
                });
            }
            Ok(())
        }
        Frame::Ping { id } => {
            if shared.is_peer_id(id) {
                send_ctrl(shared, Frame::Ping { id }).await
            } else {
                // An echo of one of ours; an unknown one is ignored as the spec says.
                if let Some(waiter) = shared.lock().pings.remove(&id) {
                    let _ = waiter.send(());
                }
                Ok(())
            }
        }
        Frame::GoAway {
            last_good_stream_id,
            status,
        } => {
            on_goaway(shared, last_good_stream_id, status);
            Ok(())
        }
        Frame::Settings { .. } | Frame::WindowUpdate { .. } => {
            // spdystream does no flow control, so neither do we.
            Ok(())
        }
    }
}

async fn on_data(shared: &Shared, id: u32, fin: bool, data: Bytes) -> Result<(), CloseReason> {
    let target = {
        let mut st = shared.lock();
        match st.streams.get_mut(&id) {
            // Late data for a stream we already reset or finished; spdystream ignores it too.
            None => None,
            Some(entry) if entry.remote_closed => {
                if let Some(entry) = shared.remove(&mut st, id) {
                    abort_entry(entry, Event::Reset(RstStatus::StreamAlreadyClosed), || {
                        SpdyError::ConnectionClosed
                    });
                }
                Some(Err(RstStatus::StreamAlreadyClosed))
            }
            Some(entry) => {
                let out = (entry.events.clone(), entry.budget.clone());
                if fin {
                    entry.remote_closed = true;
                    if entry.local_closed {
                        shared.remove(&mut st, id);
                    }
                }
                Some(Ok(out))
            }
        }
    };
    let (events, budget) = match target {
        None => {
            tracing::trace!(stream = id, "DATA for unknown stream ignored");
            return Ok(());
        }
        Some(Err(status)) => {
            let rst = Frame::RstStream {
                stream_id: id,
                status,
            };
            return send_ctrl(shared, rst).await;
        }
        Some(Ok(target)) => target,
    };
    if !data.is_empty() {
        // The decoder refuses frames above the stream's buffer, so the whole
        // frame is charged and can always be.
        let want = u32::try_from(data.len()).unwrap_or(u32::MAX);
        // Waiting here is the backpressure: the socket is not read until the
        // stream's owner (or, for the connection's budget, any owner) makes room.
        let charge = match budget.acquire_many_owned(want).await {
            Ok(stream) => match shared.recv_budget.clone().acquire_many_owned(want).await {
                Ok(connection) => Some(Charge {
                    _stream: stream,
                    _connection: connection,
                }),
                Err(_) => None,
            },
            Err(_) => None,
        };
        match charge {
            Some(charge) => {
                let _ = events.send(Event::Data(data, charge));
            }
            None => tracing::trace!(stream = id, "DATA for abandoned stream discarded"),
        }
    }
    if fin {
        let _ = events.send(Event::Fin);
    }
    Ok(())
}

fn on_remote_fin(shared: &Shared, id: u32) {
    let mut st = shared.lock();
    let Some(entry) = st.streams.get_mut(&id) else {
        return;
    };
    if entry.remote_closed {
        return;
    }
    entry.remote_closed = true;
    let _ = entry.events.send(Event::Fin);
    if entry.local_closed {
        shared.remove(&mut st, id);
    }
}

async fn on_syn_stream(
    shared: &Shared,
    id: u32,
    fin: bool,
    unidirectional: bool,
    headers: HeaderBlock,
) -> Result<(), CloseReason> {
    if !shared.is_peer_id(id) {
        return Err(CloseReason::ProtocolError(format!(
            "peer opened stream {id}, which has our parity"
        )));
    }
    let accepted = {
        let mut st = shared.lock();
        if id <= st.last_remote_id {
            return Err(CloseReason::ProtocolError(format!(
                "stream id {id} not greater than previous {}",
                st.last_remote_id
            )));
        }
        st.last_remote_id = id;
        let active = st.streams.values().filter(|e| !e.local).count();
        let cost = u32::try_from(headers.cost()).unwrap_or(u32::MAX);
        let permit =
            if st.closed || st.local_goaway || active >= shared.config.max_concurrent_streams {
                None
            } else {
                st.accept_tx
                    .clone()
                    .and_then(|tx| tx.try_reserve_owned().ok())
            };
        let header_charge = permit
            .is_some()
            .then(|| {
                shared
                    .header_budget
                    .clone()
                    .try_acquire_many_owned(cost)
                    .ok()
            })
            .flatten();
        permit.zip(header_charge).map(|(permit, header_charge)| {
            let (mut entry, events_rx, budget) = shared.new_entry(false);
            entry.local_closed = unidirectional;
            entry.remote_closed = fin;
            let events = entry.events.clone();
            if !(unidirectional && fin) {
                st.streams.insert(id, entry);
            }
            let pending = Pending {
                id,
                headers,
                header_charge,
                events: events_rx,
                budget,
            };
            (permit, pending, events)
        })
    };
    let Some((permit, pending, events)) = accepted else {
        tracing::debug!(stream = id, "refusing SPDY stream");
        let rst = Frame::RstStream {
            stream_id: id,
            status: RstStatus::RefusedStream,
        };
        return send_ctrl(shared, rst).await;
    };
    if !unidirectional {
        // kubelet-side clients block until the reply, so send it before the
        // owner even sees the stream.
        let reply = Frame::SynReply {
            stream_id: id,
            fin: false,
            headers: HeaderBlock::new(),
        };
        send_ctrl(shared, reply).await?;
    }
    if fin {
        let _ = events.send(Event::Fin);
    }
    permit.send(pending);
    Ok(())
}

async fn on_syn_reply(
    shared: &Shared,
    id: u32,
    fin: bool,
    headers: HeaderBlock,
) -> Result<(), CloseReason> {
    let rst = {
        let mut st = shared.lock();
        let Some(entry) = st.streams.get_mut(&id) else {
            return Ok(());
        };
        match entry.reply.take() {
            Some(waiter) => {
                if fin {
                    entry.remote_closed = true;
                    let _ = entry.events.send(Event::Fin);
                }
                if waiter.send(Ok(headers)).is_err() {
                    // The opener gave up (timeout or cancellation).
                    if let Some(entry) = shared.remove(&mut st, id) {
                        entry.budget.close();
                    }
                    Some(RstStatus::Cancel)
                } else {
                    None
                }
            }
            None => {
                if let Some(entry) = shared.remove(&mut st, id) {
                    abort_entry(entry, Event::Reset(RstStatus::StreamInUse), || {
                        SpdyError::ConnectionClosed
                    });
                }
                Some(RstStatus::StreamInUse)
            }
        }
    };
    match rst {
        Some(status) => {
            send_ctrl(
                shared,
                Frame::RstStream {
                    stream_id: id,
                    status,
                },
            )
            .await
        }
        None => Ok(()),
    }
}

fn on_goaway(shared: &Shared, last_good: u32, status: GoAwayStatus) {
    let mut st = shared.lock();
    st.remote_goaway = Some(status);
    // Our streams above last_good were never processed by the peer.
    let unprocessed: Vec<u32> = st
        .streams
        .iter()
        .filter(|(id, e)| e.local && **id > last_good)
        .map(|(id, _)| *id)
        .collect();
    for id in unprocessed {
        if let Some(entry) = shared.remove(&mut st, id) {
            abort_entry(entry, Event::Reset(RstStatus::RefusedStream), || {
                SpdyError::GoingAway
            });
        }
    }
    if st.streams.is_empty() {
        shared.drained.cancel();
    }
}
