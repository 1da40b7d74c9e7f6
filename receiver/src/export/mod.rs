//! Pure transforms to OTLP: the resource of a watched process
//! (`resource`), metric point builders (`points`), and the one export
//! request gort's metrics travel in; and the wait profile as pprof
//! (`pprof`) and as OTLP profiles (`otlp_profiles`).

pub mod otlp_profiles;
pub mod points;
pub mod pprof;
pub mod resource;

use gort_proto::{
    common::InstrumentationScope,
    metrics::{Metric, ResourceMetrics, ScopeMetrics},
    metrics_service::ExportMetricsServiceRequest,
};

pub use self::resource::ResourceFacts;

/// Instrumentation scope of everything gort itself produces.
pub const SCOPE_NAME: &str = "gort";

/// The instrumentation scope of everything gort itself produces.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE_NAME.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

/// `metrics` of one process as one export request, under gort's scope.
pub fn metrics_request(resource: &ResourceFacts, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource.resource()),
            scope_metrics: vec![ScopeMetrics { scope: Some(scope()), metrics, ..Default::default() }],
            ..Default::default()
        }],
    }
}
