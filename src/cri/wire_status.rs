//! Status codes tonic gets wrong for a CRI client. tonic answers a request
//! it cannot decode with `INTERNAL` and one over the size limit with
//! `OUT_OF_RANGE`; for the client both are its own mistake, which gRPC
//! spells `INVALID_ARGUMENT` and `RESOURCE_EXHAUSTED`. And a call that runs
//! past the client's deadline (`grpc-timeout`) is answered `CANCELLED` by
//! tonic's own timer; [`DeadlineLayer`] answers `DEADLINE_EXCEEDED` first,
//! as the client (and critest) expect.

use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Frame;
use tonic::Code;
use tonic::body::Body;
use tonic::codegen::http::{HeaderMap, HeaderValue, Response};

/// Rewrites the status tonic gives to an undecodable or oversized request,
/// whether it comes in the headers (trailers-only) or in the trailers;
/// every other status passes untouched.
pub fn client_error_codes(mut response: Response<Body>) -> Response<Body> {
    fix(response.headers_mut());
    response.map(|body| {
        Body::new(body.map_frame(|frame| match frame.into_trailers() {
            Ok(mut trailers) => {
                fix(&mut trailers);
                Frame::trailers(trailers)
            }
            Err(frame) => frame,
        }))
    })
}

/// The starts of tonic's messages, as they travel: %-encoded, spaces too.
const DECODE_FAILED: &[u8] = b"failed%20to%20decode%20Protobuf%20message";
const TOO_LARGE: &[u8] = b"Error,%20decoded%20message%20length%20too%20large";

fn fix(headers: &mut HeaderMap) {
    let (Some(status), Some(message)) = (headers.get("grpc-status"), headers.get("grpc-message"))
    else {
        return;
    };
    let message = message.as_bytes();
    let code = match status.as_bytes() {
        b"13" if message.starts_with(DECODE_FAILED) => Code::InvalidArgument,
        b"11" if message.starts_with(TOO_LARGE) => Code::ResourceExhausted,
        _ => return,
    };
    headers.insert("grpc-status", HeaderValue::from(code as i32));
}

/// Ends a call at the client's deadline with `DEADLINE_EXCEEDED`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeadlineLayer;

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline { inner }
    }
}

/// The service [`DeadlineLayer`] makes.
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
}

impl<S, B> tower::Service<tonic::codegen::http::Request<B>> for Deadline<S>
where
    S: tower::Service<tonic::codegen::http::Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = futures_util::future::BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: tonic::codegen::http::Request<B>) -> Self::Future {
        let deadline = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| parse_grpc_timeout(v.as_bytes()));
        let call = self.inner.call(req);
        let Some(deadline) = deadline else {
            return Box::pin(call);
        };
        // tonic's timer for the same deadline started a moment earlier and
        // answers CANCELLED; this one must go off first.
        let ours = deadline.saturating_sub((deadline / 10).min(Duration::from_millis(50)));
        Box::pin(async move {
            match tokio::time::timeout(ours, call).await {
                Ok(answer) => answer,
                Err(_) => Ok(tonic::Status::deadline_exceeded(format!(
                    "the call's deadline of {deadline:?} passed before it finished"
                ))
                .into_http()),
            }
        })
    }
}

/// A `grpc-timeout` header: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: &'static str, message: &'static str) -> Response<Body> {
        let mut response = Response::new(Body::empty());
        response
            .headers_mut()
            .insert("grpc-status", HeaderValue::from_static(status));
        response
            .headers_mut()
            .insert("grpc-message", HeaderValue::from_static(message));
        response
    }

    fn code_of(response: &Response<Body>) -> &[u8] {
        response.headers()["grpc-status"].as_bytes()
    }

    #[test]
    fn undecodable_and_oversized_requests_are_the_clients_error() {
        let bad = client_error_codes(answer(
            "13",
            "failed%20to%20decode%20Protobuf%20message:%20invalid%20wire%20type",
        ));
        assert_eq!(code_of(&bad), b"3");
        let big = client_error_codes(answer(
            "11",
            "Error,%20decoded%20message%20length%20too%20large:%20found%2017000000%20bytes",
        ));
        assert_eq!(code_of(&big), b"8");
        let ours = client_error_codes(answer("13", "inspect%20container%20x:%20boom"));
        assert_eq!(code_of(&ours), b"13");
        let fine = client_error_codes(Response::new(Body::empty()));
        assert!(fine.headers().get("grpc-status").is_none());
    }

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(
            parse_grpc_timeout(b"100m"),
            Some(Duration::from_millis(100))
        );
        assert_eq!(parse_grpc_timeout(b"2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_grpc_timeout(b"99999u"),
            Some(Duration::from_micros(99999))
        );
        for bad in [&b""[..], b"m", b"123456789m", b"10x", b"-1S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_past_its_deadline_is_deadline_exceeded() {
        use tower::{Service, ServiceExt};
        let slow = tower::service_fn(|_req: tonic::codegen::http::Request<()>| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
        });
        let mut service = tower::Layer::layer(&DeadlineLayer, slow);
        let mut req = tonic::codegen::http::Request::new(());
        req.headers_mut()
            .insert("grpc-timeout", HeaderValue::from_static("200m"));
        let answer = service.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(answer.headers()["grpc-status"], "4");
    }

    #[tokio::test]
    async fn a_status_in_the_trailers_is_rewritten_too() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("13"));
        trailers.insert(
            "grpc-message",
            HeaderValue::from_static(
                "failed%20to%20decode%20Protobuf%20message:%20buffer%20underflow",
            ),
        );
        let frames =
            futures_util::stream::iter([Ok::<_, std::convert::Infallible>(
                Frame::<bytes::Bytes>::trailers(trailers),
            )]);
        let response = Response::new(Body::new(http_body_util::StreamBody::new(frames)));
        let collected = client_error_codes(response)
            .into_body()
            .collect()
            .await
            .unwrap();
        assert_eq!(collected.trailers().unwrap()["grpc-status"], "3");
    }
}
