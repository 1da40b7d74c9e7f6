//! Host-side stub of the probes crate; the programs live in `main.rs` and are
//! only built for the BPF target.
#![no_std]
