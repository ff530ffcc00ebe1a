//! Status codes for requests that never reach a handler. tonic answers a
//! request it cannot decode with `INTERNAL` and one over the size limit
//! with `OUT_OF_RANGE`; for a CRI client both are its own mistake, which
//! gRPC spells `INVALID_ARGUMENT` and `RESOURCE_EXHAUSTED`.

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
