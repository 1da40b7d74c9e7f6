//! Trace linkage's span-start site on every OpenTelemetry Go SDK release
//! gort supports (`integration/otel-sdk-releases`), amd64 and arm64: a real
//! build of each release's `newRecordingSpan` calls
//! `(*recordingSpan).SetAttributes`, the call the span-start probe sits on,
//! at an instruction the kernel emulates (a relative CALL, a BL); and on
//! amd64 the receiver register (RAX) is loaded with the new span right
//! before it, as `go tool objdump` shows. The eBPF linkage tests then check
//! that the span seen there is the one the service exports.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use gort_goexe::{
    self as analysis, Arch, Request,
    functions::{SDK_NEW_RECORDING_SPAN, SDK_SET_ATTRIBUTES},
};
use gort_integration::workspace_root;

fn releases() -> Vec<String> {
    std::fs::read_to_string(workspace_root().join("integration/otel-sdk-releases"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

fn run(dir: &Path, cmd: &mut Command) {
    let out = cmd.current_dir(dir).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `integration/go/sdkspan` built against SDK `release` for `arch` by the
/// machine's Go, cached with scripts/setup's (`$GORT_CACHE`, else
/// ~/.cache/gort) so a fresh checkout does not build all of them again.
fn sdkspan(release: &str, arch: &str) -> PathBuf {
    let go = Command::new("go").args(["env", "GOVERSION"]).output().expect("go is installed (scripts/setup)");
    let go = String::from_utf8_lossy(&go.stdout).trim().to_owned();
    let cache = std::env::var_os("GORT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/gort"));
    let out = cache.join("sdk-releases");
    let bin = out.join(format!("sdkspan-{release}-{arch}-{go}"));
    if bin.exists() {
        return bin;
    }
    let work = out.join(format!("src-{release}"));
    if !work.join("go.sum").exists() {
        std::fs::create_dir_all(&work).unwrap();
        std::fs::copy(workspace_root().join("integration/go/sdkspan/main.go"), work.join("main.go")).unwrap();
        std::fs::write(work.join("go.mod"), "module gort.dev/integration/sdkspan\n\ngo 1.22\n").unwrap();
        run(&work, Command::new("go").args(["get", &format!("go.opentelemetry.io/otel/sdk@{release}")]));
        run(&work, Command::new("go").args(["mod", "tidy"]));
    }
    let tmp = bin.with_extension("tmp");
    run(
        &work,
        Command::new("go")
            .env("GOOS", "linux")
            .env("GOARCH", arch)
            .env("CGO_ENABLED", "0")
            .arg("build")
            .arg("-o")
            .arg(&tmp)
            .arg("."),
    );
    std::fs::rename(&tmp, &bin).unwrap();
    bin
}

#[test]
fn every_sdk_release_hands_the_new_span_to_set_attributes_at_an_emulated_call() {
    let releases = releases();
    assert!(releases.len() >= 10, "{releases:?}");
    for release in &releases {
        for arch in ["amd64", "arm64"] {
            let bin = sdkspan(release, arch);
            let bytes = std::fs::read(&bin).unwrap();
            let request = Request {
                functions: &[SDK_NEW_RECORDING_SPAN, SDK_SET_ATTRIBUTES],
                fields: &[],
                callers: &[],
            };
            let a =
                analysis::analyse(&bytes[..], &request).unwrap_or_else(|e| panic!("{release} {arch}: {e}"));
            assert_eq!(a.arch, if arch == "amd64" { Arch::Amd64 } else { Arch::Arm64 });
            let caller = &a.functions[SDK_NEW_RECORDING_SPAN];
            let callee = &a.functions[SDK_SET_ATTRIBUTES];
            let call = caller
                .code
                .first_call_to(callee.address)
                .unwrap_or_else(|| panic!("{release} {arch}: newRecordingSpan does not call SetAttributes"));
            assert_eq!(call.kind, analysis::SiteKind::Emulated, "{release} {arch}: {call:?}");
            let calls = caller.code.calls.iter().filter(|c| c.target == callee.address).count();
            eprintln!("{release} {arch}: SetAttributes called {calls}x, the probe at +{:#x}", call.offset);
            if arch == "amd64" {
                assert_receiver_loaded_before(&bin, caller.address + call.offset, release);
            }
        }
    }
}

/// In `go tool objdump`, between the previous CALL (or the function's
/// start) and the probed CALL, RAX is loaded from the stack slot the
/// function keeps the new span in, or left from `newobject`'s result,
/// and not written again: the register the probe reads is the span.
fn assert_receiver_loaded_before(bin: &Path, call_address: u64, release: &str) {
    let out = Command::new("go")
        .args(["tool", "objdump", "-s", r"\(\*tracer\)\.newRecordingSpan$"])
        .arg(bin)
        .output()
        .unwrap();
    assert!(out.status.success(), "objdump: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let at = format!("{call_address:#x}");
    let i = lines
        .iter()
        .position(|l| l.split_whitespace().nth(1) == Some(at.as_str()))
        .unwrap_or_else(|| panic!("{release}: no instruction at {at} in objdump"));
    assert!(lines[i].contains("SetAttributes"), "{release}: {}", lines[i]);
    let writes_ax = |l: &str| {
        let insn: Vec<&str> = l.split_whitespace().skip(3).collect();
        insn.last().is_some_and(|dst| *dst == "AX") || insn.first().is_some_and(|op| op.starts_with("CALL"))
    };
    let last =
        lines[..i].iter().rev().find(|l| writes_ax(l)).unwrap_or_else(|| panic!("{release}: RAX never set"));
    eprintln!(
        "{release} amd64: RAX before the call: {}",
        last.split_whitespace().skip(3).collect::<Vec<_>>().join(" ")
    );
    assert!(
        last.contains("MOVQ") && last.contains("(SP)"),
        "{release}: the receiver register is not loaded from the frame before the call: {last}"
    );
}
