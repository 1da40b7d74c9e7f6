//! The bounded queue between receivers and forwarder, sized in items
//! (spans, data points, log records) rather than requests, because a request
//! can hold one span or ten thousand. Items stay counted until the forwarder
//! reports them sent or dropped, so the bound covers what is in flight too.

use std::{
    collections::VecDeque,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::Notify;

use super::{Payload, Signal};

/// The queue had no room for the request (it is refused whole).
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

struct Entry {
    payload: Payload,
    items: u64,
    enqueued: Instant,
}

pub struct Queue {
    waiting: Mutex<VecDeque<Entry>>,
    /// Items waiting plus items in flight.
    held: AtomicU64,
    capacity: u64,
    /// Woken on every push.
    pushed: Notify,
    /// Batches taken and not yet released: (token, oldest request's arrival).
    in_flight: Mutex<Vec<(u64, Instant)>>,
    next_token: AtomicU64,
}

/// A batch taken for sending: one signal, merged requests.
pub struct Batch {
    pub payload: Payload,
    pub items: u64,
    /// When its oldest request arrived.
    pub oldest: Instant,
    token: u64,
}

impl Queue {
    pub fn new(capacity: u64) -> Self {
        Self {
            waiting: Mutex::new(VecDeque::new()),
            held: AtomicU64::new(0),
            capacity,
            pushed: Notify::new(),
            in_flight: Mutex::new(Vec::new()),
            next_token: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry>> {
        // A panic while holding this lock cannot leave the deque invalid.
        self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn push(&self, payload: Payload, items: u64) -> Result<(), Full> {
        self.reserve(items)?;
        self.push_reserved(payload, items);
        Ok(())
    }

    /// Takes room for `items` gort made from accepted ones (trace linkage's
    /// child spans), whatever the capacity: refusing them would lose data
    /// the client was told is delivered.
    pub fn add_reserved(&self, items: u64) {
        self.held.fetch_add(items, Ordering::Relaxed);
    }

    /// Takes room for `items` to be pushed later with `push_reserved`
    /// (trace linkage holds spans before they enter the queue).
    pub fn reserve(&self, items: u64) -> Result<(), Full> {
        // Under the lock, so two reservations cannot both take the last room.
        let _waiting = self.lock();
        let held = self.held.load(Ordering::Relaxed);
        // An empty request is accepted (nothing to hold); any other must fit.
        if items > 0 && held + items > self.capacity {
            return Err(Full);
        }
        self.held.fetch_add(items, Ordering::Relaxed);
        Ok(())
    }

    /// Queues a request whose room `reserve` took.
    pub fn push_reserved(&self, payload: Payload, items: u64) {
        self.lock().push_back(Entry { payload, items, enqueued: Instant::now() });
        self.pushed.notify_one();
    }

    /// Items waiting or in flight.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// (items waiting, age of the oldest waiting request).
    pub fn waiting(&self) -> (u64, Option<Duration>) {
        let w = self.lock();
        (w.iter().map(|e| e.items).sum(), w.front().map(|e| e.enqueued.elapsed()))
    }

    fn flights(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Instant)>> {
        self.in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Age of the oldest request not yet delivered, waiting or in flight
    /// (being retried): the pipeline's lag.
    pub fn lag(&self) -> Option<Duration> {
        let waiting = self.waiting().1;
        let flying = self.flights().iter().map(|(_, t)| t.elapsed()).max();
        waiting.max(flying)
    }

    /// Takes up to `max_items` (at least one request) of the signal at the
    /// front, merged into one request.
    pub fn take(&self, max_items: u64) -> Option<Batch> {
        let mut w = self.lock();
        let first = w.pop_front()?;
        let signal: Signal = first.payload.signal();
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let mut batch = Batch { payload: first.payload, items: first.items, oldest: first.enqueued, token };
        while let Some(next) = w.front() {
            if next.payload.signal() != signal || batch.items + next.items > max_items {
                break;
            }
            let Some(next) = w.pop_front() else { break };
            batch.items += next.items;
            if let Err(back) = batch.payload.merge(next.payload) {
                // Not mergeable (profiles): it leaves in the next batch.
                w.push_front(Entry { payload: back, items: next.items, enqueued: next.enqueued });
                batch.items -= next.items;
                break;
            }
        }
        drop(w);
        self.flights().push((token, batch.oldest));
        Some(batch)
    }

    /// The forwarder is done with a batch (sent or dropped).
    pub fn release(&self, batch: &Batch) {
        self.flights().retain(|(t, _)| *t != batch.token);
        self.held.fetch_sub(batch.items, Ordering::Relaxed);
    }

    /// Waits for the next push (or `timeout`).
    pub async fn wait_push(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.pushed.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use gort_proto::{
        trace::{ResourceSpans, ScopeSpans, Span},
        trace_service::ExportTraceServiceRequest,
    };

    use super::*;

    fn spans(n: usize) -> Payload {
        Payload::Traces(ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans: vec![Span::default(); n], ..Default::default() }],
                ..Default::default()
            }],
        })
    }

    #[test]
    fn refuses_what_does_not_fit_and_counts_in_flight_items() {
        let q = Queue::new(10);
        assert_eq!(q.push(spans(6), 6), Ok(()));
        assert_eq!(q.push(spans(5), 5), Err(Full));
        let batch = q.take(100).unwrap();
        assert_eq!(batch.items, 6);
        // Taken but not yet sent: still held.
        assert_eq!(q.push(spans(5), 5), Err(Full));
        assert!(q.lag().is_some(), "an in-flight batch counts in the lag");
        q.release(&batch);
        assert_eq!(q.lag(), None);
        assert_eq!(q.push(spans(5), 5), Ok(()));
    }

    #[test]
    fn batches_merge_requests_of_one_signal_up_to_the_limit() {
        let q = Queue::new(100);
        for _ in 0..3 {
            q.push(spans(4), 4).unwrap();
        }
        let b = q.take(8).unwrap();
        assert_eq!((b.items, b.payload.items()), (8, 8));
        assert_eq!(q.waiting().0, 4);
    }
}
