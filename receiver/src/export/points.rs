//! Builders of OTLP metric points, the one way gort's numbers become wire
//! messages: cumulative sums, gauges, and explicit-bucket histograms in
//! seconds with their exemplars.

use gort_proto::{
    common::KeyValue,
    kv_str,
    metrics::{
        self, AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, Sum,
    },
};

use crate::telemetry::{exemplars::Exemplar, stats::TimeHistogram};

/// The start and end of the cumulative window every point shares.
#[derive(Clone, Copy)]
pub struct Window {
    pub start: u64,
    pub now: u64,
}

/// A point's value: integer counts, or seconds as a double.
#[derive(Clone, Copy)]
pub enum Value {
    Int(u64),
    /// A value that can be negative (GOGC off is -1).
    Signed(i64),
    Seconds(u64),
}

impl Value {
    fn number(self) -> metrics::number_data_point::Value {
        use metrics::number_data_point::Value as V;
        match self {
            Self::Int(v) => V::AsInt(i64::try_from(v).unwrap_or(i64::MAX)),
            Self::Signed(v) => V::AsInt(v),
            Self::Seconds(ns) => V::AsDouble(ns as f64 / 1e9),
        }
    }
}

pub fn number_points(w: Window, points: Vec<(Vec<(&str, &str)>, Value)>) -> Vec<NumberDataPoint> {
    points
        .into_iter()
        .map(|(attrs, value)| NumberDataPoint {
            attributes: attrs.into_iter().map(|(k, v)| kv_str(k, v)).collect(),
            start_time_unix_nano: w.start,
            time_unix_nano: w.now,
            value: Some(value.number()),
            ..Default::default()
        })
        .collect()
}

/// A counter: a cumulative, monotonic sum.
pub fn sum_metric(
    name: &str,
    description: &str,
    unit: &str,
    w: Window,
    points: Vec<(Vec<(&str, &str)>, Value)>,
) -> Metric {
    cumulative_sum(name, description, unit, number_points(w, points), true)
}

/// The same sum as an up-down counter (the semantic conventions' instrument
/// for levels such as memory in use): cumulative, not monotonic.
pub fn up_down(mut metric: Metric) -> Metric {
    if let Some(metrics::metric::Data::Sum(sum)) = &mut metric.data {
        sum.is_monotonic = false;
    }
    metric
}

fn cumulative_sum(
    name: &str,
    description: &str,
    unit: &str,
    data_points: Vec<NumberDataPoint>,
    is_monotonic: bool,
) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        unit: unit.into(),
        data: Some(metrics::metric::Data::Sum(Sum {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic,
        })),
        ..Default::default()
    }
}

pub fn gauge_metric(name: &str, description: &str, unit: &str, w: Window, value: f64) -> Metric {
    let point = NumberDataPoint {
        time_unix_nano: w.now,
        value: Some(metrics::number_data_point::Value::AsDouble(value)),
        ..Default::default()
    };
    Metric {
        name: name.into(),
        description: description.into(),
        unit: unit.into(),
        data: Some(metrics::metric::Data::Gauge(Gauge { data_points: vec![point] })),
        ..Default::default()
    }
}

/// One cumulative explicit-bucket data point in seconds, with the runtime's
/// buckets folded to powers of two (runtime/metrics' four sub-buckets per
/// power would make ~160 Prometheus series per histogram).
/// A point of a runtime-sourced histogram: the runtime keeps no sum, and an
/// OTLP point without one says so.
pub fn histogram_point_without_sum(
    w: Window,
    h: &TimeHistogram,
    attributes: Vec<KeyValue>,
    exemplars: &[Exemplar],
) -> HistogramDataPoint {
    HistogramDataPoint { sum: None, ..histogram_point(w, h, attributes, exemplars) }
}

pub fn histogram_point(
    w: Window,
    h: &TimeHistogram,
    attributes: Vec<KeyValue>,
    exemplars: &[Exemplar],
) -> HistogramDataPoint {
    let (explicit_bounds, bucket_counts) = h.power_of_two_buckets();
    HistogramDataPoint {
        attributes,
        exemplars: exemplars.iter().map(exemplar).collect(),
        start_time_unix_nano: w.start,
        time_unix_nano: w.now,
        count: h.count(),
        sum: Some(h.sum_ns as f64 / 1e9),
        bucket_counts,
        explicit_bounds,
        ..Default::default()
    }
}

/// An OTLP exemplar: the observation (seconds) and the span it belongs to.
pub fn exemplar(e: &Exemplar) -> metrics::Exemplar {
    metrics::Exemplar {
        time_unix_nano: e.time_unix_ns,
        value: Some(metrics::exemplar::Value::AsDouble(e.value_ns as f64 / 1e9)),
        span_id: e.span_id.to_vec(),
        trace_id: e.trace_id.to_vec(),
        ..Default::default()
    }
}

pub fn histogram_metric(name: &str, description: &str, data_points: Vec<HistogramDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        unit: "s".into(),
        data: Some(metrics::metric::Data::Histogram(Histogram {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    }
}
