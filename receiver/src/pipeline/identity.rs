//! The watched service's own identity, as it names itself in the resource of
//! what it exports to gort: gort's metrics about the service carry the same
//! `service.name` (and namespace, instance and environment), so dashboards
//! join them with the service's spans. Taken from every request the
//! receivers accept; gort's own requests never feed it.

use std::sync::Mutex;

use gort_proto::{common::any_value, resource::Resource};

use super::Payload;

/// The resource attributes that name a service (semantic conventions).
pub const IDENTITY_KEYS: [&str; 4] =
    ["service.name", "service.namespace", "service.instance.id", "deployment.environment.name"];

/// How a service named itself in one export.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The `IDENTITY_KEYS` present, in that order, as strings.
    pub attributes: Vec<(&'static str, String)>,
    /// `process.pid`, when the service's resource has it: tells apart the
    /// services of several processes exporting to one gort.
    pub pid: Option<i64>,
}

impl Identity {
    /// The identity in `resource`, if it names a service.
    pub fn of(resource: &Resource) -> Option<Self> {
        let value = |key: &str| {
            resource
                .attributes
                .iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        };
        let attributes: Vec<(&'static str, String)> = IDENTITY_KEYS
            .iter()
            .filter_map(|&key| match value(key)? {
                any_value::Value::StringValue(s) if !s.is_empty() => Some((key, s.clone())),
                _ => None,
            })
            .collect();
        if !attributes.iter().any(|(k, _)| *k == "service.name") {
            return None;
        }
        let pid = match value("process.pid") {
            Some(any_value::Value::IntValue(p)) => Some(*p),
            _ => None,
        };
        Some(Self { attributes, pid })
    }

    pub fn service_name(&self) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| *k == "service.name").map(|(_, v)| v.as_str())
    }
}

/// The latest identity the service sent, per process when it says its pid.
#[derive(Debug, Default)]
pub struct Identities {
    seen: Mutex<Vec<Identity>>,
}

/// Processes whose identities are kept (a sidecar sees one or two).
const MAX_IDENTITIES: usize = 16;

impl Identities {
    /// Notes the identity of the first resource of a received request.
    pub fn observe(&self, payload: &Payload) {
        let resource = match payload {
            Payload::Traces(r) => r.resource_spans.first().and_then(|r| r.resource.as_ref()),
            Payload::Metrics(r) => r.resource_metrics.first().and_then(|r| r.resource.as_ref()),
            Payload::Logs(r) => r.resource_logs.first().and_then(|r| r.resource.as_ref()),
            Payload::Profiles(r) => r.resource_profiles.first().and_then(|r| r.resource.as_ref()),
            // Observed when it arrived, from its first resource (`offer_bytes`).
            Payload::Raw(_) => None,
        };
        if let Some(resource) = resource {
            self.observe_resource(resource);
        }
    }

    /// Notes the identity a resource gives.
    pub fn observe_resource(&self, resource: &Resource) {
        let Some(identity) = Identity::of(resource) else { return };
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.first() == Some(&identity) {
            return;
        }
        seen.retain(|i| i.pid != identity.pid);
        seen.insert(0, identity);
        seen.truncate(MAX_IDENTITIES);
    }

    /// The identity to give gort's metrics about process `pid`: the one the
    /// process itself sent, else the latest sent without a pid.
    pub fn for_pid(&self, pid: u32) -> Option<Identity> {
        let seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.iter()
            .find(|i| i.pid == Some(i64::from(pid)))
            .or_else(|| seen.iter().find(|i| i.pid.is_none()))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use gort_proto::{kv_int, kv_str, trace::ResourceSpans, trace_service::ExportTraceServiceRequest};

    use super::*;

    fn traces(attrs: Vec<gort_proto::common::KeyValue>) -> Payload {
        Payload::Traces(ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource { attributes: attrs, ..Default::default() }),
                ..Default::default()
            }],
        })
    }

    #[test]
    fn the_service_name_and_its_companions_are_taken_from_what_it_sent() {
        let ids = Identities::default();
        assert_eq!(ids.for_pid(7), None);
        ids.observe(&traces(vec![kv_str("telemetry.sdk.language", "go")]));
        assert_eq!(ids.for_pid(7), None, "a resource without service.name names nothing");
        ids.observe(&traces(vec![
            kv_str("service.name", "checkout"),
            kv_str("deployment.environment.name", "prod"),
            kv_str("host.name", "h1"),
        ]));
        let id = ids.for_pid(7).unwrap();
        assert_eq!(id.service_name(), Some("checkout"));
        assert_eq!(
            id.attributes,
            vec![("service.name", "checkout".into()), ("deployment.environment.name", "prod".into())]
        );
    }

    #[test]
    fn a_process_that_says_its_pid_gets_its_own_identity() {
        let ids = Identities::default();
        ids.observe(&traces(vec![kv_str("service.name", "a"), kv_int("process.pid", 7)]));
        ids.observe(&traces(vec![kv_str("service.name", "b"), kv_int("process.pid", 8)]));
        assert_eq!(ids.for_pid(7).unwrap().service_name(), Some("a"));
        assert_eq!(ids.for_pid(8).unwrap().service_name(), Some("b"));
        assert_eq!(ids.for_pid(9), None, "another process's identity is not borrowed");
    }
}
