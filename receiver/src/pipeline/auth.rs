//! Bearer-token authentication of the OTLP receivers and the telemetry
//! endpoint. The token is read from a file and read again when the file
//! changes (a Kubernetes Secret is updated by swapping a symlink), so a
//! rotation needs no restart; it is compared in constant time, and every
//! refusal is counted (`gort_receiver_unauthenticated_requests_total`).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use axum::{
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use thiserror::Error;

use super::Shared;

/// How often the token file is read for a rotation.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Error)]
pub enum AuthError {
    #[error("bearer token file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("bearer token file {0} holds no token")]
    Empty(PathBuf),
}

/// The token clients must send as `Authorization: Bearer TOKEN`.
pub struct BearerToken {
    path: PathBuf,
    current: RwLock<Vec<u8>>,
}

/// The file's token: its content without surrounding whitespace.
fn read_token(path: &Path) -> Result<Vec<u8>, AuthError> {
    let text = std::fs::read(path).map_err(|source| AuthError::Read { path: path.to_owned(), source })?;
    let token = text.trim_ascii().to_vec();
    if token.is_empty() {
        return Err(AuthError::Empty(path.to_owned()));
    }
    Ok(token)
}

impl BearerToken {
    /// Reads the token at start-up: a missing or empty file fails the start.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        Ok(Self { path: path.to_owned(), current: RwLock::new(read_token(path)?) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file again; one that cannot be read or is empty keeps the
    /// token in force, so a half-written rotation locks no one out.
    pub fn reload(&self) -> Result<(), AuthError> {
        let token = read_token(&self.path)?;
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = token;
        Ok(())
    }

    /// Whether an `Authorization` header value carries the current token.
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let Some(presented) = authorization.and_then(bearer) else { return false };
        constant_time_eq(presented, &self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// The credentials of `Bearer CREDENTIALS` (the scheme is case-insensitive,
/// RFC 9110 §11.1).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| rest.trim_ascii())
}

/// Equal or not, in a time that depends on the lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The token and the books refusals are counted in, for a middleware.
#[derive(Clone)]
pub struct Guard {
    pub token: Arc<BearerToken>,
    pub shared: Arc<Shared>,
}

impl Guard {
    /// Counts a refusal when the request lacks the token.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let ok = self.token.accepts(authorization);
        if !ok {
            self.shared.counters.unauthenticated();
        }
        ok
    }
}

/// HTTP: 401 with `WWW-Authenticate: Bearer` unless the token is presented,
/// before the body is read.
pub async fn require_token(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    if guard.admits(request.headers().get(header::AUTHORIZATION).map(http::HeaderValue::as_bytes)) {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "missing or wrong bearer token\n")
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_after_bearer_is_accepted() {
        assert_eq!(bearer(b"Bearer s3cret"), Some(&b"s3cret"[..]));
        assert_eq!(bearer(b"bearer s3cret "), Some(&b"s3cret"[..]));
        assert_eq!(bearer(b"Basic czNjcmV0"), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn a_rotated_file_is_read_again_and_a_bad_one_keeps_the_old_token() {
        let dir = std::env::temp_dir().join(format!("gort-auth-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "first\n").unwrap();
        let token = BearerToken::load(&path).unwrap();
        assert!(token.accepts(Some(b"Bearer first")));
        assert!(!token.accepts(None));
        // A rotation as Kubernetes does it: a new file renamed over the old.
        std::fs::write(dir.join("next"), "second").unwrap();
        std::fs::rename(dir.join("next"), &path).unwrap();
        token.reload().unwrap();
        assert!(token.accepts(Some(b"Bearer second")));
        assert!(!token.accepts(Some(b"Bearer first")));
        std::fs::write(&path, "  \n").unwrap();
        assert!(matches!(token.reload(), Err(AuthError::Empty(_))));
        assert!(token.accepts(Some(b"Bearer second")), "an empty file must not lock everyone out");
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(token.reload(), Err(AuthError::Read { .. })));
        assert!(token.accepts(Some(b"Bearer second")));
        assert!(matches!(BearerToken::load(&path), Err(AuthError::Read { .. })));
        let _ = std::fs::remove_dir_all(dir);
    }
}
