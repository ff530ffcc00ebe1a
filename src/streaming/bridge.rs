//! Runs exec and attach sessions against Docker: creates and starts the
//! exec (or attaches to the container), pumps the process's output frames
//! and the client's stdin between the client's channels and Docker's
//! streams, applies terminal sizes, and reports how the process ended.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::session::{Outcome, SessionIo};
use crate::api::{AttachRequest, ExecRequest};
use crate::container;
use crate::docker::{DockerApi, ExecSpec, Frame, OutputStream, ProcessStreams, TermSize};

/// How long a TTY session waits for the client's first terminal size, which
/// clients send right after connecting, before starting the process.
const FIRST_SIZE_WAIT: Duration = Duration::from_secs(1);

/// Runs `req.cmd` in the container for a client.
pub async fn exec(docker: &dyn DockerApi, req: &ExecRequest, mut io: SessionIo) -> Outcome {
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
    let exec_id = match docker.create_exec(&req.container_id, spec).await {
        Ok(id) => id,
        Err(err) => return Outcome::Failed(format!("error executing command in container: {err}")),
    };
    let streams = match docker.start_exec(&exec_id, req.tty, first_size).await {
        Ok(streams) => streams,
        Err(err) => return Outcome::Failed(format!("error executing command in container: {err}")),
    };
    // Engines before API 1.42 ignore the console size at start: resize as
    // soon as Docker has the process running (it refuses until then).
    if let Some(size) = first_size {
        for attempt in 0..20u64 {
            match docker.resize_exec(&exec_id, size).await {
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
            async move { docker.resize_exec(&exec_id, size).await }
        }
    };
    let client_gone = io.client_gone.clone();
    pump(streams, io, resizer).await;
    if client_gone.is_cancelled() {
        // The client left while the process still runs; nobody will read
        // its output, so end it.
        container::kill_exec(docker, &exec_id).await;
    }
    match container::exit_code(docker, &exec_id).await {
        Ok(code) => Outcome::Exited(code),
        Err(err) => Outcome::Failed(err.to_string()),
    }
}

/// Attaches a client to a running container's stdio.
pub async fn attach(docker: &dyn DockerApi, req: &AttachRequest, io: SessionIo) -> Outcome {
    let streams = match docker
        .attach(
            &req.container_id,
            io.stdin.is_some(),
            io.stdout.is_some(),
            io.stderr.is_some(),
        )
        .await
    {
        Ok(streams) => streams,
        Err(err) => {
            return Outcome::Failed(format!("attach to container {}: {err}", req.container_id));
        }
    };
    let container_id = req.container_id.clone();
    let resizer = move |size: TermSize| {
        let container_id = container_id.clone();
        async move { docker.resize_container(&container_id, size).await }
    };
    pump(streams, io, resizer).await;
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
async fn pump<F, Fut>(streams: ProcessStreams, io: SessionIo, resize: F)
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
    let (output, mut writer) = streams.split();
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
    let output = copy_output(output, stdout.as_ref(), stderr.as_ref());
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

/// Sends each frame of the process's output to the client's channel for
/// its stream, until the output ends or the client stops reading.
async fn copy_output(
    mut output: OutputStream,
    stdout: Option<&mpsc::Sender<Bytes>>,
    stderr: Option<&mpsc::Sender<Bytes>>,
) {
    loop {
        let (target, chunk) = match output.next().await {
            Ok(Some(Frame::Stdout(chunk))) => (stdout, chunk),
            Ok(Some(Frame::Stderr(chunk))) => (stderr, chunk),
            Ok(None) => return,
            Err(err) => {
                tracing::debug!(error = %err, "docker stream broke");
                return;
            }
        };
        if let Some(tx) = target
            && tx.send(chunk).await.is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streaming::session::{ClientSide, Wanted, channels};
    use crate::testing;

    /// Waits for `session`, which must end within 10 s.
    async fn within<F: std::future::Future>(session: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(10), session)
            .await
            .expect("the session ends")
    }

    fn wanted(stdin: bool, stderr: bool) -> Wanted {
        Wanted {
            stdin,
            stdout: true,
            stderr,
            resize: false,
        }
    }

    async fn recv(rx: &mut Option<mpsc::Receiver<Bytes>>) -> Option<Bytes> {
        rx.as_mut().expect("a channel").recv().await
    }

    #[tokio::test]
    async fn attach_sends_stdin_in_and_output_out_until_the_output_ends() {
        let t = testing::shim();
        let id = t.docker.run_container("app", false).await;
        let mut script = t.docker.script_attach(&id);
        let (mut client, io) = channels(wanted(true, true));
        let req = AttachRequest {
            container_id: id.clone(),
            stdin: true,
            stdout: true,
            stderr: true,
            tty: false,
        };
        let container = async move {
            // It echoes what it reads, in upper case, and warns on stderr.
            let line = script.read_stdin(6).await.unwrap();
            script.stdout(&line.to_ascii_uppercase()).await.unwrap();
            script.stderr(b"warn\n").await.unwrap();
            // The client's EOF is the container's.
            assert_eq!(script.stdin_to_end().await.unwrap(), b"");
            script.stdout(b"bye\n").await.unwrap();
        };
        let client = async move {
            let stdin = client.stdin.take().expect("stdin");
            stdin.send(Bytes::from_static(b"hello\n")).await.unwrap();
            assert_eq!(recv(&mut client.stdout).await.unwrap(), "HELLO\n");
            assert_eq!(recv(&mut client.stderr).await.unwrap(), "warn\n");
            drop(stdin);
            assert_eq!(recv(&mut client.stdout).await.unwrap(), "bye\n");
            // The container's output ended: so does the session.
            assert_eq!(recv(&mut client.stdout).await, None);
            assert_eq!(recv(&mut client.stderr).await, None);
        };
        let (outcome, (), ()) =
            within(async { tokio::join!(attach(&*t.docker, &req, io), container, client) }).await;
        assert!(matches!(outcome, Outcome::Exited(0)), "{outcome:?}");
    }

    #[tokio::test]
    async fn attach_to_a_tty_container_passes_its_output_through_as_it_is() {
        let t = testing::shim();
        let id = t.docker.run_container("app", true).await;
        let mut script = t.docker.script_attach(&id);
        let (mut client, io) = channels(wanted(false, false));
        let req = AttachRequest {
            container_id: id,
            stdout: true,
            tty: true,
            ..Default::default()
        };
        // What would be a stderr frame header without a TTY.
        let raw = b"\x02\x00\x00\x00\x00\x00\x00\x01x";
        let container = async move {
            script.stdout(raw).await.unwrap();
        };
        let client = async move {
            let mut got = Vec::new();
            while let Some(chunk) = recv(&mut client.stdout).await {
                got.extend_from_slice(&chunk);
            }
            got
        };
        let (outcome, (), got) =
            within(async { tokio::join!(attach(&*t.docker, &req, io), container, client) }).await;
        assert!(matches!(outcome, Outcome::Exited(0)), "{outcome:?}");
        assert_eq!(got, raw);
    }

    #[tokio::test]
    async fn attach_to_a_missing_container_fails() {
        let t = testing::shim();
        let (_client, io) = channels(wanted(false, false));
        let req = AttachRequest {
            container_id: "nope".into(),
            stdout: true,
            ..Default::default()
        };
        let outcome = attach(&*t.docker, &req, io).await;
        assert!(
            matches!(&outcome, Outcome::Failed(why) if why.contains("attach to container nope")),
            "{outcome:?}"
        );
    }

    /// Runs `req` against a scripted exec; its outcome and what the client
    /// read on stdout and stderr.
    async fn run_exec(
        t: &testing::TestShim,
        req: ExecRequest,
        script: impl std::future::Future<Output = ()>,
        client: ClientSide,
        io: SessionIo,
    ) -> (Outcome, Vec<u8>, Vec<u8>) {
        let ClientSide {
            mut stdout,
            mut stderr,
            ..
        } = client;
        let read = async move {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let (mut out_open, mut err_open) = (stdout.is_some(), stderr.is_some());
            while out_open || err_open {
                tokio::select! {
                    chunk = recv(&mut stdout), if out_open => match chunk {
                        Some(chunk) => out.extend_from_slice(&chunk),
                        None => out_open = false,
                    },
                    chunk = recv(&mut stderr), if err_open => match chunk {
                        Some(chunk) => err.extend_from_slice(&chunk),
                        None => err_open = false,
                    },
                }
            }
            (out, err)
        };
        let (outcome, (), (out, err)) =
            within(async { tokio::join!(exec(&*t.docker, &req, io), script, read) }).await;
        (outcome, out, err)
    }

    #[tokio::test]
    async fn an_exec_session_keeps_stdout_and_stderr_apart_and_reports_the_exit_code() {
        let t = testing::shim();
        let id = t.docker.run_container("app", false).await;
        let mut script = t.docker.script_exec(false);
        let (client, io) = channels(wanted(false, true));
        let req = ExecRequest {
            container_id: id.clone(),
            cmd: vec!["sh".into()],
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let process = async move {
            script.stdout(b"out 1\n").await.unwrap();
            script.stderr(b"err\n").await.unwrap();
            script.stdout(b"out 2\n").await.unwrap();
            script.exit(7);
        };
        let (outcome, out, err) = run_exec(&t, req, process, client, io).await;
        assert!(matches!(outcome, Outcome::Exited(7)), "{outcome:?}");
        assert_eq!(
            (&out[..], &err[..]),
            (&b"out 1\nout 2\n"[..], &b"err\n"[..])
        );
        assert!(
            t.docker
                .calls()
                .contains(&crate::docker::fake::Call::CreateExec(
                    id,
                    ExecSpec {
                        cmd: vec!["sh".into()],
                        stdin: false,
                        stdout: true,
                        stderr: true,
                        tty: false,
                    }
                ))
        );
    }

    // Paused time: the shim waits 5 s for Docker to record the exit.
    #[tokio::test(start_paused = true)]
    async fn an_exec_session_whose_process_closes_its_output_but_never_exits_fails() {
        let t = testing::shim();
        let id = t.docker.run_container("app", false).await;
        let mut script = t.docker.script_exec(false);
        let (client, io) = channels(wanted(false, false));
        let req = ExecRequest {
            container_id: id,
            cmd: vec!["true".into()],
            stdout: true,
            ..Default::default()
        };
        // The output ends, but Docker keeps reporting the exec running.
        let process = async move {
            script.stdout(b"done\n").await.unwrap();
            drop(script);
        };
        let (outcome, out, _) = run_exec(&t, req, process, client, io).await;
        assert_eq!(out, b"done\n");
        assert!(
            matches!(&outcome, Outcome::Failed(why) if why.contains("still runs")),
            "{outcome:?}"
        );
    }
}
