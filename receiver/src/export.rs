//! Pure transforms from what the probes counted to OTLP messages.

use gort_proto::{
    common::InstrumentationScope,
    kv_int, kv_str,
    metrics::{self, AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum},
    metrics_service::ExportMetricsServiceRequest,
    resource::Resource,
};

use crate::{analysis::Analysis, target::Process};

/// Instrumentation scope of everything gort itself produces.
pub const SCOPE_NAME: &str = "gort";

/// Resource attributes of a watched process (OpenTelemetry semantic conventions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceFacts {
    pub service_name: String,
    pub pid: u32,
    pub executable_path: String,
    pub runtime_version: String,
}

impl ResourceFacts {
    /// `service` overrides the default service name, which is the main
    /// module path (falling back to the executable's file name).
    pub fn new(process: &Process, analysis: &Analysis, service: Option<&str>) -> Self {
        let exe_name = process.exe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let default_name = if analysis.build.main.path.is_empty() {
            if analysis.build.path.is_empty() { exe_name } else { analysis.build.path.clone() }
        } else {
            analysis.build.main.path.clone()
        };
        Self {
            service_name: service.map_or(default_name, str::to_owned),
            pid: process.pid,
            executable_path: process.exe.display().to_string(),
            runtime_version: analysis.build.go_version.clone(),
        }
    }

    pub fn resource(&self) -> Resource {
        Resource {
            attributes: vec![
                kv_str("service.name", &self.service_name),
                kv_int("process.pid", i64::from(self.pid)),
                kv_str("process.executable.path", &self.executable_path),
                kv_str("process.runtime.name", "go"),
                kv_str("process.runtime.version", &self.runtime_version),
            ],
            ..Default::default()
        }
    }
}

/// `gort.probe.hits`: cumulative hits per probe since gort attached.
pub fn probe_hits_request(
    resource: &ResourceFacts,
    counts: &[(&str, u64)],
    start_unix_nanos: u64,
    now_unix_nanos: u64,
) -> ExportMetricsServiceRequest {
    let data_points = counts
        .iter()
        .map(|(probe, hits)| NumberDataPoint {
            attributes: vec![kv_str("gort.probe", *probe)],
            start_time_unix_nano: start_unix_nanos,
            time_unix_nano: now_unix_nanos,
            value: Some(metrics::number_data_point::Value::AsInt(i64::try_from(*hits).unwrap_or(i64::MAX))),
            ..Default::default()
        })
        .collect();
    let metric = Metric {
        name: "gort.probe.hits".into(),
        description: "Times each gort uprobe fired in the target process.".into(),
        unit: "{hit}".into(),
        data: Some(metrics::metric::Data::Sum(Sum {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource.resource()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics: vec![metric],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_hits_are_cumulative_sums_with_the_process_resource() {
        let facts = ResourceFacts {
            service_name: "svc".into(),
            pid: 7,
            executable_path: "/bin/x".into(),
            runtime_version: "go1.26.8".into(),
        };
        let req = probe_hits_request(&facts, &[("execute", 10), ("ready", 4)], 100, 200);
        let rm = &req.resource_metrics[0];
        let attrs: Vec<&str> =
            rm.resource.as_ref().unwrap().attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(
            attrs,
            [
                "service.name",
                "process.pid",
                "process.executable.path",
                "process.runtime.name",
                "process.runtime.version"
            ]
        );
        let metric = &rm.scope_metrics[0].metrics[0];
        let Some(metrics::metric::Data::Sum(sum)) = &metric.data else { panic!("not a sum") };
        assert_eq!(sum.aggregation_temporality, AggregationTemporality::Cumulative as i32);
        assert!(sum.is_monotonic);
        assert_eq!(sum.data_points.len(), 2);
        assert_eq!(sum.data_points[1].value, Some(metrics::number_data_point::Value::AsInt(4)));
        assert_eq!(sum.data_points[0].start_time_unix_nano, 100);
    }
}
