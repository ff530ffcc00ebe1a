//! Runs exec and attach sessions against Docker: creates and starts the
//! exec (or attaches to the container), pumps bytes between the client's
//! channels and Docker's hijacked connection, applies terminal sizes, and
//! reports how the process ended.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::session::{Outcome, SessionIo};
use crate::api::{AttachRequest, ExecRequest};
use crate::container;
use crate::docker::hijack::{Demuxer, Output};
use crate::docker::{ExecSpec, RawStream, TermSize};
use crate::shim::Shim;

/// How long a TTY session waits for the client's first terminal size, which
/// clients send right after connecting, before starting the process.
const FIRST_SIZE_WAIT: Duration = Duration::from_secs(1);

/// Runs `req.cmd` in the container for a client.
pub async fn exec(shim: &Shim, req: &ExecRequest, mut io: SessionIo) -> Outcome {
    let first_size = if req.tty {
        first_size(&mut io).await
    } else {
        None
    };
    let spec = ExecSpec {
        cmd: req.cmd.clone(),
        stdin: io.stdin.is_some(),
        stdout: io.stdout.is_some(),
        stderr: io.stderr.is_some() && !req.tty,
        tty: req.tty,
    };
    let exec_id = match shim.docker.create_exec(&req.container_id, spec).await {
        Ok(id) => id,
        Err(err) => return Outcome::Failed(format!("error executing command in container: {err}")),
    };
    let raw = match shim.docker.start_exec(&exec_id, req.tty, first_size).await {
        Ok(raw) => raw,
        Err(err) => return Outcome::Failed(format!("error executing command in container: {err}")),
    };
    // Engines before API 1.42 ignore the console size at start: resize as
    // soon as Docker has the process running (it refuses until then).
    if let Some(size) = first_size {
        for attempt in 0..20u64 {
            match shim.docker.resize_exec(&exec_id, size).await {
                Ok(()) => break,
                Err(err) => {
                    tracing::debug!(exec = %exec_id, attempt, error = %err, "initial resize failed");
                    tokio::time::sleep(Duration::from_millis(5 * (attempt + 1))).await;
                }
            }
        }
    }
    let resizer = {
        let exec_id = exec_id.clone();
        move |size: TermSize| {
            let exec_id = exec_id.clone();
            async move { shim.docker.resize_exec(&exec_id, size).await }
        }
    };
    let client_gone = io.client_gone.clone();
    pump(raw, req.tty, io, resizer).await;
    if client_gone.is_cancelled() {
        // The client left while the process still runs; nobody will read
        // its output, so end it.
        container::kill_exec(shim, &exec_id).await;
    }
    match container::exit_code(shim, &exec_id).await {
        Ok(code) => Outcome::Exited(code),
        Err(err) => Outcome::Failed(err.to_string()),
    }
}

/// Attaches a client to a running container's stdio.
pub async fn attach(shim: &Shim, req: &AttachRequest, io: SessionIo) -> Outcome {
    let tty = match shim.docker.inspect_container(&req.container_id).await {
        Ok(inspected) => inspected.config.and_then(|c| c.tty).unwrap_or(false),
        Err(err) => {
            return Outcome::Failed(format!("attach to container {}: {err}", req.container_id));
        }
    };
    let raw = match shim
        .docker
        .attach(
            &req.container_id,
            io.stdin.is_some(),
            io.stdout.is_some(),
            io.stderr.is_some(),
        )
        .await
    {
        Ok(raw) => raw,
        Err(err) => {
            return Outcome::Failed(format!("attach to container {}: {err}", req.container_id));
        }
    };
    let container_id = req.container_id.clone();
    let resizer = move |size: TermSize| {
        let container_id = container_id.clone();
        async move { shim.docker.resize_container(&container_id, size).await }
    };
    pump(raw, tty, io, resizer).await;
    Outcome::Exited(0)
}

async fn first_size(io: &mut SessionIo) -> Option<TermSize> {
    let resize = io.resize.as_mut()?;
    tokio::time::timeout(FIRST_SIZE_WAIT, resize.recv())
        .await
        .ok()
        .flatten()
}

/// Moves bytes until the process's output ends (it exited) or the client
/// leaves. Stdin and resizes are forwarded alongside; the client's stdin
/// staying open does not keep the session alive.
async fn pump<F, Fut>(raw: Box<dyn RawStream>, tty: bool, io: SessionIo, resize: F)
where
    F: Fn(TermSize) -> Fut,
    Fut: std::future::Future<Output = crate::docker::DockerResult<()>>,
{
    let SessionIo {
        stdin,
        stdout,
        stderr,
        resize: sizes,
        client_gone,
    } = io;
    let (mut reader, mut writer) = tokio::io::split(raw);
    let stdin_task = stdin.map(|mut stdin| {
        tokio::spawn(async move {
            while let Some(chunk) = stdin.recv().await {
                if writer.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            // The client's EOF becomes the process's EOF.
            let _ = writer.shutdown().await;
        })
    });
    let output = async {
        if tty {
            copy_raw(&mut reader, stdout.as_ref()).await;
        } else {
            copy_demuxed(&mut reader, stdout.as_ref(), stderr.as_ref()).await;
        }
    };
    let resizes = forward_resizes(sizes, &resize);
    tokio::select! {
        () = output => {}
        () = client_gone.cancelled() => {}
        () = resizes => std::future::pending::<()>().await,
    }
    if let Some(task) = stdin_task {
        task.abort();
    }
}

async fn forward_resizes<F, Fut>(sizes: Option<mpsc::Receiver<TermSize>>, resize: &F)
where
    F: Fn(TermSize) -> Fut,
    Fut: std::future::Future<Output = crate::docker::DockerResult<()>>,
{
    let Some(mut sizes) = sizes else {
        return std::future::pending().await;
    };
    while let Some(size) = sizes.recv().await {
        if size.width == 0 || size.height == 0 {
            continue;
        }
        if let Err(err) = resize(size).await {
            tracing::debug!(error = %err, "resize failed");
        }
    }
    std::future::pending().await
}

async fn copy_raw<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut R,
    stdout: Option<&mpsc::Sender<Bytes>>,
) {
    let mut buf = BytesMut::with_capacity(32 * 1024);
    loop {
        buf.reserve(32 * 1024);
        match reader.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let chunk = buf.split().freeze();
                if let Some(tx) = stdout
                    && tx.send(chunk).await.is_err()
                {
                    return;
                }
            }
        }
    }
}

async fn copy_demuxed<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut R,
    stdout: Option<&mpsc::Sender<Bytes>>,
    stderr: Option<&mpsc::Sender<Bytes>>,
) {
    let mut demux = Demuxer::new(reader);
    loop {
        let (which, chunk) = match demux.next().await {
            Ok(Some(next)) => next,
            Ok(None) => return,
            Err(err) => {
                tracing::debug!(error = %err, "docker stream broke");
                return;
            }
        };
        let target = match which {
            Output::Stdout => stdout,
            Output::Stderr => stderr,
        };
        if let Some(tx) = target
            && tx.send(chunk).await.is_err()
        {
            return;
        }
    }
}
