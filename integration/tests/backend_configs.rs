//! The backends' shipped configuration, checked by their own tools and
//! read as Grafana would read it: Prometheus' configuration and alerting
//! rules pass `promtool` (and its rule unit tests, which can fail), and the
//! Grafana provisioning links an exemplar's `trace_id` to a trace store and
//! every dashboard query to the provisioned Prometheus.

use std::{path::Path, process::Command};

use gort_integration::{
    backends::{dashboard, dashboard_queries, promtool_binary},
    workspace_root,
};
use serde_json::Value;

fn promtool(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(promtool_binary()).args(args).current_dir(dir).output().expect("run promtool");
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn prometheus_config_and_alerting_rules_pass_promtool() {
    let dir = workspace_root().join("collector-config/prometheus");
    let (ok, out) = promtool(&["check", "config", "prometheus.yml"], &dir);
    assert!(ok, "promtool check config:\n{out}");
    assert!(out.contains("SUCCESS: 1 rule files found"), "prometheus.yml loads the rules: {out}");
    let rules = dir.join("rules");
    let (ok, out) = promtool(&["check", "rules", "gort.rules.yml"], &rules);
    assert!(ok, "promtool check rules:\n{out}");
    let (ok, out) = promtool(&["test", "rules", "gort.rules.test.yml"], &rules);
    assert!(ok, "promtool test rules:\n{out}");

    // The unit tests can fail: one expected value changed must be caught.
    let scratch = std::env::temp_dir().join(format!("gort-rules-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::copy(rules.join("gort.rules.yml"), scratch.join("gort.rules.yml")).unwrap();
    let tests = std::fs::read_to_string(rules.join("gort.rules.test.yml")).unwrap();
    assert!(tests.contains("(4600)"), "the growth test's expected value moved");
    std::fs::write(scratch.join("gort.rules.test.yml"), tests.replace("(4600)", "(4599)")).unwrap();
    let (ok, out) = promtool(&["test", "rules", "gort.rules.test.yml"], &scratch);
    assert!(!ok && out.contains("GoGoroutineGrowth"), "a wrong expectation passed:\n{out}");
    let _ = std::fs::remove_dir_all(&scratch);
}

fn yaml(path: &Path) -> serde_yaml::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn grafana_provisioning_links_exemplars_to_the_trace_store() {
    let dir = workspace_root().join("collector-config/grafana/provisioning/datasources");
    let dashboard = dashboard();
    let variable = dashboard["templating"]["list"]
        .as_array()
        .and_then(|l| l.iter().find(|v| v["type"] == "datasource"))
        .expect("the dashboard's data-source variable");
    assert_eq!(variable["query"], "prometheus");
    let default_uid = variable["current"]["value"].as_str().expect("a default data source");

    for (file, store) in [("jaeger.yaml", "jaeger"), ("tempo.yaml", "tempo")] {
        let sources = yaml(&dir.join(file));
        let sources = sources["datasources"].as_sequence().expect("datasources");
        let by_uid = |uid: &str| sources.iter().find(|s| s["uid"].as_str() == Some(uid));
        let prometheus = by_uid(default_uid).unwrap_or_else(|| {
            panic!("{file}: no data source with the dashboard's default uid {default_uid:?}")
        });
        assert_eq!(prometheus["type"].as_str(), Some("prometheus"), "{file}");
        let links =
            prometheus["jsonData"]["exemplarTraceIdDestinations"].as_sequence().expect("exemplar links");
        assert_eq!(links.len(), 1, "{file}: {links:?}");
        // The label Prometheus' OTLP receiver gives an exemplar's trace id.
        assert_eq!(links[0]["name"].as_str(), Some("trace_id"), "{file}");
        let target = links[0]["datasourceUid"].as_str().expect("a target uid");
        let target =
            by_uid(target).unwrap_or_else(|| panic!("{file}: the exemplar link names no data source"));
        assert_eq!(target["type"].as_str(), Some(store), "{file}: exemplars open the trace store");
    }
    let provider = yaml(&workspace_root().join("collector-config/grafana/provisioning/dashboards/gort.yaml"));
    assert_eq!(provider["providers"][0]["type"].as_str(), Some("file"));

    // Every panel asks the variable's Prometheus; every histogram query
    // shows its exemplars.
    let panels: Vec<&Value> =
        dashboard["panels"].as_array().into_iter().flatten().filter(|p| p["type"] != "row").collect();
    assert!(panels.len() >= 10, "{} panels", panels.len());
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "panel {}", panel["title"]);
            let expr = target["expr"].as_str().unwrap_or_default();
            if expr.contains("_bucket") {
                assert_eq!(target["exemplar"], true, "panel {}: {expr}", panel["title"]);
            }
        }
    }
    // Every query names only variables the test knows how to fill.
    assert!(!dashboard_queries(&dashboard, "svc", "1m").is_empty());
}
