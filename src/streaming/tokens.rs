//! Single-use tokens for streaming requests.
//!
//! `Exec`, `Attach` and `PortForward` validate the request and park it here
//! under a random token; the URL they return carries only the token, so a
//! client can never choose the command through the URL. A token works once
//! and expires after a minute, like the kubelet's own request cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;

use crate::api::{AttachRequest, ExecRequest, PortForwardRequest};

/// How long a token stays valid.
pub const TOKEN_TTL: Duration = Duration::from_secs(60);
/// Most tokens waiting to be used at once.
pub const MAX_PENDING: usize = 1000;

/// A validated request waiting for its client to connect.
#[derive(Debug, Clone, PartialEq)]
pub enum Pending {
    /// An exec session.
    Exec(ExecRequest),
    /// An attach session.
    Attach(AttachRequest),
    /// A port-forward session, with the sandbox's full id.
    PortForward(PortForwardRequest),
}

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Too many sessions are waiting for their clients.
    #[error("too many streaming requests are waiting ({MAX_PENDING}); try again")]
    Full,
    /// The system's random source failed.
    #[error("no randomness for a token: {0}")]
    Random(String),
}

/// The cache of pending requests.
#[derive(Default)]
pub struct Tokens {
    /// Request, the pod it is for, and when the token expires.
    pending: Mutex<HashMap<String, (Pending, String, Instant)>>,
}

impl Tokens {
    /// Parks `request` for `pod` (its sandbox id) and returns its token.
    pub fn insert(&self, request: Pending, pod: String) -> Result<String, TokenError> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        pending.retain(|_, (_, _, expires)| *expires > now);
        if pending.len() >= MAX_PENDING {
            return Err(TokenError::Full);
        }
        loop {
            let token = new_token()?;
            if !pending.contains_key(&token) {
                pending.insert(token.clone(), (request, pod, now + TOKEN_TTL));
                return Ok(token);
            }
        }
    }

    /// Takes the request behind `token` and its pod, if it exists and has
    /// not expired.
    pub fn take(&self, token: &str) -> Option<(Pending, String)> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (request, pod, expires) = pending.remove(token)?;
        (expires > Instant::now()).then_some((request, pod))
    }

    #[cfg(test)]
    fn expire_all(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (_, _, expires) in pending.values_mut() {
            *expires = Instant::now();
        }
    }
}

/// Eight URL-safe characters from six random bytes.
fn new_token() -> Result<String, TokenError> {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec() -> Pending {
        Pending::Exec(ExecRequest {
            container_id: "c".into(),
            cmd: vec!["sh".into()],
            ..Default::default()
        })
    }

    #[test]
    fn tokens_are_single_use() {
        let tokens = Tokens::default();
        let token = tokens.insert(exec(), "pod".into()).unwrap();
        assert_eq!(token.len(), 8);
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(tokens.take(&token), Some((exec(), "pod".into())));
        assert_eq!(tokens.take(&token), None);
        assert_eq!(tokens.take("unknown1"), None);
    }

    #[test]
    fn expired_tokens_are_refused() {
        let tokens = Tokens::default();
        let token = tokens.insert(exec(), "pod".into()).unwrap();
        tokens.expire_all();
        assert_eq!(tokens.take(&token), None);
    }

    #[test]
    fn the_number_waiting_is_bounded() {
        let tokens = Tokens::default();
        for _ in 0..MAX_PENDING {
            tokens.insert(exec(), "pod".into()).unwrap();
        }
        assert_eq!(tokens.insert(exec(), "pod".into()), Err(TokenError::Full));
        tokens.expire_all();
        assert!(
            tokens.insert(exec(), "pod".into()).is_ok(),
            "expired tokens make room"
        );
    }
}
