//! The bounded queue between receivers and forwarder, sized in items
//! (spans, data points, log records) rather than requests, because a request
//! can hold one span or ten thousand, and in bytes (each request's encoded
//! size), because an item can be 100 bytes or a megabyte: the byte bound is
//! what bounds gort's memory whatever its senders send. Room stays taken
//! until the forwarder reports a batch sent or dropped, so the bounds cover
//! what is in flight too.

use std::{
    collections::VecDeque,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::Notify;

use super::{Payload, Signal, storage::Mark};

/// The queue had no room for the request (it is refused whole).
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

/// The room a request takes: its items, and its encoded size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Room {
    pub items: u64,
    pub bytes: u64,
}

impl Room {
    /// No bound: what a drain at shutdown takes.
    pub const ALL: Room = Room { items: u64::MAX, bytes: u64::MAX };
}

struct Entry {
    payload: Payload,
    room: Room,
    /// Its record in the persistent queue.
    mark: Option<Mark>,
    enqueued: Instant,
}

pub struct Queue {
    waiting: Mutex<VecDeque<Entry>>,
    /// Items waiting plus items in flight.
    held: AtomicU64,
    /// Their bytes.
    held_bytes: AtomicU64,
    capacity: Room,
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
    /// The room its requests took, given back at `release`.
    bytes: u64,
    /// When its oldest request arrived.
    pub oldest: Instant,
    /// The persistent queue's records of its requests.
    pub marks: Vec<Mark>,
    token: u64,
}

impl Batch {
    /// The batch's requests, leaving an empty one of the same signal: what
    /// is sent no longer needs them, and the books need only the counts.
    pub fn take_payload(&mut self) -> Payload {
        let signal = self.payload.signal();
        std::mem::replace(&mut self.payload, Payload::empty(signal))
    }
}

impl Queue {
    pub fn new(capacity: Room) -> Self {
        Self {
            waiting: Mutex::new(VecDeque::new()),
            held: AtomicU64::new(0),
            held_bytes: AtomicU64::new(0),
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

    pub fn push(&self, payload: Payload, room: Room) -> Result<(), Full> {
        self.reserve(room)?;
        self.push_reserved(payload, room, None);
        Ok(())
    }

    /// Takes room gort's own additions to accepted items need (trace
    /// linkage's child spans), whatever the capacity: refusing them would
    /// lose data the client was told is delivered.
    pub fn add_reserved(&self, room: Room) {
        self.held.fetch_add(room.items, Ordering::Relaxed);
        self.held_bytes.fetch_add(room.bytes, Ordering::Relaxed);
    }

    /// Takes `room` for a request to be pushed later with `push_reserved`
    /// (trace linkage holds spans before they enter the queue).
    pub fn reserve(&self, room: Room) -> Result<(), Full> {
        // Under the lock, so two reservations cannot both take the last room.
        let _waiting = self.lock();
        let (held, bytes) = (self.held.load(Ordering::Relaxed), self.held_bytes.load(Ordering::Relaxed));
        // An empty request is accepted (nothing to hold); any other must
        // fit, except that one request alone always fits the byte bound (a
        // request larger than it is the receiver's size limit's business).
        let too_many = held + room.items > self.capacity.items;
        let too_big = bytes > 0 && bytes + room.bytes > self.capacity.bytes;
        if room.items > 0 && (too_many || too_big) {
            return Err(Full);
        }
        self.add_reserved(room);
        Ok(())
    }

    /// Gives back room `reserve` took for a request that was not queued
    /// after all (the persistent queue could not write it).
    pub fn unreserve(&self, room: Room) {
        self.held.fetch_sub(room.items, Ordering::Relaxed);
        self.held_bytes.fetch_sub(room.bytes, Ordering::Relaxed);
    }

    /// Queues a request whose room `reserve` took.
    pub fn push_reserved(&self, payload: Payload, room: Room, mark: Option<Mark>) {
        self.lock().push_back(Entry { payload, room, mark, enqueued: Instant::now() });
        self.pushed.notify_one();
    }

    /// Items waiting or in flight.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Their encoded bytes.
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes.load(Ordering::Relaxed)
    }

    /// (room the waiting requests take, age of the oldest of them).
    pub fn waiting(&self) -> (Room, Option<Duration>) {
        let w = self.lock();
        let room = w.iter().fold(Room::default(), |sum, e| Room {
            items: sum.items + e.room.items,
            bytes: sum.bytes + e.room.bytes,
        });
        (room, w.front().map(|e| e.enqueued.elapsed()))
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

    /// Takes up to `max` items and encoded bytes (at least one request) of
    /// the signal at the front, merged into one request: its bytes are the
    /// size of the message sent, which an upstream bounds (4 MiB in a
    /// Collector's default OTLP/gRPC receiver).
    pub fn take(&self, max: Room) -> Option<Batch> {
        let mut w = self.lock();
        let first = w.pop_front()?;
        let signal: Signal = first.payload.signal();
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let mut batch = Batch {
            payload: first.payload,
            items: first.room.items,
            bytes: first.room.bytes,
            oldest: first.enqueued,
            marks: first.mark.into_iter().collect(),
            token,
        };
        while let Some(next) = w.front() {
            if next.payload.signal() != signal
                || batch.items + next.room.items > max.items
                || batch.bytes + next.room.bytes > max.bytes
            {
                break;
            }
            let Some(next) = w.pop_front() else { break };
            if let Err(back) = batch.payload.merge(next.payload) {
                // Not mergeable (profiles): it leaves in the next batch.
                w.push_front(Entry {
                    payload: back,
                    room: next.room,
                    mark: next.mark,
                    enqueued: next.enqueued,
                });
                break;
            }
            batch.items += next.room.items;
            batch.bytes += next.room.bytes;
            batch.marks.extend(next.mark);
        }
        drop(w);
        self.flights().push((token, batch.oldest));
        Some(batch)
    }

    /// The forwarder is done with a batch (sent or dropped).
    pub fn release(&self, batch: &Batch) {
        self.flights().retain(|(t, _)| *t != batch.token);
        self.held.fetch_sub(batch.items, Ordering::Relaxed);
        self.held_bytes.fetch_sub(batch.bytes, Ordering::Relaxed);
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

    fn room(items: u64, bytes: u64) -> Room {
        Room { items, bytes }
    }

    #[test]
    fn refuses_what_does_not_fit_and_counts_in_flight_items() {
        let q = Queue::new(room(10, 1 << 20));
        assert_eq!(q.push(spans(6), room(6, 60)), Ok(()));
        assert_eq!(q.push(spans(5), room(5, 50)), Err(Full));
        let batch = q.take(room(100, u64::MAX)).unwrap();
        assert_eq!(batch.items, 6);
        // Taken but not yet sent: still held.
        assert_eq!(q.push(spans(5), room(5, 50)), Err(Full));
        assert!(q.lag().is_some(), "an in-flight batch counts in the lag");
        q.release(&batch);
        assert_eq!(q.lag(), None);
        assert_eq!((q.held(), q.held_bytes()), (0, 0));
        assert_eq!(q.push(spans(5), room(5, 50)), Ok(()));
    }

    #[test]
    fn bytes_bound_what_items_do_not() {
        let q = Queue::new(room(1000, 100));
        // One request larger than the bound fits an empty queue...
        assert_eq!(q.push(spans(1), room(1, 150)), Ok(()));
        // ...and nothing more until it has gone.
        assert_eq!(q.push(spans(1), room(1, 1)), Err(Full));
        let b = q.take(room(1000, u64::MAX)).unwrap();
        q.release(&b);
        assert_eq!(q.push(spans(2), room(2, 60)), Ok(()));
        assert_eq!(q.push(spans(2), room(2, 40)), Ok(()));
        assert_eq!(
            q.push(spans(2), room(2, 1)),
            Err(Full),
            "100 bytes held of 100: full, with 4 items of 1000"
        );
        let b = q.take(room(1000, u64::MAX)).unwrap();
        assert_eq!(
            (b.items, b.bytes),
            (4, 100),
            "a batch gives back the room of every request merged into it"
        );
        q.release(&b);
        assert_eq!(q.held_bytes(), 0);
    }

    #[test]
    fn batches_merge_requests_of_one_signal_up_to_the_limit() {
        let q = Queue::new(room(100, 1 << 20));
        for _ in 0..3 {
            q.push(spans(4), room(4, 40)).unwrap();
        }
        let b = q.take(room(8, u64::MAX)).unwrap();
        assert_eq!((b.items, b.bytes, b.payload.items()), (8, 80, 8));
        assert_eq!(q.waiting().0.items, 4);
    }

    #[test]
    fn batches_stay_within_the_bytes_an_upstream_takes() {
        let q = Queue::new(room(100, 1 << 20));
        for _ in 0..3 {
            q.push(spans(4), room(4, 40)).unwrap();
        }
        assert_eq!(q.waiting().0, room(12, 120));
        let b = q.take(room(100, 99)).unwrap();
        assert_eq!((b.items, b.bytes), (8, 80), "a third request would make 120 bytes");
        // One request larger than the bound still goes, alone.
        let b = q.take(room(100, 10)).unwrap();
        assert_eq!((b.items, b.bytes), (4, 40));
        assert!(q.take(Room::ALL).is_none());
    }
}
