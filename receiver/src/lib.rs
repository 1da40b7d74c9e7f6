//! gort's userspace, by room: the command line (`cli`), one configuration
//! (`config`), finding the target (`target`), loading and attaching the
//! probes (`bpf`), reading what they and the target's memory hold
//! (`telemetry`), one module per telemetry feature behind one trait (`features`), the per-target session loop (`session`), the conversion to
//! OTLP (`export`), the join of spans with probe data (`linkage`), and the
//! OTLP pipeline (`pipeline`). Go-executable analysis is its own crate,
//! `gort-goexe`; kernel/userspace types are `gort-common`.
pub mod bpf;
pub mod cli;
pub mod config;
pub mod dump;
pub mod export;
pub mod features;
pub mod linkage;
pub mod pipeline;
pub mod privileges;
pub mod session;
pub mod target;
pub mod telemetry;
