//! What gort reads about a target: the in-kernel aggregates of the probes
//! (`stats`) and the goroutines in the target's own memory (`census`).
pub mod census;
pub mod exemplars;
pub mod stats;
