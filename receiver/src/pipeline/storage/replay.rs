//! At start, what an earlier run left in the log goes to the queue again,
//! one segment at a time and only as the queue has room, so a long log does
//! not take more memory than the queue's bounds allow.

use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};

use super::super::{SIGNALS, Shared, Signal, queue::Room};

/// How often a replay waiting for room looks again.
const ROOM_POLL: Duration = Duration::from_millis(20);

pub async fn replay(shared: Arc<Shared>, segments: Vec<u64>, stop: tokio::sync::watch::Receiver<bool>) {
    let Some(storage) = &shared.storage else { return };
    let mut totals = [0u64; SIGNALS];
    let (damaged, truncated) = (storage.stats.damaged.load(Relaxed), storage.stats.truncated.load(Relaxed));
    for id in &segments {
        if *stop.borrow() {
            return;
        }
        let s = shared.clone();
        let id = *id;
        let read = tokio::task::spawn_blocking(move || s.storage.as_ref().map(|st| st.read_segment(id)));
        let Ok(Some(records)) = read.await else { continue };
        for (mark, payload) in records {
            let (signal, items) = (payload.signal(), payload.items());
            let room = Room { items, bytes: payload.encoded_len() };
            // Recovered requests were acknowledged by the run that wrote
            // them: they wait for room rather than being refused, and what
            // is not replayed by shutdown stays in the log.
            while shared.queue.reserve(room).is_err() {
                if *stop.borrow() {
                    return;
                }
                tokio::time::sleep(ROOM_POLL).await;
            }
            storage.recovered(signal, items);
            totals[signal.index()] += items;
            // Not held for linkage: the probe data of a run that is gone
            // will not arrive.
            shared.enqueue_reserved(payload, room, Some(mark));
        }
    }
    let what: Vec<String> = Signal::ALL
        .iter()
        .filter(|s| totals[s.index()] > 0)
        .map(|s| format!("{} {}", totals[s.index()], s.items()))
        .collect();
    log::info!(
        "storage: replayed {} from {} segment(s) an earlier run left; {} damaged record(s) skipped, {} cut short",
        if what.is_empty() { "nothing".to_owned() } else { what.join(", ") },
        segments.len(),
        storage.stats.damaged.load(Relaxed) - damaged,
        storage.stats.truncated.load(Relaxed) - truncated,
    );
}
