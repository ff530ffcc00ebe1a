//! Keeps the [`View`] current from Docker's event stream.
//!
//! The stream is opened with `since` set to just before the last full list,
//! so nothing that happened between the list and the subscription is
//! missed (a replayed event only causes one more inspect). When the stream
//! ends (Docker restarted, the connection dropped) the view is rebuilt from
//! a new list and the stream reopened, with a growing pause while Docker
//! stays away.

use std::sync::Arc;
use std::time::Duration;

use bollard::models::{EventMessage, EventMessageTypeEnum};
use futures_util::StreamExt;

use super::View;
use crate::docker::DockerResult;
use crate::naming;

/// Longest pause between attempts to reach a Docker that went away.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Fills the view from a full list, then keeps it current in the
/// background for the life of the process. Fails when the first list fails.
pub async fn start(view: Arc<View>) -> DockerResult<()> {
    let since = unix_seconds();
    view.resync().await?;
    tokio::spawn(async move { follow(&view, since).await });
    Ok(())
}

async fn follow(view: &View, mut since: i64) {
    // Only these actions are sent at all: the others (three per exec probe)
    // then cost neither Docker nor the shim anything.
    let subscribed: Vec<&str> = STATE_EVENTS.iter().chain(IMAGE_EVENTS).copied().collect();
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut events = view
            .docker
            .events(Some(since.saturating_sub(1)), &subscribed);
        let mut healthy = false;
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    healthy = true;
                    handle(view, event).await;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "docker event stream failed");
                    break;
                }
            }
        }
        if healthy {
            backoff = Duration::from_millis(100);
        }
        loop {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            since = unix_seconds();
            match view.resync().await {
                Ok(()) => {
                    tracing::info!("docker event stream reopened; view rebuilt");
                    break;
                }
                Err(err) => tracing::warn!(error = %err, "cannot rebuild the view from docker"),
            }
        }
    }
}

/// Applies one event: containers of the shim are re-inspected (or dropped
/// when destroyed); image events clear the image cache.
async fn handle(view: &View, event: EventMessage) {
    let actor = event.actor.unwrap_or_default();
    let Some(id) = actor.id else { return };
    match event.typ {
        Some(EventMessageTypeEnum::IMAGE) => view.invalidate_images(),
        Some(EventMessageTypeEnum::CONTAINER) => {
            let ours = actor
                .attributes
                .as_ref()
                .is_some_and(|a| a.contains_key(naming::TYPE_LABEL));
            let action = event.action.unwrap_or_default();
            // "exec_start: sh -c ...", "health_status: healthy".
            let verb = action.split(':').next().unwrap_or_default();
            if !ours || !changes_state(verb) {
                return;
            }
            if verb == "destroy" {
                view.forget(&id);
                return;
            }
            if let Err(err) = view.reinspect(&id).await {
                tracing::warn!(container = %id, error = %err, "cannot inspect after a docker event");
            }
        }
        _ => {}
    }
}

/// Container events after which what inspect reports may differ. Exec,
/// attach, resize and copy events (every probe makes some) do not.
const STATE_EVENTS: &[&str] = &[
    "create",
    "start",
    "restart",
    "die",
    "oom",
    "pause",
    "unpause",
    "rename",
    "update",
    "destroy",
    // Sent as "health_status: healthy"; with it in the filter Docker matches
    // every action by prefix, which "exec_start: …" and the like still fail.
    "health_status",
];

/// Image events after which the image list or an inspect may differ.
const IMAGE_EVENTS: &[&str] = &["delete", "import", "load", "pull", "tag", "untag", "prune"];

fn changes_state(verb: &str) -> bool {
    STATE_EVENTS.contains(&verb)
}

fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_noise_does_not_cause_inspects() {
        assert!(!changes_state("exec_start"));
        assert!(!changes_state("exec_die"));
        assert!(!changes_state("attach"));
        assert!(!changes_state("resize"));
        assert!(changes_state("die"));
        assert!(changes_state("oom"));
        assert!(changes_state("destroy"));
        assert!(changes_state("health_status"));
    }
}
