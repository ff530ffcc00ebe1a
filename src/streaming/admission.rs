//! Who may open a streaming session: at most so many on the node and so many
//! for any one pod, so that one tenant cannot take every session of the
//! node. A session holds its [`SessionPermit`] until it ends. The number
//! open is a metric, read at each scrape ([`Admission::register_metrics`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a session was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The node's sessions are all taken.
    #[error("too many streaming sessions (limit {0})")]
    Node(usize),
    /// The pod's sessions are all taken.
    #[error("too many streaming sessions for pod {pod} (limit {limit})")]
    Pod { pod: String, limit: usize },
}

/// Open sessions per pod.
type Counts = Arc<Mutex<HashMap<String, usize>>>;

fn lock(counts: &Counts) -> MutexGuard<'_, HashMap<String, usize>> {
    counts.lock().unwrap_or_else(|p| p.into_inner())
}

/// The node's and the pods' session limits.
#[derive(Debug)]
pub struct Admission {
    node: Arc<Semaphore>,
    max_sessions: usize,
    per_pod: usize,
    pods: Counts,
}

/// One admitted session; dropping it gives its places back.
pub struct SessionPermit {
    _node: OwnedSemaphorePermit,
    pod: String,
    pods: Counts,
}

impl Drop for SessionPermit {
    fn drop(&mut self) {
        let mut pods = lock(&self.pods);
        if let Some(count) = pods.get_mut(&self.pod) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                pods.remove(&self.pod);
            }
        }
    }
}

impl Admission {
    /// `max_sessions` on the node, `per_pod` for each pod (0 means the
    /// node's limit).
    pub fn new(max_sessions: usize, per_pod: usize) -> Self {
        let per_pod = if per_pod == 0 {
            max_sessions
        } else {
            per_pod.min(max_sessions)
        };
        Self {
            node: Arc::new(Semaphore::new(max_sessions)),
            max_sessions,
            per_pod,
            pods: Counts::default(),
        }
    }

    /// Admits a session for `pod` (its sandbox id), or says which limit is reached.
    pub fn admit(&self, pod: &str) -> Result<SessionPermit, Refused> {
        let node = self
            .node
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Node(self.max_sessions))?;
        let mut pods = lock(&self.pods);
        let count = pods.entry(pod.to_string()).or_default();
        if *count >= self.per_pod {
            return Err(Refused::Pod {
                pod: pod.to_string(),
                limit: self.per_pod,
            });
        }
        *count += 1;
        Ok(SessionPermit {
            _node: node,
            pod: pod.to_string(),
            pods: self.pods.clone(),
        })
    }

    /// Sessions open now.
    pub fn open(&self) -> usize {
        open_sessions(&self.node, self.max_sessions)
    }

    /// Registers the number of sessions open in `registry`, as a gauge
    /// read from the node's semaphore at each scrape.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register_collector(Box::new(OpenSessions {
            node: self.node.clone(),
            max_sessions: self.max_sessions,
        }));
    }
}

fn open_sessions(node: &Semaphore, max_sessions: usize) -> usize {
    max_sessions.saturating_sub(node.available_permits())
}

/// The `streaming_sessions` gauge.
#[derive(Debug)]
struct OpenSessions {
    node: Arc<Semaphore>,
    max_sessions: usize,
}

impl prometheus_client::collector::Collector for OpenSessions {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        let open = open_sessions(&self.node, self.max_sessions);
        let gauge = prometheus_client::metrics::gauge::ConstGauge::new(
            i64::try_from(open).unwrap_or(i64::MAX),
        );
        let metric = encoder.encode_descriptor(
            "streaming_sessions",
            "Exec, attach and port-forward sessions open",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 21: one client could hold all of the node's sessions.
    #[test]
    fn one_pod_cannot_take_every_session() {
        let admission = Admission::new(4, 2);
        let a1 = admission.admit("a").unwrap();
        let _a2 = admission.admit("a").unwrap();
        assert_eq!(
            admission.admit("a").err(),
            Some(Refused::Pod {
                pod: "a".into(),
                limit: 2
            })
        );
        let _b1 = admission.admit("b").unwrap();
        let _b2 = admission.admit("b").unwrap();
        assert_eq!(admission.open(), 4);
        assert_eq!(admission.admit("c").err(), Some(Refused::Node(4)));
        drop(a1);
        assert_eq!(admission.open(), 3);
        let _a3 = admission.admit("a").unwrap();
    }

    #[test]
    fn the_open_sessions_gauge_is_read_at_each_scrape() {
        let admission = Admission::new(4, 2);
        let mut registry = prometheus_client::registry::Registry::with_prefix("dockershim");
        admission.register_metrics(&mut registry);
        let scrape = |registry: &prometheus_client::registry::Registry| {
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
            text
        };
        let a = admission.admit("a").unwrap();
        let _b = admission.admit("b").unwrap();
        let text = scrape(&registry);
        assert!(
            text.contains("# TYPE dockershim_streaming_sessions gauge"),
            "{text}"
        );
        assert!(text.contains("dockershim_streaming_sessions 2"), "{text}");
        drop(a);
        assert!(scrape(&registry).contains("dockershim_streaming_sessions 1"));
    }

    #[test]
    fn a_refused_pod_does_not_keep_a_node_place() {
        let admission = Admission::new(2, 1);
        let _a = admission.admit("a").unwrap();
        assert!(admission.admit("a").is_err());
        assert_eq!(admission.open(), 1);
        let _b = admission.admit("b").unwrap();
        assert_eq!(admission.open(), 2);
        assert!(lock(&admission.pods).len() == 2);
    }

    #[test]
    fn finished_pods_are_forgotten() {
        let admission = Admission::new(8, 0);
        drop(admission.admit("gone").unwrap());
        assert!(lock(&admission.pods).is_empty());
        assert_eq!(admission.per_pod, 8, "0 per pod means the node's limit");
    }
}
