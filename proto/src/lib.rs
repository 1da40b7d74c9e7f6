//! OTLP message types and their JSON-lines encoding; pprof's profile
//! messages (`pprof`). OTLP profiles (`profiles`, `profiles_service`) are
//! the specification's development version, `v1development`, which the
//! Collector's pdata of the same release line decodes.
//!
//! The types are opentelemetry-proto's (prost messages, tonic services). The
//! JSON encoding follows the OTLP/JSON mapping (camelCase fields, hex trace
//! and span ids, 64-bit integers as strings), one `Export*ServiceRequest` per
//! line, as the Collector's file exporter writes and reads it.

use std::io::Write;

pub mod pprof;

pub use opentelemetry_proto::tonic::{
    collector::{
        logs::v1 as logs_service, metrics::v1 as metrics_service,
        profiles::v1development as profiles_service, trace::v1 as trace_service,
    },
    common::v1 as common,
    logs::v1 as logs,
    metrics::v1 as metrics,
    profiles::v1development as profiles,
    resource::v1 as resource,
    trace::v1 as trace,
};

/// Writes one OTLP export request as a single JSON line.
pub fn write_json_line<W: Write, M: serde::Serialize>(out: &mut W, message: &M) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, message)?;
    out.write_all(b"\n")
}

/// Writes one OTLP profiles export request as a single JSON line. The
/// dictionary's links carry their trace and span ids in hex, as the OTLP/JSON
/// mapping writes every trace and span id (opentelemetry-proto's serde
/// writes those two as arrays of numbers).
pub fn write_profiles_json_line<W: Write>(
    out: &mut W,
    request: &profiles_service::ExportProfilesServiceRequest,
) -> std::io::Result<()> {
    let mut value = serde_json::to_value(request)?;
    let links = value.pointer_mut("/dictionary/linkTable").and_then(serde_json::Value::as_array_mut);
    for link in links.into_iter().flatten() {
        for key in ["traceId", "spanId"] {
            if let Some(id) = link.get_mut(key) {
                let bytes: Vec<u8> = id
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect();
                *id = serde_json::Value::String(bytes.iter().map(|b| format!("{b:02x}")).collect());
            }
        }
    }
    write_json_line(out, &value)
}

/// A string-valued attribute.
pub fn kv_str(key: &str, value: impl Into<String>) -> common::KeyValue {
    common::KeyValue {
        key: key.to_owned(),
        value: Some(common::AnyValue { value: Some(common::any_value::Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

/// An integer-valued attribute.
pub fn kv_int(key: &str, value: i64) -> common::KeyValue {
    common::KeyValue {
        key: key.to_owned(),
        value: Some(common::AnyValue { value: Some(common::any_value::Value::IntValue(value)) }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_links_are_written_with_hex_ids() {
        let request = profiles_service::ExportProfilesServiceRequest {
            dictionary: Some(profiles::ProfilesDictionary {
                link_table: vec![
                    profiles::Link::default(),
                    profiles::Link { trace_id: vec![0xab; 16], span_id: vec![1, 2, 3, 4, 5, 6, 7, 0xff] },
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut out = Vec::new();
        write_profiles_json_line(&mut out, &request).unwrap();
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(line["dictionary"]["linkTable"][0]["traceId"], "");
        assert_eq!(line["dictionary"]["linkTable"][1]["traceId"], "ab".repeat(16));
        assert_eq!(line["dictionary"]["linkTable"][1]["spanId"], "01020304050607ff");
    }

    #[test]
    fn json_line_uses_the_otlp_json_mapping() {
        let request = metrics_service::ExportMetricsServiceRequest {
            resource_metrics: vec![metrics::ResourceMetrics {
                resource: Some(resource::Resource {
                    attributes: vec![kv_int("process.pid", 42)],
                    ..Default::default()
                }),
                scope_metrics: vec![metrics::ScopeMetrics {
                    metrics: vec![metrics::Metric {
                        name: "m".into(),
                        data: Some(metrics::metric::Data::Sum(metrics::Sum {
                            data_points: vec![metrics::NumberDataPoint {
                                time_unix_nano: 1_700_000_000_000_000_123,
                                value: Some(metrics::number_data_point::Value::AsInt(7)),
                                ..Default::default()
                            }],
                            aggregation_temporality: metrics::AggregationTemporality::Cumulative as i32,
                            is_monotonic: true,
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let mut out = Vec::new();
        write_json_line(&mut out, &request).unwrap();
        let line = String::from_utf8(out).unwrap();
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let m = &v["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0];
        assert_eq!(m["sum"]["dataPoints"][0]["timeUnixNano"], "1700000000000000123");
        assert_eq!(m["sum"]["dataPoints"][0]["asInt"], "7");
        assert_eq!(m["sum"]["aggregationTemporality"], 2);
        assert_eq!(m["sum"]["isMonotonic"], true);
        assert_eq!(v["resourceMetrics"][0]["resource"]["attributes"][0]["value"]["intValue"], "42");
    }
}
