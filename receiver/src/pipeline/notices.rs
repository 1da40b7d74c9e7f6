//! The pipeline's log of losses and troubles that can repeat thousands of
//! times a minute (retries, refusals, drops): the first of a kind is logged
//! at once, later ones are summed and logged once per interval, so an
//! outage or an overload is neither silent nor a flood. Every one of them is
//! also counted in a self-metric; this is only what a person reads.

use std::{
    collections::BTreeMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// At most one line of a kind this often.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// What happened, in one line's words; one kind per signal and event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A batch waits to be sent again.
    Retry,
    /// A request was refused for want of room (the client retries).
    Refused,
    /// Items were dropped (upstream refused them for good, or kept failing).
    Dropped,
    /// A session's report went out late (gort did not get the CPU).
    LateReport,
}

impl Kind {
    fn level(self) -> log::Level {
        match self {
            Self::Retry | Self::Refused | Self::LateReport => log::Level::Warn,
            Self::Dropped => log::Level::Error,
        }
    }
}

struct Pending {
    /// When the last line of this kind was written.
    logged: Instant,
    /// Since then: how many, how many items, and the last one's words.
    times: u64,
    items: u64,
    last: String,
}

/// One line: the first at once, then a summary per interval.
#[derive(Default)]
pub struct Notices {
    pending: Mutex<BTreeMap<(Kind, &'static str), Pending>>,
}

impl Notices {
    /// Notes one event of `kind` for `signal` (its items' name) about
    /// `items` items; `what` says it in words.
    pub fn note(&self, kind: Kind, signal: &'static str, items: u64, what: String) {
        self.note_at(kind, signal, items, what, Instant::now());
    }

    fn note_at(&self, kind: Kind, signal: &'static str, items: u64, what: String, now: Instant) {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match pending.get_mut(&(kind, signal)) {
            Some(p) => {
                p.times += 1;
                p.items += items;
                p.last = what;
                if now.duration_since(p.logged) >= INTERVAL
                    && let Some(line) = Self::summary(kind, signal, p, now)
                {
                    log::log!(kind.level(), "{line}");
                }
            }
            None => {
                log::log!(kind.level(), "{what}");
                pending
                    .insert((kind, signal), Pending { logged: now, times: 0, items: 0, last: String::new() });
            }
        }
    }

    /// Writes the summaries whose interval has passed (call it now and then,
    /// so the last of a burst is not left unsaid).
    pub fn flush(&self) {
        self.flush_at(Instant::now(), false);
    }

    /// Writes every summary now (at shutdown).
    pub fn flush_all(&self) {
        self.flush_at(Instant::now(), true);
    }

    fn flush_at(&self, now: Instant, all: bool) -> Vec<String> {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut lines = Vec::new();
        for ((kind, signal), p) in pending.iter_mut() {
            if (all || now.duration_since(p.logged) >= INTERVAL)
                && let Some(line) = Self::summary(*kind, signal, p, now)
            {
                log::log!(kind.level(), "{line}");
                lines.push(line);
            }
        }
        // A kind quiet for a whole interval logs its next event at once.
        pending.retain(|_, p| p.times > 0 || now.duration_since(p.logged) < INTERVAL);
        lines
    }

    /// The line for what accumulated since the last one (None: nothing did),
    /// and a new interval begins.
    fn summary(kind: Kind, signal: &str, p: &mut Pending, now: Instant) -> Option<String> {
        if p.times == 0 {
            return None;
        }
        let what = match kind {
            Kind::Retry => "export retries",
            Kind::Refused => "requests refused for want of room",
            Kind::Dropped => "batches dropped",
            Kind::LateReport => "reports late",
        };
        let line = format!(
            "{what} ({signal}): {} in the last {:.0?}, {} {signal}; the last: {}",
            p.times,
            now.duration_since(p.logged),
            p.items,
            p.last
        );
        *p = Pending { logged: now, times: 0, items: 0, last: String::new() };
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_said_at_once_the_rest_summed_once_per_interval() {
        let n = Notices::default();
        let t0 = Instant::now();
        n.note_at(Kind::Retry, "spans", 10, "reset".into(), t0);
        for i in 1..=99 {
            n.note_at(Kind::Retry, "spans", 10, format!("reset {i}"), t0 + Duration::from_millis(i * 10));
        }
        // Another kind has an interval of its own.
        n.note_at(Kind::Dropped, "spans", 5, "dropped".into(), t0 + Duration::from_secs(1));
        assert!(
            n.flush_at(t0 + Duration::from_secs(9), false).is_empty(),
            "summarised before the interval passed"
        );
        let lines = n.flush_at(t0 + INTERVAL, false);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains(": 99 in the last 10s, 990 spans; the last: reset 99"), "{}", lines[0]);
        // Nothing new: nothing said, and the next event is said at once.
        assert!(n.flush_at(t0 + 2 * INTERVAL, false).is_empty());
        assert!(n.pending.lock().unwrap().get(&(Kind::Retry, "spans")).is_none());
        // At shutdown, what accumulated is said whatever the time.
        n.note_at(Kind::Refused, "spans", 1, "first".into(), t0);
        n.note_at(Kind::Refused, "spans", 1, "second".into(), t0);
        let lines = n.flush_at(t0 + Duration::from_secs(1), true);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains(": 1 in the last 1s, 1 spans; the last: second"), "{}", lines[0]);
    }
}
