//! Types shared by gort's eBPF probes and its userspace receiver.
//!
//! Every type that crosses the kernel/userspace boundary (map keys, map values,
//! ring-buffer records) is defined here once, `#[repr(C)]` with explicit padding
//! and a compile-time size assertion, so both sides agree on the layout by
//! construction rather than by convention.
#![no_std]

pub mod field;
pub mod histogram;
pub mod ids;
pub mod limits;
pub mod names;
pub mod records;
pub mod runtime;
pub mod spans;
pub mod target;

pub use self::{
    field::{Field, Module},
    histogram::{
        HISTOGRAMS, MAX_WAIT_REASONS, MAX_WEIGHT, RUNTIME_GOROUTINE, WEIGHT_ONE, blocked_base,
        interval_weight, time_hist,
    },
    ids::{CounterId, HistogramId, ProbeId, event_kind},
    limits::*,
    records::*,
    runtime::{gstatus, stw_reason},
    spans::*,
    target::{NO_OFFSET, TargetConfig, TargetGc, TargetSlot},
};
