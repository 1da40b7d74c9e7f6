//! Every Collector configuration shipped in collector-config/ is accepted by
//! the real Collector gort's setup builds (`validate`: components exist,
//! fields are known, pipelines are wired), and the check itself can fail.

use std::{path::Path, process::Command};

use gort_integration::{otelcol_binary, scratch::Scratch, workspace_root};

/// Runs the Collector's `validate` on `configs` merged in order, with
/// `args` before them.
fn validate_all(args: &[&str], configs: &[&Path]) -> (bool, String) {
    let mut cmd = Command::new(otelcol_binary());
    cmd.arg("validate").args(args);
    for config in configs {
        cmd.arg("--config").arg(config);
    }
    let out = cmd
        // relay.yaml has no defaults: the tests always set these.
        .env("GORT_RELAY_ENDPOINT", "127.0.0.1:14317")
        .env("GORT_SINK_ENDPOINT", "127.0.0.1:14318")
        .output()
        .expect("run the Collector");
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

fn validate(config: &Path) -> (bool, String) {
    validate_all(&[], &[config])
}

/// profiles.yaml is an overlay on relay.yaml, for a Collector with the
/// profiles feature gate.
const OVERLAY: &str = "profiles.yaml";

#[test]
fn every_shipped_collector_config_is_valid() {
    let dir = workspace_root().join("collector-config");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // builder.yaml describes the distribution, it is not a configuration.
        if !name.ends_with(".yaml") || name == "builder.yaml" || name == OVERLAY {
            continue;
        }
        let (ok, output) = validate(&path);
        assert!(ok, "{name} is refused by the Collector:\n{output}");
        checked.push(name);
    }
    checked.sort();
    assert_eq!(
        checked,
        ["prometheus-jaeger.yaml", "prometheus.yaml", "relay.yaml", "tempo-prometheus.yaml", "tempo.yaml"]
    );
}

#[test]
fn the_profiles_overlay_is_valid_with_the_feature_gate_and_refused_without() {
    let dir = workspace_root().join("collector-config");
    let configs = [&*dir.join("relay.yaml"), &*dir.join(OVERLAY)];
    let (ok, output) = validate_all(&["--feature-gates=service.profilesSupport"], &configs);
    assert!(ok, "relay.yaml + {OVERLAY} with the feature gate is refused:\n{output}");
    let (ok, output) = validate_all(&[], &configs);
    assert!(!ok, "a profiles pipeline without the feature gate was accepted");
    assert!(output.contains("profiles"), "the error does not say what: {output}");
}

#[test]
fn validation_refuses_a_broken_config() {
    let dir = Scratch::new("collector-config");
    let good =
        std::fs::read_to_string(workspace_root().join("collector-config/tempo-prometheus.yaml")).unwrap();
    // The Prometheus exporter's endpoint misspelt: it has none left.
    let broken = dir.join("broken.yaml");
    std::fs::write(&broken, good.replace("metrics_endpoint:", "metric_endpoint:")).unwrap();
    let (ok, output) = validate(&broken);
    assert!(!ok, "an exporter without an endpoint was accepted");
    assert!(output.contains("otlp_http/prometheus"), "the error does not say where: {output}");
}
