//! Exec, Attach and PortForward through the streaming server, with our own
//! SPDY and WebSocket clients, against containers in real Docker.

use std::time::Duration;

use dockershim::cri::*;
use hyper::StatusCode;
use tonic::Code;

use crate::support::stream_client::*;
use crate::support::*;

struct Pod {
    _cleanup: Cleanup,
    _shim: Shim,
    rt: dockershim::cri::v1::runtime_service_client::RuntimeServiceClient<
        tonic::transport::Channel,
    >,
    pod_id: String,
    ctr: String,
}

/// A shim with a running pod and a long-running busybox container.
async fn pod_with(script: &str, stdin: bool, tty: bool) -> Pod {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let pod = pod_config(&cleanup, &unique("stream"));
    let pod_id = run_pod(&mut rt, &pod).await;
    let mut config = container_config(&cleanup, "main", script);
    config.stdin = stdin;
    config.tty = tty;
    let ctr = start_container(&mut rt, &pod_id, &pod, config).await;
    Pod {
        _cleanup: cleanup,
        _shim: shim,
        rt,
        pod_id,
        ctr,
    }
}

async fn exec_url(pod: &mut Pod, cmd: &[&str], stdin: bool, tty: bool) -> String {
    let url = pod
        .rt
        .exec(ExecRequest {
            container_id: pod.ctr.clone(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            tty,
            stdin,
            stdout: true,
            stderr: !tty,
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    url
}

#[tokio::test]
async fn exec_over_every_spdy_version_reports_output_and_exit_codes() {
    let mut pod = pod_with("sleep 1000", false, false).await;
    for protocol in [
        "v5.channel.k8s.io",
        "v4.channel.k8s.io",
        "v3.channel.k8s.io",
        "v2.channel.k8s.io",
        "channel.k8s.io",
    ] {
        for code in [0, 3] {
            let url = exec_url(
                &mut pod,
                &["sh", "-c", &format!("echo out; echo err >&2; exit {code}")],
                false,
                false,
            )
            .await;
            let session = SpdySession::open(&url, protocol, false, true, true, false).await;
            let done = session.finish().await;
            assert_eq!(done.stdout(), "out\n", "{protocol}");
            assert_eq!(done.stderr, b"err\n", "{protocol}");
            let json = protocol.starts_with("v4") || protocol.starts_with("v5");
            match (json, code) {
                (true, 0) => assert_eq!(done.error_json()["status"], "Success", "{protocol}"),
                (true, _) => {
                    let status = done.error_json();
                    assert_eq!(status["reason"], "NonZeroExitCode", "{protocol}");
                    assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
                    assert_eq!(status["details"]["causes"][0]["message"], "3");
                }
                (false, 0) => assert!(
                    done.error.is_empty(),
                    "{protocol}: {:?}",
                    String::from_utf8_lossy(&done.error)
                ),
                (false, _) => assert!(
                    String::from_utf8_lossy(&done.error).contains("exit code 3"),
                    "{protocol}"
                ),
            }
        }
    }
}

#[tokio::test]
async fn exec_stdin_is_piped_and_closed_and_large_output_is_byte_exact() {
    let mut pod = pod_with("sleep 1000", false, false).await;
    let url = exec_url(&mut pod, &["sh", "-c", "cat; echo end"], true, false).await;
    let session = SpdySession::open(&url, "v4.channel.k8s.io", true, true, true, false).await;
    session.write_stdin(b"hello\nworld\n").await;
    session.close_stdin().await;
    let done = session.finish().await;
    assert_eq!(done.stdout(), "hello\nworld\nend\n");
    assert_eq!(done.error_json()["status"], "Success");

    // Several MiB, byte-exact.
    let url = exec_url(&mut pod, &["seq", "1", "600000"], false, false).await;
    let done = SpdySession::open(&url, "v4.channel.k8s.io", false, true, true, false)
        .await
        .finish()
        .await;
    let expected: String = (1..=600000).map(|n| format!("{n}\n")).collect();
    assert!(expected.len() > 4_000_000);
    assert_eq!(done.stdout.len(), expected.len());
    assert!(done.stdout == expected.as_bytes(), "output differs");
}

#[tokio::test]
async fn the_session_ends_when_the_process_exits_even_with_stdin_open() {
    let mut pod = pod_with("sleep 1000", false, false).await;
    let url = exec_url(&mut pod, &["sh", "-c", "echo bye"], true, false).await;
    let session = SpdySession::open(&url, "v4.channel.k8s.io", true, true, true, false).await;
    let done = tokio::time::timeout(Duration::from_secs(20), session.finish())
        .await
        .expect("session did not end");
    assert_eq!(done.stdout(), "bye\n");
}

/// Engines from API 1.42 take the terminal size when an exec starts; older
/// ones (Docker 20.10) only after, so a command that asks at once can race
/// the resize there, as it does with `docker exec -t` itself.
async fn size_at_start_command() -> Vec<&'static str> {
    let api = docker().await.version().await.unwrap().api_version.unwrap();
    let (major, minor) = api.split_once('.').unwrap();
    if (major.parse::<u32>().unwrap(), minor.parse::<u32>().unwrap()) >= (1, 42) {
        vec!["stty", "size"]
    } else {
        eprintln!(
            "Docker API {api} cannot size a TTY at exec start: checking the size right after start instead"
        );
        vec!["sh", "-c", "sleep 0.5; stty size"]
    }
}

#[tokio::test]
async fn a_tty_has_the_clients_size_from_the_first_command_and_after_resizes() {
    let mut pod = pod_with("sleep 1000", false, false).await;
    let url = exec_url(&mut pod, &size_at_start_command().await, false, true).await;
    let session = SpdySession::open(&url, "v4.channel.k8s.io", false, true, false, true).await;
    session.resize(123, 45).await;
    let done = session.finish().await;
    assert_eq!(done.stdout().trim(), "45 123");

    // A shell reading commands; resize in the middle.
    let url = exec_url(&mut pod, &["sh"], true, true).await;
    let session = SpdySession::open(&url, "v4.channel.k8s.io", true, true, false, true).await;
    session.resize(80, 24).await;
    session.write_stdin(b"stty size\n").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    session.resize(100, 30).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    session.write_stdin(b"stty size; exit 0\n").await;
    let done = session.finish().await;
    let out = done.stdout();
    assert!(out.contains("24 80"), "{out:?}");
    assert!(out.contains("30 100"), "{out:?}");

    // TTY output is raw bytes, even when a chunk starts with 0x01 0x02.
    let url = exec_url(
        &mut pod,
        &["printf", "\\001\\002ABCDEFGH-tty-raw"],
        false,
        true,
    )
    .await;
    let session = SpdySession::open(&url, "v4.channel.k8s.io", false, true, false, true).await;
    session.resize(80, 24).await;
    let done = session.finish().await;
    assert_eq!(done.stdout, b"\x01\x02ABCDEFGH-tty-raw");
}

#[tokio::test]
async fn exec_over_websocket_protocols() {
    let mut pod = pod_with("sleep 1000", false, false).await;
    for offered in [
        "v5.channel.k8s.io",
        "v4.channel.k8s.io",
        "v4.base64.channel.k8s.io",
        "channel.k8s.io",
        "base64.channel.k8s.io",
    ] {
        let url = exec_url(
            &mut pod,
            &["sh", "-c", "echo out; echo err >&2; exit 4"],
            false,
            false,
        )
        .await;
        let ws = WsSession::connect(&url, offered).await;
        assert_eq!(ws.protocol, offered);
        let done = ws.finish().await;
        assert_eq!(done.stdout(), "out\n", "{offered}");
        assert_eq!(done.stderr, b"err\n", "{offered}");
        if offered.starts_with("v4") || offered.starts_with("v5") {
            assert_eq!(
                done.error_json()["details"]["causes"][0]["message"],
                "4",
                "{offered}"
            );
        } else {
            assert!(
                String::from_utf8_lossy(&done.error).contains("exit code 4"),
                "{offered}"
            );
        }
    }

    // v5: stdin, then the close signal [255, 0] is the process's EOF.
    let url = exec_url(&mut pod, &["sh", "-c", "cat; echo eof"], true, false).await;
    let mut ws = WsSession::connect(&url, "v5.channel.k8s.io, v4.channel.k8s.io").await;
    assert_eq!(ws.protocol, "v5.channel.k8s.io");
    ws.send(0, b"piped\n").await;
    ws.send(255, &[0]).await;
    let done = ws.finish().await;
    assert_eq!(done.stdout(), "piped\neof\n");
    assert_eq!(done.error_json()["status"], "Success");

    // TTY size over the resize channel.
    let url = exec_url(&mut pod, &size_at_start_command().await, false, true).await;
    let mut ws = WsSession::connect(&url, "v5.channel.k8s.io").await;
    ws.send(4, br#"{"Width":99,"Height":11}"#).await;
    let done = ws.finish().await;
    assert_eq!(
        done.stdout().trim(),
        "11 99",
        "stdout {:?} stderr {:?} error {:?}",
        done.stdout,
        done.stderr,
        String::from_utf8_lossy(&done.error)
    );
}

#[tokio::test]
async fn attach_streams_a_running_containers_stdio() {
    let mut pod = pod_with("while read line; do echo got:$line; done", true, false).await;
    let url = pod
        .rt
        .attach(AttachRequest {
            container_id: pod.ctr.clone(),
            stdin: true,
            tty: false,
            stdout: true,
            stderr: true,
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    let mut session = SpdySession::open(&url, "v4.channel.k8s.io", true, true, true, false).await;
    session.write_stdin(b"one\n").await;
    let stdout = session.stdout.as_mut().unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("got:one") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stdout.recv())
            .await
            .expect("attach output")
            .unwrap()
            .unwrap();
        seen.extend_from_slice(&chunk);
    }
    // Ending the container's input ends the container, and the session.
    session.close_stdin().await;
    let done = tokio::time::timeout(Duration::from_secs(20), session.finish())
        .await
        .expect("attach did not end");
    assert_eq!(done.error_json()["status"], "Success");
}

#[tokio::test]
async fn port_forward_reaches_a_server_in_the_pod_over_many_connections() {
    let mut pod = pod_with(
        "echo forwarded-body > /tmp/index.html; httpd -f -p 8080 -h /tmp",
        false,
        false,
    )
    .await;
    let url = pod
        .rt
        .port_forward(PortForwardRequest {
            pod_sandbox_id: pod.pod_id.clone(),
            port: vec![8080],
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    let (status, chosen, conn) = spdy_upgrade(&url, &["portforward.k8s.io"]).await;
    assert_eq!(
        (status, chosen.as_deref()),
        (StatusCode::SWITCHING_PROTOCOLS, Some("portforward.k8s.io"))
    );
    let conn = conn.unwrap();
    // httpd may still be starting: retry the first request briefly.
    let fetch = |request_id: String| {
        let conn = conn.clone();
        async move {
            let _error = open(
                &conn,
                &[
                    ("streamtype", "error"),
                    ("port", "8080"),
                    ("requestid", &request_id),
                ],
            )
            .await;
            let mut data = open(
                &conn,
                &[
                    ("streamtype", "data"),
                    ("port", "8080"),
                    ("requestid", &request_id),
                ],
            )
            .await;
            data.send(bytes::Bytes::from_static(
                b"GET /index.html HTTP/1.0\r\n\r\n",
            ))
            .await
            .unwrap();
            String::from_utf8_lossy(&read_all(&mut data).await).into_owned()
        }
    };
    let ready = eventually(Duration::from_secs(10), || {
        let fetch = &fetch;
        async move {
            fetch(format!("probe-{}", unique("r")))
                .await
                .contains("forwarded-body")
        }
    })
    .await;
    assert!(ready, "the server in the pod never answered");
    let answers = futures_util::future::join_all((0..5).map(|i| fetch(i.to_string()))).await;
    for answer in answers {
        assert!(
            answer.starts_with("HTTP/1.") && answer.contains("forwarded-body"),
            "{answer:?}"
        );
    }
    // A port the request did not name is refused.
    let refused = conn
        .open(
            [("streamtype", "data"), ("port", "9999"), ("requestid", "x")]
                .into_iter()
                .collect(),
        )
        .await;
    if let Ok(mut stream) = refused {
        assert!(stream.recv().await.is_err() || read_all(&mut stream).await.is_empty());
    }
}

#[tokio::test]
async fn tokens_are_single_use_and_requests_are_validated() {
    let mut pod = pod_with("sleep 1000", false, false).await;
    let url = exec_url(&mut pod, &["true"], false, false).await;
    let done = SpdySession::open(&url, "v4.channel.k8s.io", false, true, true, false)
        .await
        .finish()
        .await;
    assert_eq!(done.error_json()["status"], "Success");
    let (status, _, _) = spdy_upgrade(&url, &["v4.channel.k8s.io"]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a used token works again");
    let unknown = format!("{}/exec/AAAAAAAA", url.rsplit_once("/exec/").unwrap().0);
    let (status, _, _) = spdy_upgrade(&unknown, &["v4.channel.k8s.io"]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // An unsupported protocol: 403, and the token is gone.
    let url = exec_url(&mut pod, &["true"], false, false).await;
    let (status, _, _) = spdy_upgrade(&url, &["v9.channel.k8s.io"]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let bad = |tty: bool, stdout: bool, stderr: bool| ExecRequest {
        container_id: pod.ctr.clone(),
        cmd: vec!["true".into()],
        tty,
        stdin: false,
        stdout,
        stderr,
    };
    let err = pod.rt.exec(bad(true, true, true)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = pod.rt.exec(bad(false, false, false)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = pod
        .rt
        .exec(ExecRequest {
            container_id: "f00d".repeat(16),
            cmd: vec!["true".into()],
            stdout: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = pod
        .rt
        .port_forward(PortForwardRequest {
            pod_sandbox_id: pod.ctr.clone(),
            port: vec![80],
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::NotFound,
        "a container id is not a sandbox id"
    );
    pod.rt
        .stop_container(StopContainerRequest {
            container_id: pod.ctr.clone(),
            timeout: 0,
        })
        .await
        .unwrap();
    let err = pod
        .rt
        .exec(ExecRequest {
            container_id: pod.ctr.clone(),
            cmd: vec!["true".into()],
            stdout: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn port_forward_over_websocket_tunnel_and_channels() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut pod = pod_with(
        "echo ws-forwarded > /tmp/index.html; httpd -f -p 8080 -h /tmp",
        false,
        false,
    )
    .await;
    let request = PortForwardRequest {
        pod_sandbox_id: pod.pod_id.clone(),
        port: vec![8080],
    };
    // Wait for httpd through SPDY first.
    let url = pod
        .rt
        .port_forward(request.clone())
        .await
        .unwrap()
        .into_inner()
        .url;
    let (_, _, conn) = spdy_upgrade(&url, &["portforward.k8s.io"]).await;
    let conn = conn.unwrap();
    let ready = eventually(Duration::from_secs(10), || {
        let conn = conn.clone();
        async move {
            let id = unique("r");
            let _e = open(
                &conn,
                &[
                    ("streamtype", "error"),
                    ("port", "8080"),
                    ("requestid", &id),
                ],
            )
            .await;
            let mut d = open(
                &conn,
                &[("streamtype", "data"), ("port", "8080"), ("requestid", &id)],
            )
            .await;
            d.send(bytes::Bytes::from_static(
                b"GET /index.html HTTP/1.0\r\n\r\n",
            ))
            .await
            .unwrap();
            String::from_utf8_lossy(&read_all(&mut d).await).contains("ws-forwarded")
        }
    })
    .await;
    assert!(ready);

    // SPDY tunnelled in a WebSocket.
    let url = pod
        .rt
        .port_forward(request.clone())
        .await
        .unwrap()
        .into_inner()
        .url;
    let ws = WsSession::connect(&url, "SPDY/3.1+portforward.k8s.io").await;
    assert_eq!(ws.protocol, "SPDY/3.1+portforward.k8s.io");
    let io = dockershim::streaming::portforward::ws_byte_stream(ws.socket);
    let conn = dockershim::streaming::spdy::Connection::client(io, Default::default());
    let _e = open(
        &conn,
        &[
            ("streamtype", "error"),
            ("port", "8080"),
            ("requestid", "1"),
        ],
    )
    .await;
    let mut d = open(
        &conn,
        &[("streamtype", "data"), ("port", "8080"), ("requestid", "1")],
    )
    .await;
    d.send(bytes::Bytes::from_static(
        b"GET /index.html HTTP/1.0\r\n\r\n",
    ))
    .await
    .unwrap();
    let answer = String::from_utf8_lossy(&read_all(&mut d).await).into_owned();
    assert!(answer.contains("ws-forwarded"), "{answer:?}");

    // The channel protocol, ports in the query.
    let url = pod.rt.port_forward(request).await.unwrap().into_inner().url;
    let mut ws = WsSession::connect(&format!("{url}?port=8080"), "v4.channel.k8s.io").await;
    assert_eq!(ws.protocol, "v4.channel.k8s.io");
    let mut first = Vec::new();
    while first.len() < 2 {
        if let Some(Ok(Message::Binary(data))) = ws.socket.next().await {
            first.push(data.to_vec());
        }
    }
    assert!(
        first.contains(&vec![0, 0x90, 0x1f]) && first.contains(&vec![1, 0x90, 0x1f]),
        "{first:?}"
    );
    ws.send(0, b"GET /index.html HTTP/1.0\r\n\r\n").await;
    let mut body = Vec::new();
    while !String::from_utf8_lossy(&body).contains("ws-forwarded") {
        match tokio::time::timeout(Duration::from_secs(10), ws.socket.next())
            .await
            .expect("forwarded data")
        {
            Some(Ok(Message::Binary(data))) if data.first() == Some(&0) => {
                body.extend_from_slice(&data[1..])
            }
            Some(Ok(_)) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
    let _ = ws.socket.close(None).await;
}

#[tokio::test]
async fn a_client_that_disconnects_ends_its_exec() {
    let mut pod = pod_with("sleep 1000", false, false).await;
    let url = exec_url(&mut pod, &["sleep", "731"], false, false).await;
    let session = SpdySession::open(&url, "v4.channel.k8s.io", false, true, true, false).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    session.conn.close().await;
    drop(session);
    let ctr = pod.ctr.clone();
    let gone = eventually(Duration::from_secs(10), || {
        let (mut rt, ctr) = (pod.rt.clone(), ctr.clone());
        async move {
            let (ps, _, _) = exec(&mut rt, &ctr, &["ps", "-o", "args"]).await;
            !ps.contains("sleep 731")
        }
    })
    .await;
    assert!(gone, "the exec outlived its client");
}

#[tokio::test]
async fn garbage_on_a_session_closes_that_session_not_the_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut pod = pod_with("sleep 1000", false, false).await;
    let url = exec_url(&mut pod, &["true"], false, false).await;
    let uri: hyper::Uri = url.parse().unwrap();
    let mut tcp = tokio::net::TcpStream::connect(uri.authority().unwrap().as_str())
        .await
        .unwrap();
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n",
        uri.path()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"));
    // A control frame claiming an absurd length, then noise.
    tcp.write_all(&[0x80, 0x03, 0x00, 0x01, 0x00, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    tcp.write_all(&[0x55; 256]).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the server kept a broken session open");

    // The server still serves others.
    let url = exec_url(&mut pod, &["echo", "alive"], false, false).await;
    let done = SpdySession::open(&url, "v4.channel.k8s.io", false, true, true, false)
        .await
        .finish()
        .await;
    assert_eq!(done.stdout(), "alive\n");
}
