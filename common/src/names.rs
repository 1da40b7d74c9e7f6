//! Names of the maps and programs in the probes object. Userspace looks them up
//! by these strings; the probes declare them with the same names.

pub const MAP_TARGETS: &str = "GORT_TARGETS";
pub const MAP_PROBE_HITS: &str = "GORT_PROBE_HITS";
pub const MAP_GOIDS_SEEN: &str = "GORT_GOIDS_SEEN";
pub const MAP_HISTOGRAMS: &str = "GORT_HISTOGRAMS";
pub const MAP_COUNTERS: &str = "GORT_COUNTERS";
pub const MAP_TARGET_GC: &str = "GORT_TARGET_GC";
pub const MAP_GSTATE: &str = "GORT_GSTATE";
pub const MAP_EVENTS: &str = "GORT_EVENTS";
pub const PROG_EXECUTE: &str = "gort_execute";
pub const PROG_READY: &str = "gort_ready";
pub const PROG_CASGSTATUS: &str = "gort_casgstatus";
/// The same program as a multi-uprobe (`uprobe.multi`) program.
pub const PROG_CASGSTATUS_MULTI: &str = "gort_casgstatus_multi";
pub const PROG_STW_START: &str = "gort_stw_start";
pub const PROG_STW_END: &str = "gort_stw_end";
pub const PROG_STW_ARGS: &str = "gort_stw_args";
pub const MAP_SPANS: &str = "GORT_SPANS";
pub const MAP_SPAN_EVENTS: &str = "GORT_SPAN_EVENTS";
pub const MAP_RUNTIME_ENTRIES: &str = "GORT_RUNTIME_ENTRIES";
pub const PROG_SPAN_START: &str = "gort_span_start";
pub const PROG_SPAN_END: &str = "gort_span_end";
