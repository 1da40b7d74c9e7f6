//! The Kubernetes manifests under deploy/kubernetes/, decoded strictly with
//! the Kubernetes API's own Go types (`k8s.io/api`, unknown fields
//! refused) and checked for what the sidecar deployment promises (see
//! integration/go/k8scheck). No cluster runs here; no root needed.

use std::{path::PathBuf, process::Command};

use gort_integration::{go_program, scratch::Scratch, workspace_root};

fn manifests() -> Vec<PathBuf> {
    let dir = workspace_root().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// k8scheck over `files`: (success, its output).
fn check(files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(go_program("k8scheck", "default", &[], &[])).args(files).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_manifests_decode_strictly_and_keep_the_sidecar_promises() {
    let (ok, out) = check(&manifests());
    eprintln!("{out}");
    assert!(ok, "{out}");
    assert!(out.contains("ok deployment.yaml Deployment/orders: gort as a sidecar container"), "{out}");
    assert!(
        out.contains("ok deployment-native-sidecar.yaml Deployment/orders: gort as a native sidecar"),
        "{out}"
    );
    assert!(out.contains("decoded collector.yaml Service/otel-collector"), "{out}");
}

/// Each way of breaking a promise is caught, so the check above could fail.
#[test]
fn a_broken_manifest_is_refused_with_its_reason() {
    let dir = Scratch::new("k8s");
    let original =
        std::fs::read_to_string(workspace_root().join("deploy/kubernetes/deployment.yaml")).unwrap();
    let native =
        std::fs::read_to_string(workspace_root().join("deploy/kubernetes/deployment-native-sidecar.yaml"))
            .unwrap();
    let config = workspace_root().join("deploy/kubernetes/gort-config.yaml");
    let cases = [
        (&original, "shareProcessNamespace: true", "shareProcessNamspace: true", "unknown field"),
        (&original, "shareProcessNamespace: true", "shareProcessNamespace: false", "shareProcessNamespace"),
        (
            &original,
            r#"add: ["SYS_ADMIN", "SYS_PTRACE"]"#,
            r#"add: ["SYS_ADMIN", "SYS_PTRACE", "NET_ADMIN"]"#,
            "capabilities.add",
        ),
        (
            &original,
            "readOnlyRootFilesystem: true\n            # The image",
            "readOnlyRootFilesystem: false\n            # The image",
            "read-only",
        ),
        (&original, "runAsUser: 65532", "runAsUser: 0", "non-root"),
        (
            &original,
            "httpGet: {path: /health, port: telemetry}\n            periodSeconds: 5",
            "httpGet: {path: /metrics, port: telemetry}\n            periodSeconds: 5",
            "readiness probe",
        ),
        (&original, "value: http://localhost:4317", "value: http://otel-collector:4317", "exports to"),
        (&native, "          restartPolicy: Always\n", "", "restartPolicy: Always"),
    ];
    for (i, (text, from, to, reason)) in cases.iter().enumerate() {
        assert!(text.contains(from), "case {i}: {from:?} is not in the manifest");
        let broken = dir.join(format!("broken-{i}.yaml"));
        std::fs::write(&broken, text.replacen(from, to, 1)).unwrap();
        let (ok, out) = check(&[broken, config.clone()]);
        assert!(!ok, "case {i} ({to:?}) passed: {out}");
        assert!(out.contains(reason), "case {i}: {out:?} does not say {reason:?}");
    }
}
