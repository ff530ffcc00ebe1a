//! A fast path for the kubelet's relist: `ListPodSandbox` and
//! `ListContainers` without a filter are answered with the encoded
//! response kept per generation of the live view.
//!
//! The kubelet asks both every second, and most seconds nothing changed;
//! copying and encoding hundreds of messages each time was most of the
//! shim's CPU on a busy node. Filtered lists, compressed requests and
//! sandboxes whose network is still being set up take the normal path.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;
use prost::Message;
use tonic::body::Body;
use tonic::codegen::http::{self, HeaderMap, HeaderValue, Request, Response};
use tower::{Layer, Service};

use crate::api::ListPodSandboxResponse;
use crate::api::MAX_MESSAGE_SIZE;
use crate::api::{ListContainersRequest, ListContainersResponse, ListPodSandboxRequest};
use crate::shim::Shim;
use crate::view::GenerationCache;

const LIST_SANDBOXES: &str = "/runtime.v1.RuntimeService/ListPodSandbox";
const LIST_CONTAINERS: &str = "/runtime.v1.RuntimeService/ListContainers";

#[derive(Clone, Copy, PartialEq, Eq)]
enum List {
    Sandboxes,
    Containers,
}

/// gRPC frames of the unfiltered lists, kept per view generation; `None`
/// when a list is too large to answer here.
#[derive(Default)]
struct Frames {
    sandboxes: GenerationCache<Option<Bytes>>,
    containers: GenerationCache<Option<Bytes>>,
}

/// Puts the fast path in front of the CRI services.
#[derive(Clone)]
pub struct RelistLayer {
    shim: Arc<Shim>,
    frames: Arc<Frames>,
}

impl RelistLayer {
    /// Answers from `shim`'s live view.
    pub fn new(shim: Arc<Shim>) -> Self {
        Self {
            shim,
            frames: Arc::default(),
        }
    }
}

impl<S> Layer<S> for RelistLayer {
    type Service = Relist<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Relist {
            inner,
            shim: self.shim.clone(),
            frames: self.frames.clone(),
        }
    }
}

/// The service [`RelistLayer`] makes.
#[derive(Clone)]
pub struct Relist<S> {
    inner: S,
    shim: Arc<Shim>,
    frames: Arc<Frames>,
}

impl<S> Service<Request<Body>> for Relist<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = futures_util::future::BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let list = match req.uri().path() {
            LIST_SANDBOXES => List::Sandboxes,
            LIST_CONTAINERS => List::Containers,
            _ => return Box::pin(self.inner.call(req)),
        };
        if req.headers().contains_key("grpc-encoding") {
            return Box::pin(self.inner.call(req));
        }
        // The ready service goes into the future; a clone stays for the
        // next call, as tower asks.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (shim, frames) = (self.shim.clone(), self.frames.clone());
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let bytes = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(status) => return Ok(status.into_http()),
            };
            if is_unfiltered(list, &bytes)
                && let Some(frame) = frames.get(&shim, list)
            {
                return Ok(grpc_response(frame));
            }
            inner
                .call(Request::from_parts(
                    parts,
                    Body::new(http_body_util::Full::new(bytes)),
                ))
                .await
        })
    }
}

/// True when the request is one uncompressed message with no filter, or
/// an empty one (the kubelet sends both).
fn is_unfiltered(list: List, bytes: &[u8]) -> bool {
    let Some((&0, rest)) = bytes.split_first() else {
        return false;
    };
    let Some((len, payload)) = rest.split_first_chunk::<4>() else {
        return false;
    };
    if usize::try_from(u32::from_be_bytes(*len)).ok() != Some(payload.len()) {
        return false;
    }
    match list {
        List::Sandboxes => ListPodSandboxRequest::decode(payload)
            .is_ok_and(|r| r.filter.unwrap_or_default() == Default::default()),
        List::Containers => ListContainersRequest::decode(payload)
            .is_ok_and(|r| r.filter.unwrap_or_default() == Default::default()),
    }
}

impl Frames {
    /// The framed response for the view as it is now; `None` when the fast
    /// path must not answer.
    fn get(&self, shim: &Shim, list: List) -> Option<Bytes> {
        // A sandbox whose network is being set up shows as not ready, which
        // is not a change of the view.
        if list == List::Sandboxes
            && !crate::sandbox::readiness::caches_current(shim.network.as_ref())
        {
            return None;
        }
        let slot = match list {
            List::Sandboxes => &self.sandboxes,
            List::Containers => &self.containers,
        };
        slot.get(shim.view.generation(), || frame(shim, list))
    }
}

/// The unfiltered list, encoded and framed as gRPC sends a message.
fn frame(shim: &Shim, list: List) -> Option<Bytes> {
    let payload = match list {
        List::Sandboxes => ListPodSandboxResponse {
            items: crate::sandbox::list(&shim.sandboxes(), None),
        }
        .encode_to_vec(),
        List::Containers => ListContainersResponse {
            containers: crate::container::list(&shim.containers(), None),
        }
        .encode_to_vec(),
    };
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|len| *len as usize <= MAX_MESSAGE_SIZE)?;
    let mut frame = BytesMut::with_capacity(payload.len() + 5);
    frame.put_u8(0);
    frame.put_u32(len);
    frame.extend_from_slice(&payload);
    Some(frame.freeze())
}

/// A successful unary gRPC response carrying one framed message.
fn grpc_response(frame: Bytes) -> Response<Body> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let frames = futures_util::stream::iter([
        Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(frame)),
        Ok(hyper::body::Frame::trailers(trailers)),
    ]);
    let mut response = Response::new(Body::new(http_body_util::StreamBody::new(frames)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ContainerFilter, PodSandboxFilter};

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0];
        frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn only_requests_without_a_filter_take_the_fast_path() {
        let none = ListContainersRequest { filter: None }.encode_to_vec();
        let empty = ListContainersRequest {
            filter: Some(ContainerFilter::default()),
        }
        .encode_to_vec();
        let by_id = ListContainersRequest {
            filter: Some(ContainerFilter {
                id: "abc".into(),
                ..Default::default()
            }),
        }
        .encode_to_vec();
        assert!(is_unfiltered(List::Containers, &framed(&none)));
        assert!(is_unfiltered(List::Containers, &framed(&empty)));
        assert!(!is_unfiltered(List::Containers, &framed(&by_id)));

        let sandboxes = ListPodSandboxRequest {
            filter: Some(PodSandboxFilter {
                label_selector: [("a".to_string(), "b".to_string())].into(),
                ..Default::default()
            }),
        }
        .encode_to_vec();
        assert!(!is_unfiltered(List::Sandboxes, &framed(&sandboxes)));
        assert!(is_unfiltered(List::Sandboxes, &framed(&[])));

        let mut compressed = framed(&none);
        compressed[0] = 1;
        assert!(!is_unfiltered(List::Containers, &compressed));
        assert!(!is_unfiltered(List::Containers, &[0, 0, 0]));
        assert!(!is_unfiltered(List::Containers, &[0, 0, 0, 0, 9]));
    }

    /// Answers every request the fast path passes on with UNIMPLEMENTED,
    /// so a test sees which path answered.
    #[derive(Clone)]
    struct Inner;

    impl Service<Request<Body>> for Inner {
        type Response = Response<Body>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Response<Body>, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<Body>) -> Self::Future {
            std::future::ready(Ok(tonic::Status::unimplemented("inner").into_http()))
        }
    }

    async fn ask(relist: &mut Relist<Inner>, path: &str, payload: &[u8]) -> Response<Body> {
        let req = Request::builder()
            .uri(path)
            .body(Body::new(http_body_util::Full::new(Bytes::from(framed(
                payload,
            )))))
            .unwrap();
        relist.call(req).await.unwrap()
    }

    async fn body(response: Response<Body>) -> Bytes {
        response.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn unfiltered_lists_are_answered_from_the_view_and_follow_its_changes() {
        let t = crate::testing::shim();
        let mut relist = RelistLayer::new(t.shim.clone()).layer(Inner);
        let empty = ListPodSandboxRequest::default().encode_to_vec();

        let before = body(ask(&mut relist, LIST_SANDBOXES, &empty).await).await;
        assert_eq!(&before[..], framed(&[]));

        let pod = crate::testing::pod_request("web");
        let id = crate::sandbox::run(&t.shim.sandboxes(), pod).await.unwrap();
        let after = body(ask(&mut relist, LIST_SANDBOXES, &empty).await).await;
        let listed = ListPodSandboxResponse::decode(&after[5..]).unwrap();
        assert_eq!(listed.items.len(), 1);
        assert_eq!(listed.items[0].id, id);
        assert_eq!(
            listed.items,
            crate::sandbox::list(&t.shim.sandboxes(), None)
        );

        // Nothing changed: the same encoded frame, not a rebuilt one.
        let frames = relist.frames.clone();
        let first = frames.get(&t.shim, List::Sandboxes).unwrap();
        let again = frames.get(&t.shim, List::Sandboxes).unwrap();
        assert_eq!(first.as_ptr(), again.as_ptr());

        let containers = ListContainersRequest::default().encode_to_vec();
        let answer = body(ask(&mut relist, LIST_CONTAINERS, &containers).await).await;
        assert_eq!(&answer[..], framed(&[]));
    }

    #[tokio::test]
    async fn filtered_lists_and_other_calls_take_the_normal_path() {
        let t = crate::testing::shim();
        let mut relist = RelistLayer::new(t.shim.clone()).layer(Inner);
        let filtered = ListPodSandboxRequest {
            filter: Some(PodSandboxFilter {
                id: "abc".into(),
                ..Default::default()
            }),
        }
        .encode_to_vec();
        for (path, payload) in [
            (LIST_SANDBOXES, filtered),
            ("/runtime.v1.RuntimeService/Version", vec![]),
        ] {
            let response = ask(&mut relist, path, &payload).await;
            let status = tonic::Status::from_header_map(response.headers()).unwrap();
            assert_eq!(status.code(), tonic::Code::Unimplemented);
        }
    }

    #[tokio::test]
    async fn a_sandbox_is_not_ready_while_its_network_add_runs_in_status_list_and_relist() {
        use crate::api::{PodSandboxState, PodSandboxStateValue};
        use crate::network::fake::{FakeNetwork, NetCall};
        let mut t = crate::testing::shim();
        let fake = FakeNetwork::new();
        Arc::get_mut(&mut t.shim).unwrap().network = fake.clone();
        let mut relist = RelistLayer::new(t.shim.clone()).layer(Inner);
        let empty = ListPodSandboxRequest::default().encode_to_vec();
        let sandboxes = t.shim.sandboxes();
        let ready = |state: PodSandboxState| state as i32;
        let only_ready = || {
            Some(PodSandboxFilter {
                state: Some(PodSandboxStateValue {
                    state: ready(PodSandboxState::SandboxReady),
                }),
                ..Default::default()
            })
        };

        let stall = fake.stall_next_add();
        let running = crate::sandbox::run(&sandboxes, crate::testing::pod_request("web"));
        let during = async {
            stall.started().await;
            let id = match fake.changes().first() {
                Some(NetCall::Begin(id)) => id.clone(),
                other => panic!("no setup began: {other:?}"),
            };
            let status = crate::sandbox::status(&sandboxes, &id, false)
                .await
                .unwrap()
                .status
                .unwrap();
            assert_eq!(status.state, ready(PodSandboxState::SandboxNotready));
            assert!(status.network.is_none_or(|n| n.ip.is_empty()));
            let listed = crate::sandbox::list(&sandboxes, None);
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].state, ready(PodSandboxState::SandboxNotready));
            assert!(crate::sandbox::list(&sandboxes, only_ready()).is_empty());
            // The relist fast path does not answer from its frame: the
            // normal path (here the inner service) does.
            let response = ask(&mut relist, LIST_SANDBOXES, &empty).await;
            let answered = tonic::Status::from_header_map(response.headers());
            assert_eq!(answered.map(|s| s.code()), Some(tonic::Code::Unimplemented));
            stall.release();
            id
        };
        let (ran, id) = tokio::join!(running, during);
        assert_eq!(ran.unwrap(), id);

        let status = crate::sandbox::status(&sandboxes, &id, false)
            .await
            .unwrap()
            .status
            .unwrap();
        assert_eq!(status.state, ready(PodSandboxState::SandboxReady));
        assert_eq!(status.network.unwrap().ip, "10.88.0.1");
        let listed = crate::sandbox::list(&sandboxes, only_ready());
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].state, ready(PodSandboxState::SandboxReady));
        let framed = body(ask(&mut relist, LIST_SANDBOXES, &empty).await).await;
        let relisted = ListPodSandboxResponse::decode(&framed[5..]).unwrap();
        assert_eq!(relisted.items, listed);
    }
}
