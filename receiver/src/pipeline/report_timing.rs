//! How punctual the sessions' reports are, for self-telemetry: on a
//! saturated host gort may get the CPU late, and its metrics then describe
//! longer intervals than configured; these say so.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

#[derive(Debug, Default)]
pub struct ReportTiming {
    last_lateness_ns: AtomicU64,
    max_lateness_ns: AtomicU64,
    late: AtomicU64,
    skipped: AtomicU64,
}

impl ReportTiming {
    /// A report went out `lateness` after it was due; `late` if that counts
    /// as late; `skipped` whole intervals passed without one.
    pub fn record(&self, lateness: Duration, late: bool, skipped: u32) {
        let ns = u64::try_from(lateness.as_nanos()).unwrap_or(u64::MAX);
        self.last_lateness_ns.store(ns, Ordering::Relaxed);
        self.max_lateness_ns.fetch_max(ns, Ordering::Relaxed);
        self.late.fetch_add(u64::from(late), Ordering::Relaxed);
        self.skipped.fetch_add(u64::from(skipped), Ordering::Relaxed);
    }

    /// (last lateness, largest lateness, reports late, reports skipped).
    pub fn get(&self) -> (Duration, Duration, u64, u64) {
        (
            Duration::from_nanos(self.last_lateness_ns.load(Ordering::Relaxed)),
            Duration::from_nanos(self.max_lateness_ns.load(Ordering::Relaxed)),
            self.late.load(Ordering::Relaxed),
            self.skipped.load(Ordering::Relaxed),
        )
    }
}
