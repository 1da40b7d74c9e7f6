//! Requests gort forwards unchanged, kept as the protobuf bytes they arrived
//! in: the service's metrics and logs, and its spans while no linked target
//! is attached. A request is not decoded: `walk` checks it, counts its
//! items and finds who sent it; the queue holds the bytes, which take a
//! fraction of a decoded request's memory, and the forwarder sends them
//! without encoding anything again.
//!
//! Requests of one signal batch by concatenation: in protobuf, two encoded
//! `Export*ServiceRequest`s written one after the other are one request
//! holding both lists of resources (repeated fields merge).

use bytes::Bytes;
use gort_proto::{
    logs_service::ExportLogsServiceRequest, metrics_service::ExportMetricsServiceRequest,
    profiles_service::ExportProfilesServiceRequest, trace_service::ExportTraceServiceRequest,
};
use prost::Message;

use super::{Payload, Signal};

/// One or more encoded requests of one signal, in arrival order.
#[derive(Clone, Debug, PartialEq)]
pub struct Raw {
    signal: Signal,
    items: u64,
    chunks: Vec<Bytes>,
}

impl Raw {
    /// A request of `signal` holding `items` items, as the bytes `body`
    /// (which decoded as that signal's request: the caller checked).
    pub fn new(signal: Signal, items: u64, body: Bytes) -> Self {
        Self { signal, items, chunks: vec![body] }
    }

    /// A decoded request, encoded: so that it can join a batch of bytes.
    pub fn encode(payload: &Payload) -> Self {
        Self::new(payload.signal(), payload.items(), payload.to_bytes())
    }

    /// Its bytes, when they are one piece (one request, not yet batched).
    pub fn single(&self) -> Option<&Bytes> {
        match self.chunks.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// Its requests' bytes, in order: concatenated, one request.
    pub fn chunks(&self) -> &[Bytes] {
        &self.chunks
    }

    pub fn signal(&self) -> Signal {
        self.signal
    }

    pub fn items(&self) -> u64 {
        self.items
    }

    /// Its size in bytes: the room it takes in the queue.
    pub fn encoded_len(&self) -> u64 {
        self.chunks.iter().map(|c| c.len() as u64).sum()
    }

    /// Appends the requests' bytes to `out`: one request holding them all.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len() as usize);
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
    }

    /// Appends `other`'s requests; they must be of the same signal.
    pub fn append(&mut self, other: Raw) {
        debug_assert_eq!(self.signal, other.signal);
        self.items += other.items;
        self.chunks.extend(other.chunks);
    }

    /// The requests decoded: for `--otlp-json`, which writes what is
    /// forwarded as JSON. None if the bytes do not decode, which the check
    /// at arrival rules out.
    pub fn decode(&self) -> Option<Payload> {
        let mut body = Vec::new();
        self.write(&mut body);
        decode_request(self.signal, &body)
    }
}

/// `body` decoded as an export request of `signal`; None if it does not
/// decode.
pub fn decode_request(signal: Signal, body: &[u8]) -> Option<Payload> {
    Some(match signal {
        Signal::Traces => Payload::Traces(ExportTraceServiceRequest::decode(body).ok()?),
        Signal::Metrics => Payload::Metrics(ExportMetricsServiceRequest::decode(body).ok()?),
        Signal::Logs => Payload::Logs(ExportLogsServiceRequest::decode(body).ok()?),
        Signal::Profiles => Payload::Profiles(Box::new(ExportProfilesServiceRequest::decode(body).ok()?)),
    })
}

#[cfg(test)]
mod tests {
    use gort_proto::{
        logs::{LogRecord, ResourceLogs, ScopeLogs},
        metrics::{Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data},
    };

    use super::*;

    fn logs(records: usize, body: &str) -> ExportLogsServiceRequest {
        let record = LogRecord {
            time_unix_nano: 1,
            body: Some(gort_proto::common::AnyValue {
                value: Some(gort_proto::common::any_value::Value::StringValue(body.into())),
            }),
            ..Default::default()
        };
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs { log_records: vec![record; records], ..Default::default() }],
                ..Default::default()
            }],
        }
    }

    fn gauge(points: usize) -> ExportMetricsServiceRequest {
        let metric = Metric {
            name: "g".into(),
            data: Some(Data::Gauge(Gauge { data_points: vec![NumberDataPoint::default(); points] })),
            ..Default::default()
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics { metrics: vec![metric], ..Default::default() }],
                ..Default::default()
            }],
        }
    }

    fn raw(p: &Payload) -> Raw {
        Raw::new(p.signal(), p.items(), p.to_bytes())
    }

    impl Payload {
        fn clone_encoded(&self) -> Vec<u8> {
            self.to_bytes().to_vec()
        }
    }

    #[test]
    fn concatenated_requests_are_the_merged_request() {
        let (a, b) = (Payload::Logs(logs(2, "a")), Payload::Logs(logs(3, "b")));
        let mut merged = a.clone();
        merged.merge(b.clone()).unwrap();
        let mut batch = raw(&a);
        batch.append(raw(&b));
        assert_eq!(batch.items(), 5);
        assert_eq!(batch.decode(), Some(merged.clone()));
        let mut written = Vec::new();
        batch.write(&mut written);
        assert_eq!(batch.encoded_len(), written.len() as u64);
        assert_eq!(written, merged.clone_encoded());
    }

    #[test]
    fn a_decoded_request_joins_a_batch_of_bytes_and_the_other_way_round() {
        let (received, own) = (Payload::Metrics(gauge(4)), Payload::Metrics(gauge(2)));
        let mut expected = received.clone();
        expected.merge(own.clone()).unwrap();

        let mut bytes_first = Payload::Raw(raw(&received));
        bytes_first.merge(own.clone()).unwrap();
        assert_eq!(bytes_first.items(), 6);
        assert_eq!(bytes_first.clone_encoded(), expected.clone_encoded());

        let mut decoded_first = received.clone();
        decoded_first.merge(Payload::Raw(raw(&own))).unwrap();
        assert_eq!(decoded_first.items(), 6);
        assert_eq!(decoded_first.clone_encoded(), expected.clone_encoded());
        assert_eq!(decoded_first.encoded_len(), expected.encoded_len());
    }

    #[test]
    fn a_request_gort_does_not_change_is_forwarded_as_the_bytes_it_arrived_in() {
        let shared = super::super::Shared::new(&crate::config::PipelineConfig::default());
        let mut body = Payload::Logs(logs(2, "kept")).clone_encoded();
        // A field this gort's schema does not know (a newer OTLP's): decoding
        // and encoding again would drop it; the bytes keep it.
        body.extend_from_slice(&[0xf8, 0x01, 0x07]);
        let offer = |body: Vec<u8>| {
            let walked = super::super::walk::walk(Signal::Logs, &body).unwrap();
            shared.offer_bytes(Signal::Logs, Bytes::from(body), &walked)
        };
        assert!(offer(body.clone()));
        assert!(offer(logs(1, "b").encode_to_vec()));
        let mut batch = shared.queue.take(super::super::queue::Room::ALL).unwrap();
        assert_eq!(batch.items, 3);
        let payload = batch.take_payload();
        assert!(matches!(payload, Payload::Raw(_)), "kept as bytes");
        let mut sent = Vec::new();
        payload.encode(&mut sent);
        assert_eq!(&sent[..body.len()], body.as_slice());
        assert_eq!(shared.counters.get(Signal::Logs).accepted, 3);
    }

    /// Spans are decoded only while a linked target could enrich them, and
    /// once it has named its service (its first span enriched), only those
    /// of that service: another service's go on as their bytes.
    #[test]
    fn spans_are_kept_as_bytes_unless_a_linked_target_may_enrich_them() {
        use gort_proto::{
            resource::Resource,
            trace::{ResourceSpans, ScopeSpans, Span},
            trace_service::ExportTraceServiceRequest,
        };

        use super::super::{Keep, linkage::Probed};
        let shared = super::super::Shared::new(&crate::config::PipelineConfig::default());
        let linkage = shared.linkage.as_ref().expect("linkage is on by default");
        assert_eq!(shared.keeps(Signal::Traces), Keep::Bytes);
        linkage.set_linked(7, true);
        assert_eq!(shared.keeps(Signal::Traces), Keep::Decoded);
        assert_eq!((shared.keeps(Signal::Metrics), shared.keeps(Signal::Logs)), (Keep::Bytes, Keep::Bytes));
        assert_eq!(shared.keeps(Signal::Profiles), Keep::Decoded);

        let from = |service: &str, n: u8| ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![gort_proto::kv_str("service.name", service)],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span { trace_id: vec![n; 16], span_id: vec![n; 8], ..Default::default() }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let account = crate::linkage::Account { start_seen: true, ..Default::default() };
        linkage.feed(Probed { accounts: vec![(7, ([1; 16], [1; 8]), account)], ..Default::default() });
        assert!(shared.offer(Payload::Traces(from("checkout", 1))));
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        rt.block_on(async {
            let stage = tokio::spawn(super::super::linkage::run(shared.clone(), stopped));
            for _ in 0..100 {
                if linkage.knows_services() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            let _ = stop.send(true);
            let _ = stage.await;
        });
        assert_eq!(linkage.counts().enriched, 1);
        assert_eq!(shared.keeps(Signal::Traces), Keep::ByService);
        for (service, bytes) in [("checkout", false), ("billing", true)] {
            let mut body = from(service, 2).encode_to_vec();
            // An unknown field: decoding and encoding again would drop it.
            body.extend_from_slice(&[0xf8, 0x01, 0x07]);
            let walked = super::super::walk::walk(Signal::Traces, &body).unwrap();
            assert_eq!(shared.keeps_spans_of(&body, &walked), bytes, "{service}");
        }
        // A request decoded all the same (OTLP/JSON) from another service
        // is not held: nothing will come to enrich it.
        assert!(shared.offer(Payload::Traces(from("billing", 3))));
        assert_eq!(linkage.counts().held_spans, 0);
        linkage.set_linked(7, false);
        assert_eq!(shared.keeps(Signal::Traces), Keep::Bytes);
    }

    #[test]
    fn requests_of_different_signals_do_not_merge() {
        let mut logs = Payload::Raw(raw(&Payload::Logs(logs(1, "x"))));
        let metrics = Payload::Raw(raw(&Payload::Metrics(gauge(1))));
        assert_eq!(logs.merge(metrics.clone()), Err(metrics));
        assert_eq!(logs.merge(Payload::Metrics(gauge(1))), Err(Payload::Metrics(gauge(1))));
        assert_eq!(logs.items(), 1);
    }
}
