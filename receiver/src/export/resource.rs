//! The OTLP resource of a watched process: the service's identity and the
//! process's (semantic-convention attributes).

use gort_goexe::Analysis;
use gort_proto::{kv_int, kv_str, resource::Resource};

use crate::target::Process;

/// Resource attributes of a watched process (OpenTelemetry semantic conventions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceFacts {
    pub service_name: String,
    /// `service.namespace`, `service.instance.id`, `deployment.environment.name`
    /// as the service named itself.
    pub service_attributes: Vec<(&'static str, String)>,
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
            service_attributes: Vec::new(),
            pid: process.pid,
            executable_path: process.exe.display().to_string(),
            runtime_version: analysis.build.go_version.clone(),
        }
    }

    /// The service's own name for itself (`service.name` and its
    /// companions, from what it exported to gort) replaces the configured or
    /// derived one, so gort's metrics and the service's spans carry one
    /// identity.
    pub fn with_identity(mut self, identity: &[(&'static str, String)]) -> Self {
        for (key, value) in identity {
            match *key {
                "service.name" => self.service_name = value.clone(),
                key => self.service_attributes.push((key, value.clone())),
            }
        }
        self
    }

    pub fn resource(&self) -> Resource {
        let mut attributes = vec![kv_str("service.name", &self.service_name)];
        attributes.extend(self.service_attributes.iter().map(|(k, v)| kv_str(k, v)));
        attributes.extend([
            kv_int("process.pid", i64::from(self.pid)),
            kv_str("process.executable.path", &self.executable_path),
            kv_str("process.runtime.name", "go"),
            kv_str("process.runtime.version", &self.runtime_version),
        ]);
        Resource { attributes, ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use gort_proto::{kv_int, kv_str};

    use super::*;

    #[test]
    fn the_service_s_own_identity_replaces_the_derived_name() {
        let facts = ResourceFacts {
            service_name: "gort.dev/svc".into(),
            service_attributes: Vec::new(),
            pid: 7,
            executable_path: "/bin/x".into(),
            runtime_version: "go1.26.8".into(),
        }
        .with_identity(&[("service.name", "svc".into()), ("deployment.environment.name", "prod".into())]);
        let attrs = facts.resource().attributes;
        assert_eq!(attrs[0], kv_str("service.name", "svc"));
        assert_eq!(attrs[1], kv_str("deployment.environment.name", "prod"));
        assert_eq!(attrs[2], kv_int("process.pid", 7));
    }
}
