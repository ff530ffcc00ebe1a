//! `GetContainerEvents`: the live view's changes as CRI container events,
//! each with the pod's sandbox status and its containers' statuses, as the
//! kubelet's evented PLEG expects.

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tonic::codegen::BoxStream;

use crate::api::{ContainerEventResponse, ContainerEventType, ContainerStatus};
use crate::container;
use crate::sandbox;
use crate::shim::Shim;
use crate::view::{Change, ChangeType, Kind};

/// Every change from now on, until the client goes away. A reader that
/// falls too far behind skips what it missed (the kubelet relists anyway).
pub fn subscribe(shim: Arc<Shim>) -> BoxStream<ContainerEventResponse> {
    let mut changes = shim.view.subscribe();
    Box::pin(channel_stream(move |tx| async move {
        loop {
            let change = match changes.recv().await {
                Ok(change) => change,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "container event reader fell behind");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let Some(event) = to_event(&shim, &change).await else {
                continue;
            };
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
    }))
}

/// Runs `produce` with the sending half of a channel; the stream yields
/// what it sends and ends when it returns or the stream is dropped.
fn channel_stream<T, F, Fut>(produce: F) -> tokio_stream::wrappers::ReceiverStream<T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(produce(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// The CRI event for a change; `None` when its pod is no longer known,
/// since the kubelet needs the pod's status to place an event.
async fn to_event(shim: &Shim, change: &Change) -> Option<ContainerEventResponse> {
    let sandbox_id = change.entry.sandbox_id();
    let sandbox = match change.entry.kind {
        Kind::Sandbox => change.entry.clone(),
        Kind::Container => match shim.view.lookup(sandbox_id) {
            crate::view::Lookup::Found(entry) => entry,
            _ => return None,
        },
    };
    let mut statuses: Vec<ContainerStatus> = Vec::new();
    for entry in shim.view.containers_of(sandbox_id) {
        let image = container::image_of(&shim.view, &entry.inspected)
            .await
            .unwrap_or_default();
        statuses.push(container::status::status_from_inspect(
            &entry.inspected,
            image.as_deref(),
        ));
    }
    let container_event_type = match change.change {
        ChangeType::Created => ContainerEventType::ContainerCreatedEvent,
        ChangeType::Started => ContainerEventType::ContainerStartedEvent,
        ChangeType::Stopped => ContainerEventType::ContainerStoppedEvent,
        ChangeType::Deleted => ContainerEventType::ContainerDeletedEvent,
    };
    Some(ContainerEventResponse {
        container_id: change.entry.id().to_string(),
        container_event_type: container_event_type as i32,
        created_at: change.at,
        pod_sandbox_status: Some(sandbox::status_of(&shim.sandboxes(), &sandbox.inspected)),
        containers_statuses: statuses,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt;

    use super::*;
    use crate::testing;

    #[tokio::test]
    async fn container_changes_become_events_with_the_pod_status() {
        let t = testing::shim();
        let sandbox = sandbox::run(&t.shim.sandboxes(), crate::testing::pod_request("web"))
            .await
            .unwrap();
        let mut events = subscribe(t.shim.clone());
        let id = crate::testing::create_started(&t.shim, &sandbox, "app").await;
        container::remove(&t.shim.containers(), &id).await.unwrap();

        let mut seen = Vec::new();
        while seen.len() < 3 {
            let event = tokio::time::timeout(Duration::from_secs(5), events.next())
                .await
                .expect("an event in time")
                .expect("the stream stays open")
                .expect("an event, not an error");
            assert_eq!(event.container_id, id);
            let pod = event.pod_sandbox_status.expect("the pod's status");
            assert_eq!(pod.id, sandbox);
            seen.push(event.container_event_type);
        }
        assert_eq!(
            seen,
            [
                ContainerEventType::ContainerCreatedEvent as i32,
                ContainerEventType::ContainerStartedEvent as i32,
                ContainerEventType::ContainerDeletedEvent as i32,
            ]
        );
    }
}
