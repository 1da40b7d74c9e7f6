//! When reports are due: on a fixed schedule from the first (the k-th at
//! start + k × interval), so a late report does not push every later one
//! back, and how late each one was. On a saturated host gort may not get the
//! CPU when a report is due; that lateness is measured, counted and said,
//! never silently folded into a longer interval.

use std::time::{Duration, Instant};

/// A report later than this share of the interval is counted as late.
const LATE_SHARE: f64 = 0.25;

pub struct Cadence {
    interval: Duration,
    next: Instant,
}

/// A report that is due: how late it is, and whether that counts as late.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due {
    pub lateness: Duration,
    pub late: bool,
    /// Whole reports skipped because gort did not run for longer than an
    /// interval (their time is covered by this one: the counters are
    /// cumulative).
    pub skipped: u32,
}

impl Cadence {
    pub fn new(interval: Duration, now: Instant) -> Self {
        Self { interval, next: now + interval }
    }

    /// None when no report is due at `now`; otherwise the report's lateness,
    /// and the schedule moves to the next slot after `now`.
    pub fn due(&mut self, now: Instant) -> Option<Due> {
        let lateness = now.checked_duration_since(self.next)?;
        let mut skipped = 0;
        self.next += self.interval;
        while self.next <= now && !self.interval.is_zero() {
            self.next += self.interval;
            skipped += 1;
        }
        if self.interval.is_zero() {
            self.next = now;
        }
        Some(Due {
            lateness,
            late: lateness.as_secs_f64() > self.interval.as_secs_f64() * LATE_SHARE,
            skipped,
        })
    }

    /// How long until the next report is due.
    pub fn until_next(&self, now: Instant) -> Duration {
        self.next.saturating_duration_since(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_keep_their_schedule_and_say_how_late_they_are() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut c = Cadence::new(s, t0);
        assert_eq!(c.due(t0 + Duration::from_millis(999)), None);
        // 30 ms late: not late enough to count, and the next is still at 2 s.
        let d = c.due(t0 + Duration::from_millis(1030)).unwrap();
        assert_eq!((d.lateness, d.late, d.skipped), (Duration::from_millis(30), false, 0));
        assert_eq!(c.until_next(t0 + Duration::from_millis(1030)), Duration::from_millis(970));
        // 400 ms late: late.
        let d = c.due(t0 + Duration::from_millis(2400)).unwrap();
        assert_eq!((d.lateness, d.late), (Duration::from_millis(400), true));
        // gort did not run from 2.4 s to 5.5 s: the reports at 3, 4 and 5 s
        // are one report, 2.5 s late, and the schedule goes on at 6 s.
        let d = c.due(t0 + Duration::from_millis(5500)).unwrap();
        assert_eq!((d.lateness, d.late, d.skipped), (Duration::from_millis(2500), true, 2));
        assert_eq!(c.until_next(t0 + Duration::from_millis(5500)), Duration::from_millis(500));
    }
}
