//! gort's userspace: binary analysis, probe loading, the run loop, and export.
pub use gort_goexe as analysis;
pub mod bpf;
pub mod config;
pub mod duration;
pub mod export;
pub mod goroutines;
pub mod linkage;
pub mod pipeline;
pub mod probe_table;
pub mod run;
pub mod sampling;
pub mod stats;
pub mod target;
pub use gort_goexe::wait_reasons;
