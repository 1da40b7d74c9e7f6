//! The kinds of wait a span can suffer: the per-span wait slots the kernel
//! sums into, and which kinds become child spans.

use gort_common::SPAN_WAIT_SLOTS;

/// The wait categories of per-span parked time, by wait slot: slot `i` of
/// `SpanTotals::parked_ns` is `WAIT_SLOT_NAMES[i]`. The names are
/// `wait_reasons::category` values; unknown reasons fall in "other".
pub const WAIT_SLOT_NAMES: [&str; 10] = [
    "other",
    "chan_receive",
    "chan_send",
    "select",
    "mutex",
    "sync",
    "io",
    "sleep",
    "gc_assist",
    "runtime_gc",
];
const _: () = assert!(WAIT_SLOT_NAMES.len() <= SPAN_WAIT_SLOTS);
// The kernel charges waits in this slot as GC assists (see the test below).
const _: () = assert!((gort_common::GC_ASSIST_WAIT_SLOT as usize) < WAIT_SLOT_NAMES.len());

/// The waits that become child spans by default: delays the runtime or
/// contention caused. Ordinary waits (a select on a backend's answer, a
/// read, a sleep) stay attributes of the span.
pub const DEFAULT_CHILD_SPAN_KINDS: &[&str] =
    &["runnable", "gc_stop_the_world", "gc_assist", "runtime_gc", "mutex"];

/// The wait slot of a category name.
pub fn wait_slot(category: &str) -> u8 {
    WAIT_SLOT_NAMES.iter().position(|c| *c == category).unwrap_or(0) as u8
}

/// The kinds of wait a child span can be made for: the runtime's and
/// contention's delays (`runnable`, `gc_stop_the_world`, `gc_assist`, and
/// the wait categories of `WAIT_SLOT_NAMES`).
pub const STALL_KIND_NAMES: [&str; 12] = [
    "runnable",
    "gc_stop_the_world",
    "gc_assist",
    "runtime_gc",
    "mutex",
    "sync",
    "chan_receive",
    "chan_send",
    "select",
    "io",
    "sleep",
    "other",
];

/// Which stall kinds become child spans: a set of `STALL_KIND_NAMES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StallKinds(u16);

impl StallKinds {
    /// The set of `names`, or the first name that is not a stall kind.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut bits = 0;
        for name in names {
            let i = STALL_KIND_NAMES.iter().position(|k| *k == name).ok_or_else(|| name.to_owned())?;
            bits |= 1 << i;
        }
        Ok(Self(bits))
    }

    pub fn contains(&self, kind: &str) -> bool {
        STALL_KIND_NAMES.iter().position(|k| *k == kind).is_some_and(|i| self.0 & (1 << i) != 0)
    }
}

/// What a stall inside a span was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StallKind {
    Runnable,
    /// Parked, with the wait reason's name.
    Parked(String),
    Assist,
    StopTheWorld,
}

impl StallKind {
    /// The child span's name ("runnable", "chan receive", "gc stop-the-world").
    pub fn name(&self) -> &str {
        match self {
            Self::Runnable => "runnable",
            Self::Parked(reason) => reason,
            Self::Assist => "gc assist",
            Self::StopTheWorld => "gc stop-the-world",
        }
    }

    pub(super) fn kind(&self) -> &'static str {
        match self {
            Self::Runnable => "runnable",
            Self::Parked(_) => "parked",
            Self::Assist => "gc_assist",
            Self::StopTheWorld => "gc_stop_the_world",
        }
    }

    /// The name `StallKinds` knows it by: a parked wait by its category.
    pub(super) fn selector(&self) -> &'static str {
        match self {
            Self::Parked(reason) => gort_goexe::wait_reasons::category(reason),
            other => other.kind(),
        }
    }
}
