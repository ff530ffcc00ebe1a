//! ExecSync output, collected under two bounds: one call's stdout and
//! stderr together fit the kubelet's gRPC message, and the output held by
//! all calls at once fits a node-wide budget. Output beyond either is read
//! and dropped, so the command never blocks on a full pipe and the caller
//! gets what was kept rather than an error.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::MAX_MESSAGE_SIZE;
use crate::docker::{Frame, OutputStream};

/// Room left in the kubelet's message for the protobuf envelope around the
/// output (two length-delimited fields and the exit code need under 32
/// bytes; the rest is margin).
const ENVELOPE_ROOM: usize = 64 * 1024;

/// Most output one ExecSync keeps, stdout and stderr together, so that its
/// response fits the kubelet's 16 MiB gRPC message limit.
pub const EXEC_OUTPUT_CAP: usize = MAX_MESSAGE_SIZE - ENVELOPE_ROOM;

/// Most ExecSync output held at once across all calls: one call at the
/// per-call cap. Probes print a few bytes; only calls that each print
/// megabytes share it. The answer's encoding by tonic is a second copy of
/// the same size, so the shim's growth under a flood of probes stays near
/// twice this.
pub const EXEC_OUTPUT_IN_FLIGHT: usize = MAX_MESSAGE_SIZE;

/// The node-wide budget of ExecSync output held in memory, in bytes.
#[derive(Debug, Clone)]
pub struct ExecOutputBudget {
    bytes: Arc<Semaphore>,
}

impl ExecOutputBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(bytes)),
        }
    }

    /// Takes `n` bytes of the budget if they are free now. Waiting instead
    /// could deadlock calls that each hold part of the budget.
    fn try_take(&self, n: usize) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(n).ok()?;
        self.bytes.clone().try_acquire_many_owned(n).ok()
    }
}

impl Default for ExecOutputBudget {
    fn default() -> Self {
        Self::new(EXEC_OUTPUT_IN_FLIGHT)
    }
}

/// What an exec printed, as far as it was kept.
#[derive(Debug, Default)]
pub struct Collected {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Bytes read and dropped beyond a bound.
    pub dropped: u64,
    /// The budget the kept bytes hold; released when this is dropped.
    held: Option<OwnedSemaphorePermit>,
}

impl Collected {
    /// Keeps as much of `frame` as the per-call `cap` and the budget allow.
    fn keep(&mut self, frame: &Frame, cap: usize, budget: &ExecOutputBudget) {
        let bytes = frame.bytes();
        let room = cap.saturating_sub(self.stdout.len() + self.stderr.len());
        let n = room.min(bytes.len()).min(budget.bytes.available_permits());
        let permit = (n > 0).then(|| budget.try_take(n)).flatten();
        let Some(permit) = permit else {
            self.dropped += bytes.len() as u64;
            return;
        };
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        let buf = match frame {
            Frame::Stdout(_) => &mut self.stdout,
            Frame::Stderr(_) => &mut self.stderr,
        };
        buf.extend_from_slice(&bytes[..n]);
        self.dropped += (bytes.len() - n) as u64;
    }
}

/// Reads an exec's output to its end, keeping at most `cap` bytes of
/// stdout and stderr together, within `budget`.
pub async fn collect(
    mut output: OutputStream,
    cap: usize,
    budget: &ExecOutputBudget,
) -> std::io::Result<Collected> {
    let mut collected = Collected::default();
    while let Some(frame) = output.next().await? {
        collected.keep(&frame, cap, budget);
    }
    Ok(collected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::fake::scripted_process;

    /// Collects the output of a process printing `stdout` then `stderr`
    /// bytes, in Docker's 32 KiB frames.
    async fn collect_output(
        stdout: usize,
        stderr: usize,
        cap: usize,
        budget: &ExecOutputBudget,
    ) -> Collected {
        let (streams, mut script) = scripted_process(false);
        let process = tokio::spawn(async move {
            let chunk = vec![b'x'; 32 * 1024];
            for (on_stderr, len) in [(false, stdout), (true, stderr)] {
                let mut left = len;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if on_stderr {
                        script.stderr(&chunk[..n]).await?;
                    } else {
                        script.stdout(&chunk[..n]).await?;
                    }
                    left -= n;
                }
            }
            script.exit(0);
            std::io::Result::Ok(())
        });
        let collected = collect(streams.into_output(), cap, budget)
            .await
            .expect("in-memory stream");
        process.await.expect("process task").expect("process");
        collected
    }

    #[tokio::test]
    async fn a_flood_is_truncated_to_fit_the_kubelets_message() {
        use prost::Message;
        let budget = ExecOutputBudget::default();
        let got = collect_output(20_000_000, 3_000_000, EXEC_OUTPUT_CAP, &budget).await;
        assert_eq!(got.stdout.len(), EXEC_OUTPUT_CAP);
        assert!(got.stderr.is_empty());
        assert_eq!(got.dropped, 23_000_000 - EXEC_OUTPUT_CAP as u64);
        let response = crate::api::ExecSyncResponse {
            stdout: got.stdout.clone(),
            stderr: got.stderr.clone(),
            exit_code: -1,
        };
        assert!(response.encoded_len() <= MAX_MESSAGE_SIZE);
    }

    #[tokio::test]
    async fn stdout_and_stderr_share_the_cap() {
        let budget = ExecOutputBudget::default();
        let got = collect_output(600, 600, 1000, &budget).await;
        assert_eq!((got.stdout.len(), got.stderr.len()), (600, 400));
        assert_eq!(got.dropped, 200);
    }

    #[tokio::test]
    async fn output_beyond_the_budget_held_by_others_is_dropped_until_they_end() {
        let budget = ExecOutputBudget::new(1000);
        let first = collect_output(700, 0, EXEC_OUTPUT_CAP, &budget).await;
        assert_eq!(first.stdout.len(), 700);
        // 300 bytes are left for the second call while the first is held.
        let second = collect_output(400, 0, EXEC_OUTPUT_CAP, &budget).await;
        assert_eq!((second.stdout.len(), second.dropped), (300, 100));
        drop(first);
        drop(second);
        let third = collect_output(1000, 0, EXEC_OUTPUT_CAP, &budget).await;
        assert_eq!(third.stdout.len(), 1000);
    }
}
