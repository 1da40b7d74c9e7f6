//! `GET /debug/pprof/wait?seconds=N` on the telemetry endpoint: waits N
//! seconds (30 by default, as `net/http/pprof`'s CPU profile does) and
//! answers the censuses taken meanwhile as a gzipped pprof profile, which
//! `go tool pprof http://127.0.0.1:8888/debug/pprof/wait` opens.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::{RawQuery, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

use super::Shared;
use crate::{bpf::monotonic_ns, export::pprof, telemetry::wait_profile::MAX_PROFILE_SPAN};

/// The span a profile covers when the request names none.
pub const DEFAULT_PROFILE_SECONDS: u64 = 30;

/// `seconds` of the query string, checked.
fn seconds(query: Option<&str>) -> Result<u64, String> {
    let value = query.into_iter().flat_map(|q| q.split('&')).find_map(|kv| kv.strip_prefix("seconds="));
    let Some(value) = value else { return Ok(DEFAULT_PROFILE_SECONDS) };
    match value.parse::<u64>() {
        Ok(n) if (1..=MAX_PROFILE_SPAN.as_secs()).contains(&n) => Ok(n),
        _ => Err(format!(
            "seconds must be a whole number from 1 to {}, not {value:?}\n",
            MAX_PROFILE_SPAN.as_secs()
        )),
    }
}

pub async fn serve(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let seconds = match seconds(query.as_deref()) {
        Ok(s) => s,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let start_unix_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let from = Duration::from_nanos(monotonic_ns());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let to = Duration::from_nanos(monotonic_ns());
    let censuses = shared.wait_samples.between(from, to);
    if censuses.is_empty() {
        let why = format!(
            "no goroutine census with stacks in the last {seconds} s: gort is attached to no Go process, or cannot walk its stacks (see gort's log)\n"
        );
        return (StatusCode::NOT_FOUND, why).into_response();
    }
    let body = pprof::gzipped(&pprof::wait_profile(&censuses, start_unix_ns, to - from));
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"wait\""),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_read_from_the_query_and_bounded() {
        assert_eq!(seconds(None), Ok(DEFAULT_PROFILE_SECONDS));
        assert_eq!(seconds(Some("debug=1")), Ok(DEFAULT_PROFILE_SECONDS));
        assert_eq!(seconds(Some("debug=1&seconds=5")), Ok(5));
        for bad in ["seconds=0", "seconds=601", "seconds=x", "seconds=-1"] {
            assert!(seconds(Some(bad)).is_err(), "{bad}");
        }
    }
}
