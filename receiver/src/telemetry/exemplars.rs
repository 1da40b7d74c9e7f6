//! Exemplars: per histogram bucket, the slowest observation that belongs to
//! an exported span, so a metric's bucket leads to a trace that suffered it.

use std::collections::BTreeMap;

use gort_common::time_hist;

/// One exemplar candidate: an observation that belongs to an exported span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exemplar {
    pub value_ns: u64,
    pub time_unix_ns: u64,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

/// The histograms that carry exemplars.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExemplarFor {
    /// `go.schedule.duration`.
    Schedule,
    /// `go.memory.gc.pause.duration`.
    GcPause,
    /// `gort.goroutine.blocked.duration`, point of this wait category.
    Blocked(&'static str),
}

/// The slowest observation per (histogram, power-of-two bucket) since the
/// last take: every bucket a span was seen in is represented by its worst.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exemplars {
    pub by_bucket: BTreeMap<(ExemplarFor, u32), Exemplar>,
}

impl Exemplars {
    /// The export bucket (runtime buckets folded to powers of two, as
    /// `TimeHistogram::power_of_two_buckets` folds them).
    pub fn bucket(value_ns: u64) -> u32 {
        time_hist::slot(value_ns) / time_hist::SUB_BUCKETS
    }

    pub fn offer(&mut self, what: ExemplarFor, e: Exemplar) {
        let slot = self.by_bucket.entry((what, Self::bucket(e.value_ns))).or_insert(e);
        if e.value_ns > slot.value_ns {
            *slot = e;
        }
    }

    /// The exemplars of one histogram point, slowest bucket last.
    pub fn of(&self, what: ExemplarFor) -> Vec<Exemplar> {
        self.by_bucket.iter().filter(|((w, _), _)| *w == what).map(|(_, e)| *e).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn the_slowest_observation_represents_its_bucket() {
        let mut ex = Exemplars::default();
        let e = |value_ns, n| Exemplar { value_ns, time_unix_ns: 0, trace_id: [n; 16], span_id: [n; 8] };
        ex.offer(ExemplarFor::Schedule, e(9 * MS, 1));
        ex.offer(ExemplarFor::Schedule, e(10 * MS, 2));
        ex.offer(ExemplarFor::Schedule, e(9 * MS + 1, 3));
        ex.offer(ExemplarFor::Schedule, e(100 * MS, 4));
        let got: Vec<u8> = ex.of(ExemplarFor::Schedule).iter().map(|e| e.span_id[0]).collect();
        assert_eq!(got, [2, 4]);
    }
}
