//! Histogram arithmetic both sides share: the Go runtime's bucket layout,
//! fixed-point sample weights, and where each histogram sits in
//! `GORT_HISTOGRAMS`.

use crate::ids::HistogramId;

/// Histogram counts are kept in fixed point, WEIGHT_ONE per observation, so
/// that a sampled interval can carry the inverse of its chance to be seen.
pub const WEIGHT_ONE: u64 = 256;

/// Largest weight a sampled interval gets (an interval almost as long as the
/// window): caps what one unlucky observation can add.
pub const MAX_WEIGHT: u64 = 64 * WEIGHT_ONE;

/// The fixed-point weight of an interval of `length_ns` seen in a sampling
/// window of `window_ns` (0 = not sampling). The interval is seen only when it
/// lies wholly inside a window, which happens with probability
/// (window - length) / period; userspace multiplies by period / window, so
/// the kernel contributes window / (window - length): together, the inverse
/// of the chance of being seen (a Horvitz-Thompson estimate, unbiased for
/// intervals shorter than the window).
#[inline(always)]
pub const fn interval_weight(length_ns: u64, window_ns: u64) -> u64 {
    if window_ns == 0 {
        return WEIGHT_ONE;
    }
    if length_ns >= window_ns {
        return MAX_WEIGHT;
    }
    let w = window_ns * WEIGHT_ONE / (window_ns - length_ns);
    if w > MAX_WEIGHT { MAX_WEIGHT } else { w }
}

/// The Go runtime's `timeHistogram` layout (runtime/histogram.go), reproduced
/// in the kernel so gort's histograms and `runtime/metrics` share buckets:
/// values below 2^MIN_BUCKET_BITS ns fall in bucket 0, then one bucket per
/// power of two up to 2^MAX_BUCKET_BITS, each split into SUB_BUCKETS.
pub mod time_hist {
    pub const MIN_BUCKET_BITS: u32 = 9;
    pub const MAX_BUCKET_BITS: u32 = 48;
    pub const SUB_BUCKET_BITS: u32 = 2;
    pub const SUB_BUCKETS: u32 = 1 << SUB_BUCKET_BITS;
    pub const BUCKETS: u32 = MAX_BUCKET_BITS - MIN_BUCKET_BITS + 1;
    /// Counting slots: BUCKETS * SUB_BUCKETS, then overflow, then the sum of
    /// all recorded values (ns), so one array holds a whole histogram.
    pub const COUNTS: u32 = BUCKETS * SUB_BUCKETS;
    pub const OVERFLOW_SLOT: u32 = COUNTS;
    pub const SUM_SLOT: u32 = COUNTS + 1;
    pub const SLOTS: u32 = COUNTS + 2;

    /// The counting slot of a duration in ns (`timeHistogram.record`), or
    /// OVERFLOW_SLOT. Pure integer arithmetic the BPF verifier accepts.
    #[inline(always)]
    pub const fn slot(duration: u64) -> u32 {
        let len = 64 - duration.leading_zeros();
        let (bucket_bit, bucket) =
            if len < MIN_BUCKET_BITS { (MIN_BUCKET_BITS, 0) } else { (len, len - MIN_BUCKET_BITS + 1) };
        if bucket >= BUCKETS {
            return OVERFLOW_SLOT;
        }
        let sub = ((duration >> (bucket_bit - 1 - SUB_BUCKET_BITS)) as u32) % SUB_BUCKETS;
        bucket * SUB_BUCKETS + sub
    }

    /// Lower bound in ns of a counting slot (the runtime's bucket boundary).
    pub const fn lower_bound(slot: u32) -> u64 {
        let bucket = slot / SUB_BUCKETS;
        let sub = (slot % SUB_BUCKETS) as u64;
        if bucket == 0 {
            return sub << (MIN_BUCKET_BITS - 1 - SUB_BUCKET_BITS);
        }
        let bucket_bit = bucket + MIN_BUCKET_BITS - 1;
        (1u64 << (bucket_bit - 1)) + (sub << (bucket_bit - 1 - SUB_BUCKET_BITS))
    }
}

/// Wait reasons tracked one by one (Go has fewer than 50); larger values
/// share the last histogram.
pub const MAX_WAIT_REASONS: u32 = 64;

/// Histograms in `GORT_HISTOGRAMS`: the fixed ones, then one per wait reason
/// (time parked, by the runtime's `waitReason` number) for the
/// application's goroutines, then one per wait reason for the runtime's own.
pub const HISTOGRAMS: u32 = HistogramId::COUNT + 2 * MAX_WAIT_REASONS;

/// Set in a parked goroutine's recorded reason (`GoroutineState::parked_reason`) when the
/// goroutine is one of the runtime's own (it started at a runtime entry).
pub const RUNTIME_GOROUTINE: u64 = 0x100;

/// Base slot of the blocked-time histogram of wait reason `reason`, in the
/// runtime goroutines' bank when `reason` carries `RUNTIME_GOROUTINE`.
pub const fn blocked_base(reason: u64) -> u32 {
    let bank = if reason & RUNTIME_GOROUTINE != 0 { MAX_WAIT_REASONS } else { 0 };
    let reason = reason & 0xff;
    let r = if reason < MAX_WAIT_REASONS as u64 { reason as u32 } else { MAX_WAIT_REASONS - 1 };
    (HistogramId::COUNT + bank + r) * time_hist::SLOTS
}

#[cfg(test)]
mod tests {
    use super::time_hist::*;

    /// Reference: Go's timeHistogram.record, transcribed literally.
    fn go_record(duration: u64) -> u32 {
        let l = 64 - duration.leading_zeros();
        let (bucket_bit, bucket) =
            if l < MIN_BUCKET_BITS { (MIN_BUCKET_BITS, 0) } else { (l, l - MIN_BUCKET_BITS + 1) };
        if bucket >= BUCKETS {
            return OVERFLOW_SLOT;
        }
        let sub = (duration >> (bucket_bit - 1 - SUB_BUCKET_BITS)) % u64::from(SUB_BUCKETS);
        bucket * SUB_BUCKETS + sub as u32
    }

    #[test]
    fn runtime_goroutines_have_their_own_bank_of_blocked_histograms() {
        use super::{HISTOGRAMS, HistogramId, MAX_WAIT_REASONS, RUNTIME_GOROUTINE, blocked_base};
        assert_eq!(blocked_base(0), HistogramId::COUNT * SLOTS);
        assert_eq!(blocked_base(RUNTIME_GOROUTINE | 3), (HistogramId::COUNT + MAX_WAIT_REASONS + 3) * SLOTS);
        assert_eq!(blocked_base(200), blocked_base(u64::from(MAX_WAIT_REASONS) - 1), "unknown reasons clamp");
        assert!(blocked_base(RUNTIME_GOROUTINE | 0xff) < HISTOGRAMS * SLOTS);
    }

    #[test]
    fn interval_weights_invert_the_chance_of_being_seen() {
        use super::{MAX_WEIGHT, WEIGHT_ONE, interval_weight};
        assert_eq!(interval_weight(5_000_000, 0), WEIGHT_ONE);
        assert_eq!(interval_weight(0, 1_000), WEIGHT_ONE);
        // Half the window long: seen in half the placements, so weight 2.
        assert_eq!(interval_weight(500, 1_000), 2 * WEIGHT_ONE);
        assert_eq!(interval_weight(999_999, 1_000_000), MAX_WEIGHT);
        assert_eq!(interval_weight(2_000, 1_000), MAX_WEIGHT);
    }

    #[test]
    fn slots_match_the_runtime_and_bounds_are_monotonic() {
        for d in [0, 1, 127, 128, 255, 256, 511, 512, 640, 767, 768, 1023, 1024, 1_000_000, u64::MAX / 2] {
            assert_eq!(slot(d), go_record(d), "{d}");
        }
        let mut prev = 0;
        for s in 1..COUNTS {
            let b = lower_bound(s);
            assert!(b > prev, "slot {s}: {b} <= {prev}");
            assert_eq!(slot(b), s, "lower bound of slot {s} falls in slot {}", slot(b));
            assert_eq!(slot(b - 1), s - 1);
            prev = b;
        }
    }
}
