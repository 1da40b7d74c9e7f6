//! Checks an encoded OTLP export request and counts its items by walking its
//! tags and lengths against the OTLP schema, without building any message:
//! what lets a request gort forwards unchanged travel as its bytes at the
//! cost of one pass over them.
//!
//! It accepts exactly what the decoding it replaces (prost, on
//! opentelemetry-proto's types) accepts, and counts what `Payload::items`
//! would count on that decoding: a wire type a known field cannot have, a
//! string that is not UTF-8, a varint over ten bytes or 64 bits, a length
//! past the end, a packed run that does not divide into its values, a
//! stray end-group, a key of tag 0, or nesting deeper than prost's limit of
//! 100 messages is refused; unknown fields are skipped (and forwarded). A
//! metric's data is a oneof: a later variant replaces an earlier one, the
//! same variant again merges into it, and only the data points of what
//! remains are counted. The differential fuzz target `otlp_walk` holds the
//! two to the same answers.

use std::ops::Range;

use thiserror::Error;

use super::Signal;

/// Why a request was refused (the first fault met).
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum Invalid {
    #[error("a varint is truncated or longer than 64 bits")]
    Varint,
    #[error("a field key is invalid (tag 0, wire type 6 or 7, or over 32 bits)")]
    Key,
    #[error("field {0} has a wire type its schema does not allow")]
    WireType(u32),
    #[error("a field runs past the end of its message")]
    Truncated,
    #[error("field {0} is a string that is not UTF-8")]
    Utf8(u32),
    #[error("a packed field does not divide into its values")]
    Packed,
    #[error("an end-group without its start")]
    EndGroup,
    #[error("messages nested deeper than 100")]
    TooDeep,
}

/// What a walk found in a valid request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Walked {
    /// Spans, data points or log records, as `Payload::items` counts them.
    pub items: u64,
    /// Each resource-level message's `resource` field, in order: where it
    /// occurs (its bytes, in order: more than one merge). Who sent the
    /// request: the first names the service, all of them decide whether
    /// linkage may enrich its spans.
    pub resources: Vec<Vec<Range<usize>>>,
}

/// How deep prost lets messages nest below the request.
const RECURSION_LIMIT: u32 = 100;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const DELIMITED: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

#[derive(Clone, Copy)]
enum Ty {
    Varint,
    Fixed64,
    Fixed32,
    Bytes,
    Str,
    Msg(&'static Msg),
}

#[derive(Clone, Copy)]
struct Field {
    tag: u32,
    ty: Ty,
    repeated: bool,
}

/// Which of a message's fields hold the request's items.
#[derive(Clone, Copy)]
enum Items {
    /// None directly: the sum of what its message fields hold.
    Within,
    /// Each occurrence of this field is one item.
    Each(u32),
    /// A oneof of these message fields: what the last variant holds.
    Oneof(&'static [u32]),
}

struct Msg {
    fields: &'static [Field],
    items: Items,
}

impl Msg {
    fn field(&self, tag: u32) -> Option<Field> {
        self.fields.iter().find(|f| f.tag == tag).copied()
    }
}

const fn one(tag: u32, ty: Ty) -> Field {
    Field { tag, ty, repeated: false }
}

const fn many(tag: u32, ty: Ty) -> Field {
    Field { tag, ty, repeated: true }
}

const fn msg(fields: &'static [Field]) -> Msg {
    Msg { fields, items: Items::Within }
}

use Ty::{Bytes, Fixed32, Fixed64, Msg as M, Str, Varint};

// opentelemetry.proto.common.v1
static ANY_VALUE: Msg = msg(&[
    one(1, Str),
    one(2, Varint),
    one(3, Varint),
    one(4, Fixed64),
    one(5, M(&ARRAY_VALUE)),
    one(6, M(&KEY_VALUE_LIST)),
    one(7, Bytes),
    one(8, Varint),
]);
static ARRAY_VALUE: Msg = msg(&[many(1, M(&ANY_VALUE))]);
static KEY_VALUE_LIST: Msg = msg(&[many(1, M(&KEY_VALUE))]);
static KEY_VALUE: Msg = msg(&[one(1, Str), one(2, M(&ANY_VALUE)), one(3, Varint)]);
static SCOPE: Msg = msg(&[one(1, Str), one(2, Str), many(3, M(&KEY_VALUE)), one(4, Varint)]);
static ENTITY_REF: Msg = msg(&[one(1, Str), one(2, Str), many(3, Str), many(4, Str)]);
// opentelemetry.proto.resource.v1
static RESOURCE: Msg = msg(&[many(1, M(&KEY_VALUE)), one(2, Varint), many(3, M(&ENTITY_REF))]);

// opentelemetry.proto.trace.v1
static TRACES: Msg = msg(&[many(1, M(&RESOURCE_SPANS))]);
static RESOURCE_SPANS: Msg = msg(&[one(1, M(&RESOURCE)), many(2, M(&SCOPE_SPANS)), one(3, Str)]);
static SCOPE_SPANS: Msg =
    Msg { fields: &[one(1, M(&SCOPE)), many(2, M(&SPAN)), one(3, Str)], items: Items::Each(2) };
static SPAN: Msg = msg(&[
    one(1, Bytes),
    one(2, Bytes),
    one(3, Str),
    one(4, Bytes),
    one(16, Fixed32),
    one(5, Str),
    one(6, Varint),
    one(7, Fixed64),
    one(8, Fixed64),
    many(9, M(&KEY_VALUE)),
    one(10, Varint),
    many(11, M(&EVENT)),
    one(12, Varint),
    many(13, M(&LINK)),
    one(14, Varint),
    one(15, M(&STATUS)),
]);
static EVENT: Msg = msg(&[one(1, Fixed64), one(2, Str), many(3, M(&KEY_VALUE)), one(4, Varint)]);
static LINK: Msg = msg(&[
    one(1, Bytes),
    one(2, Bytes),
    one(3, Str),
    many(4, M(&KEY_VALUE)),
    one(5, Varint),
    one(6, Fixed32),
]);
static STATUS: Msg = msg(&[one(2, Str), one(3, Varint)]);

// opentelemetry.proto.logs.v1
static LOGS: Msg = msg(&[many(1, M(&RESOURCE_LOGS))]);
static RESOURCE_LOGS: Msg = msg(&[one(1, M(&RESOURCE)), many(2, M(&SCOPE_LOGS)), one(3, Str)]);
static SCOPE_LOGS: Msg =
    Msg { fields: &[one(1, M(&SCOPE)), many(2, M(&LOG_RECORD)), one(3, Str)], items: Items::Each(2) };
static LOG_RECORD: Msg = msg(&[
    one(1, Fixed64),
    one(11, Fixed64),
    one(2, Varint),
    one(3, Str),
    one(5, M(&ANY_VALUE)),
    many(6, M(&KEY_VALUE)),
    one(7, Varint),
    one(8, Fixed32),
    one(9, Bytes),
    one(10, Bytes),
    one(12, Str),
]);

// opentelemetry.proto.metrics.v1
static METRICS: Msg = msg(&[many(1, M(&RESOURCE_METRICS))]);
static RESOURCE_METRICS: Msg = msg(&[one(1, M(&RESOURCE)), many(2, M(&SCOPE_METRICS)), one(3, Str)]);
static SCOPE_METRICS: Msg = msg(&[one(1, M(&SCOPE)), many(2, M(&METRIC)), one(3, Str)]);
static METRIC: Msg = Msg {
    fields: &[
        one(1, Str),
        one(2, Str),
        one(3, Str),
        many(12, M(&KEY_VALUE)),
        one(5, M(&GAUGE)),
        one(7, M(&SUM)),
        one(9, M(&HISTOGRAM)),
        one(10, M(&EXPONENTIAL_HISTOGRAM)),
        one(11, M(&SUMMARY)),
    ],
    items: Items::Oneof(&[5, 7, 9, 10, 11]),
};
static GAUGE: Msg = Msg { fields: &[many(1, M(&NUMBER_POINT))], items: Items::Each(1) };
static SUM: Msg =
    Msg { fields: &[many(1, M(&NUMBER_POINT)), one(2, Varint), one(3, Varint)], items: Items::Each(1) };
static HISTOGRAM: Msg =
    Msg { fields: &[many(1, M(&HISTOGRAM_POINT)), one(2, Varint)], items: Items::Each(1) };
static EXPONENTIAL_HISTOGRAM: Msg =
    Msg { fields: &[many(1, M(&EXPONENTIAL_POINT)), one(2, Varint)], items: Items::Each(1) };
static SUMMARY: Msg = Msg { fields: &[many(1, M(&SUMMARY_POINT))], items: Items::Each(1) };
static NUMBER_POINT: Msg = msg(&[
    many(7, M(&KEY_VALUE)),
    one(2, Fixed64),
    one(3, Fixed64),
    many(5, M(&EXEMPLAR)),
    one(8, Varint),
    one(4, Fixed64),
    one(6, Fixed64),
]);
static HISTOGRAM_POINT: Msg = msg(&[
    many(9, M(&KEY_VALUE)),
    one(2, Fixed64),
    one(3, Fixed64),
    one(4, Fixed64),
    one(5, Fixed64),
    many(6, Fixed64),
    many(7, Fixed64),
    many(8, M(&EXEMPLAR)),
    one(10, Varint),
    one(11, Fixed64),
    one(12, Fixed64),
]);
static EXPONENTIAL_POINT: Msg = msg(&[
    many(1, M(&KEY_VALUE)),
    one(2, Fixed64),
    one(3, Fixed64),
    one(4, Fixed64),
    one(5, Fixed64),
    one(6, Varint),
    one(7, Fixed64),
    one(8, M(&BUCKETS)),
    one(9, M(&BUCKETS)),
    one(10, Varint),
    many(11, M(&EXEMPLAR)),
    one(12, Fixed64),
    one(13, Fixed64),
    one(14, Fixed64),
]);
static BUCKETS: Msg = msg(&[one(1, Varint), many(2, Varint)]);
static SUMMARY_POINT: Msg = msg(&[
    many(7, M(&KEY_VALUE)),
    one(2, Fixed64),
    one(3, Fixed64),
    one(4, Fixed64),
    one(5, Fixed64),
    many(6, M(&QUANTILE)),
    one(8, Varint),
]);
static QUANTILE: Msg = msg(&[one(1, Fixed64), one(2, Fixed64)]);
static EXEMPLAR: Msg = msg(&[
    many(7, M(&KEY_VALUE)),
    one(2, Fixed64),
    one(4, Bytes),
    one(5, Bytes),
    one(3, Fixed64),
    one(6, Fixed64),
]);

/// Whether requests of `signal` can be walked (all but profiles, which
/// gort passes on decoded).
pub fn walkable(signal: Signal) -> bool {
    signal != Signal::Profiles
}

/// Checks `body` as an export request of `signal` and counts its items.
/// Profiles are not walked (`walkable`): they count as none.
pub fn walk(signal: Signal, body: &[u8]) -> Result<Walked, Invalid> {
    let schema = match signal {
        Signal::Traces => &TRACES,
        Signal::Metrics => &METRICS,
        Signal::Logs => &LOGS,
        Signal::Profiles => return Ok(Walked::default()),
    };
    let mut walker = Walker { buf: body, levels: Vec::new() };
    let items = walker.message(0..body.len(), schema, RECURSION_LIMIT)?;
    let resources = walker.levels.into_iter().map(|r| resource_fields(body, r)).collect();
    Ok(Walked { items, resources })
}

/// The resource whose `fields` a walk of `body` found (None where they do
/// not merge, which a walked request's do).
pub fn resource(body: &[u8], fields: &[Range<usize>]) -> Option<gort_proto::resource::Resource> {
    use prost::Message;
    let mut resource = gort_proto::resource::Resource::default();
    fields.iter().all(|r| body.get(r.clone()).is_some_and(|b| resource.merge(b).is_ok())).then_some(resource)
}

/// The `resource` fields of a (valid) resource-level message at `within`.
fn resource_fields(buf: &[u8], within: Range<usize>) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    let mut at = within.start;
    while at < within.end {
        let Ok(key) = varint(buf, &mut at, within.end) else { break };
        let (tag, wire) = ((key >> 3) as u32, (key & 7) as u8);
        let body = match wire {
            VARINT => varint(buf, &mut at, within.end).map(|_| at..at),
            FIXED64 => take(&mut at, 8, within.end),
            FIXED32 => take(&mut at, 4, within.end),
            DELIMITED => delimited(buf, &mut at, within.end),
            // Groups only come in unknown fields; resource is field 1.
            _ => break,
        };
        let Ok(body) = body else { break };
        if tag == 1 && wire == DELIMITED {
            found.push(body);
        }
    }
    found
}

struct Walker<'a> {
    buf: &'a [u8],
    /// The request's resource-level messages.
    levels: Vec<Range<usize>>,
}

impl Walker<'_> {
    /// Walks the message at `within` against `schema`, with `depth` more
    /// levels of nesting allowed below it; the items it holds.
    fn message(&mut self, within: Range<usize>, schema: &'static Msg, depth: u32) -> Result<u64, Invalid> {
        let (mut at, end) = (within.start, within.end);
        let (mut items, mut variant) = (0u64, 0u32);
        let top = depth == RECURSION_LIMIT;
        while at < end {
            let (tag, wire) = key(self.buf, &mut at, end)?;
            let Some(field) = schema.field(tag) else {
                skip(self.buf, &mut at, end, tag, wire, depth)?;
                continue;
            };
            match field.ty {
                Varint => scalar(self.buf, &mut at, end, field, wire, VARINT)?,
                Fixed64 => scalar(self.buf, &mut at, end, field, wire, FIXED64)?,
                Fixed32 => scalar(self.buf, &mut at, end, field, wire, FIXED32)?,
                Bytes | Str => {
                    if wire != DELIMITED {
                        return Err(Invalid::WireType(tag));
                    }
                    let body = delimited(self.buf, &mut at, end)?;
                    if matches!(field.ty, Str) && std::str::from_utf8(&self.buf[body]).is_err() {
                        return Err(Invalid::Utf8(tag));
                    }
                }
                M(inner) => {
                    if wire != DELIMITED {
                        return Err(Invalid::WireType(tag));
                    }
                    if depth == 0 {
                        return Err(Invalid::TooDeep);
                    }
                    let body = delimited(self.buf, &mut at, end)?;
                    if top {
                        self.levels.push(body.clone());
                    }
                    let held = self.message(body, inner, depth - 1)?;
                    match schema.items {
                        Items::Within => items += held,
                        Items::Each(t) if t == tag => items += 1,
                        Items::Each(_) => {}
                        Items::Oneof(tags) if tags.contains(&tag) => {
                            // prost: the same variant merges, another replaces.
                            if variant == tag {
                                items += held;
                            } else {
                                (variant, items) = (tag, held);
                            }
                        }
                        Items::Oneof(_) => {}
                    }
                }
            }
        }
        Ok(items)
    }
}

/// A known numeric field: its own wire type, or packed if repeated.
fn scalar(
    buf: &[u8],
    at: &mut usize,
    end: usize,
    field: Field,
    wire: u8,
    expected: u8,
) -> Result<(), Invalid> {
    if field.repeated && wire == DELIMITED {
        let run = delimited(buf, at, end)?;
        return match expected {
            VARINT => {
                let mut p = run.start;
                while p < run.end {
                    varint(buf, &mut p, run.end)?;
                }
                Ok(())
            }
            FIXED64 if run.len() % 8 == 0 => Ok(()),
            FIXED32 if run.len() % 4 == 0 => Ok(()),
            _ => Err(Invalid::Packed),
        };
    }
    if wire != expected {
        return Err(Invalid::WireType(field.tag));
    }
    match expected {
        VARINT => varint(buf, at, end).map(|_| ()),
        FIXED64 => take(at, 8, end).map(|_| ()),
        _ => take(at, 4, end).map(|_| ()),
    }
}

/// An unknown field, skipped as prost skips it (groups included, each
/// level of a group counting against the nesting limit).
fn skip(buf: &[u8], at: &mut usize, end: usize, tag: u32, wire: u8, depth: u32) -> Result<(), Invalid> {
    if depth == 0 {
        return Err(Invalid::TooDeep);
    }
    match wire {
        VARINT => varint(buf, at, end).map(|_| ()),
        FIXED64 => take(at, 8, end).map(|_| ()),
        FIXED32 => take(at, 4, end).map(|_| ()),
        DELIMITED => delimited(buf, at, end).map(|_| ()),
        START_GROUP => loop {
            let (inner, inner_wire) = key(buf, at, end)?;
            if inner_wire == END_GROUP {
                return if inner == tag { Ok(()) } else { Err(Invalid::EndGroup) };
            }
            skip(buf, at, end, inner, inner_wire, depth - 1)?;
        },
        _ => Err(Invalid::EndGroup),
    }
}

/// A field key: tag and wire type.
fn key(buf: &[u8], at: &mut usize, end: usize) -> Result<(u32, u8), Invalid> {
    let key = varint(buf, at, end)?;
    let wire = (key & 7) as u8;
    if key > u64::from(u32::MAX) || wire > FIXED32 || key >> 3 == 0 {
        return Err(Invalid::Key);
    }
    Ok(((key >> 3) as u32, wire))
}

/// A length-delimited field's body.
fn delimited(buf: &[u8], at: &mut usize, end: usize) -> Result<Range<usize>, Invalid> {
    let len = varint(buf, at, end)?;
    let len = usize::try_from(len).map_err(|_| Invalid::Truncated)?;
    take(at, len, end)
}

fn take(at: &mut usize, len: usize, end: usize) -> Result<Range<usize>, Invalid> {
    if len > end - *at {
        return Err(Invalid::Truncated);
    }
    let body = *at..*at + len;
    *at += len;
    Ok(body)
}

/// A varint of at most ten bytes whose value fits 64 bits.
fn varint(buf: &[u8], at: &mut usize, end: usize) -> Result<u64, Invalid> {
    let mut value = 0u64;
    for i in 0..10 {
        let Some(&b) = buf[..end].get(*at + i) else { return Err(Invalid::Varint) };
        if i == 9 && b > 1 {
            return Err(Invalid::Varint);
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            *at += i + 1;
            return Ok(value);
        }
    }
    Err(Invalid::Varint)
}

#[cfg(test)]
mod tests {
    use gort_proto::{
        common::{AnyValue, ArrayValue, KeyValue, any_value::Value},
        metrics::{
            Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
            Sum, metric::Data,
        },
        metrics_service::ExportMetricsServiceRequest,
        resource::Resource,
        trace::{ResourceSpans, ScopeSpans, Span},
        trace_service::ExportTraceServiceRequest,
    };
    use prost::Message;

    use super::*;
    use crate::pipeline::raw::decode_request;

    /// The walk and prost give the same answer; the walk's.
    fn agree(signal: Signal, body: &[u8]) -> Result<Walked, Invalid> {
        let walked = walk(signal, body);
        let decoded = decode_request(signal, body);
        match (&walked, &decoded) {
            (Ok(w), Some(p)) => assert_eq!(w.items, p.items(), "{body:02x?}"),
            (Err(_), None) => {}
            _ => panic!("walk {walked:?} but prost {:?} on {body:02x?}", decoded.is_some()),
        }
        walked
    }

    fn traces(spans: usize) -> ExportTraceServiceRequest {
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "GET /".into(),
            attributes: vec![KeyValue {
                key: "k".into(),
                value: Some(AnyValue { value: Some(Value::StringValue("v".into())) }),
                ..Default::default()
            }],
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![gort_proto::kv_str("service.name", "svc")],
                    ..Default::default()
                }),
                scope_spans: vec![
                    ScopeSpans { spans: vec![span.clone(); spans], ..Default::default() },
                    ScopeSpans { spans: vec![span], ..Default::default() },
                ],
                ..Default::default()
            }],
        }
    }

    fn metric(data: Data) -> Metric {
        Metric { name: "m".into(), data: Some(data), ..Default::default() }
    }

    fn metrics(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics { metrics, ..Default::default() }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn valid_requests_are_counted_as_their_decoding_counts_them() {
        let body = traces(3).encode_to_vec();
        let walked = agree(Signal::Traces, &body).unwrap();
        assert_eq!(walked.items, 4);
        let resource: Vec<Resource> =
            walked.resources[0].iter().map(|r| Resource::decode(&body[r.clone()]).unwrap()).collect();
        assert_eq!(resource, vec![traces(0).resource_spans[0].resource.clone().unwrap()]);
        assert_eq!(walked.resources.len(), traces(0).resource_spans.len());

        let point = NumberDataPoint::default();
        let histogram = HistogramDataPoint {
            bucket_counts: vec![1, 2, 3],
            explicit_bounds: vec![0.5, 1.0],
            ..Default::default()
        };
        let body = metrics(vec![
            metric(Data::Gauge(Gauge { data_points: vec![point.clone(); 2] })),
            metric(Data::Sum(Sum { data_points: vec![point; 3], ..Default::default() })),
            metric(Data::Histogram(Histogram { data_points: vec![histogram], ..Default::default() })),
        ])
        .encode_to_vec();
        assert_eq!(agree(Signal::Metrics, &body).unwrap().items, 6);
        assert_eq!(agree(Signal::Logs, &[]).unwrap(), Walked::default());
    }

    /// A metric's data field written twice: the same variant merges, another
    /// replaces (prost's and Go's oneof rule), and the count follows.
    #[test]
    fn a_metric_counts_the_data_points_of_its_last_variant() {
        let gauge = |n| metric(Data::Gauge(Gauge { data_points: vec![NumberDataPoint::default(); n] }));
        let sum = |n| {
            metric(Data::Sum(Sum { data_points: vec![NumberDataPoint::default(); n], ..Default::default() }))
        };
        // A metric's fields, concatenated: one metric with both.
        let twice = |a: Metric, b: Metric| {
            let mut m = a.encode_to_vec();
            m.extend(b.encode_to_vec());
            let mut scope = Vec::new();
            prost::encoding::bytes::encode(2, &m, &mut scope);
            let mut resource = Vec::new();
            prost::encoding::bytes::encode(2, &scope, &mut resource);
            let mut request = Vec::new();
            prost::encoding::bytes::encode(1, &resource, &mut request);
            request
        };
        assert_eq!(agree(Signal::Metrics, &twice(gauge(2), gauge(3))).unwrap().items, 5);
        assert_eq!(agree(Signal::Metrics, &twice(gauge(2), sum(3))).unwrap().items, 3);
        assert_eq!(agree(Signal::Metrics, &twice(sum(4), gauge(1))).unwrap().items, 1);
    }

    #[test]
    fn what_prost_refuses_is_refused() {
        let mut body = traces(1).encode_to_vec();
        // The span name "GET /" made not UTF-8.
        let at = body.windows(5).position(|w| w == b"GET /").unwrap();
        body[at] = 0xff;
        assert_eq!(agree(Signal::Traces, &body), Err(Invalid::Utf8(5)));
        // resource_spans as a varint; a key of tag 0; wire type 7; a length
        // past the end; an end-group alone; a varint of 11 bytes.
        for bad in [&[0x08, 0x01][..], &[0x00], &[0x0f], &[0x0a, 0x05, 0x00], &[0x0c], &[0x80; 11]] {
            assert!(agree(Signal::Traces, bad).is_err(), "{bad:02x?}");
        }
        // Packed bucket counts (fixed64) of 12 bytes.
        let point = {
            let mut p = Vec::new();
            prost::encoding::bytes::encode(6, &vec![0u8; 12], &mut p);
            p
        };
        let histogram = {
            let mut h = Vec::new();
            prost::encoding::bytes::encode(1, &point, &mut h);
            h
        };
        let mut m = Vec::new();
        prost::encoding::bytes::encode(9, &histogram, &mut m);
        let body = metrics(vec![]).encode_to_vec();
        assert!(agree(Signal::Metrics, &body).is_ok());
        let mut scope = Vec::new();
        prost::encoding::bytes::encode(2, &m, &mut scope);
        let mut resource = Vec::new();
        prost::encoding::bytes::encode(2, &scope, &mut resource);
        let mut request = Vec::new();
        prost::encoding::bytes::encode(1, &resource, &mut request);
        assert_eq!(agree(Signal::Metrics, &request), Err(Invalid::Packed));
    }

    /// Unknown fields are skipped, groups included; nesting stops where
    /// prost's limit does.
    #[test]
    fn unknown_fields_pass_and_nesting_is_bounded_as_prost_bounds_it() {
        // Field 9 as a group holding a varint, then field 10 as fixed32.
        let unknown = [0x4b, 0x08, 0x01, 0x4c, 0x55, 1, 2, 3, 4];
        assert_eq!(agree(Signal::Logs, &unknown).unwrap().items, 0);
        assert!(agree(Signal::Logs, &[0x4b, 0x08, 0x01, 0x54]).is_err(), "a group ended by another tag");
        // An attribute value of arrays nested `depth` deep, in a span.
        let nested = |depth: usize| {
            let mut value = AnyValue { value: Some(Value::IntValue(1)) };
            for _ in 0..depth {
                value = AnyValue { value: Some(Value::ArrayValue(ArrayValue { values: vec![value] })) };
            }
            let mut request = traces(1);
            request.resource_spans[0].scope_spans[0].spans[0].attributes[0].value = Some(value);
            request.encode_to_vec()
        };
        // Request, resource, scope, span, attribute and value are 6 levels;
        // each array adds 2: 47 arrays make 100 levels, the most prost takes.
        assert!(agree(Signal::Traces, &nested(47)).is_ok());
        assert_eq!(agree(Signal::Traces, &nested(48)), Err(Invalid::TooDeep));
    }
}
