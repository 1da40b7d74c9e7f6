//! gort's userspace: binary analysis, probe loading, the run loop, and export.
pub mod analysis;
pub mod bpf;
pub mod config;
pub mod duration;
pub mod export;
pub mod goroutines;
pub mod linkage;
pub mod offsets;
pub mod pipeline;
pub mod probe_table;
pub mod run;
pub mod sampling;
pub mod sdk_offsets;
pub mod stats;
pub mod target;
pub mod wait_reasons;
