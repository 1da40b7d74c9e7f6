//! What gort reads about a target: the in-kernel aggregates of the probes
//! (`stats`), and from the target's own memory its goroutines (`census`,
//! with the leak watch over censuses in `leaks`) and the runtime's own
//! statistics (`runtime_stats`).
pub mod census;
pub mod exemplars;
pub mod leaks;
pub mod memory;
pub mod runtime_stats;
pub mod stats;
pub mod wait_profile;
