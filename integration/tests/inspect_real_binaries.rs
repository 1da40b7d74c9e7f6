//! `gort inspect` on real Go builds, checked against the Go toolchain's own
//! view of the same binary: `go tool nm -size` for addresses and sizes,
//! `go tool objdump` for RET instructions and the probe-site instruction, and
//! the DWARF of the unstripped twin for struct offsets. Covers four Go minor
//! releases (1.27, the current one, included), normal / stripped / PIE /
//! cgo builds, and arm64 cross-builds.

use std::{collections::BTreeMap, path::Path, process::Command};

use gort_integration::{go_program, gort_binary, inspect::inspect};

const VERSIONS: &[&str] = &["go1.21.13", "go1.23.12", "go1.26.11", "go1.27.4"];

/// Functions every supported release has as functions of their own.
const ALWAYS_PRESENT: &[&str] = &[
    "runtime.schedule",
    "runtime.execute",
    "runtime.gcBgMarkWorker",
    "runtime.ready",
    "runtime.gopark",
    "runtime.newproc1",
    "runtime.goexit1",
    "runtime.stopTheWorldWithSema",
    "runtime.startTheWorldWithSema",
];

fn go_tool(version: &str, args: &[&str]) -> String {
    let out = Command::new("go").env("GOTOOLCHAIN", version).arg("tool").args(args).output().unwrap();
    assert!(out.status.success(), "go tool {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `go tool nm -size`: name -> (address, size) of text symbols.
fn nm(version: &str, binary: &Path) -> BTreeMap<String, (u64, u64)> {
    go_tool(version, &["nm", "-size", binary.to_str().unwrap()])
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [addr, size, "T" | "t", name] => {
                    Some((name.to_string(), (u64::from_str_radix(addr, 16).ok()?, size.parse().ok()?)))
                }
                _ => None,
            }
        })
        .collect()
}

/// `go tool objdump` of one function: (address, mnemonic) per instruction.
fn objdump(version: &str, binary: &Path, function: &str) -> Vec<(u64, String)> {
    let pattern = format!("^{}$", function.replace('.', "\\."));
    go_tool(version, &["objdump", "-s", &pattern, binary.to_str().unwrap()])
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').map(str::trim).filter(|s| !s.is_empty()).collect();
            // file:line, address, encoding, instruction
            let addr = u64::from_str_radix(f.get(1)?.trim_start_matches("0x"), 16).ok()?;
            Some((addr, f.get(3)?.split_whitespace().next()?.to_owned()))
        })
        .collect()
}

/// `go tool objdump` of the runtime: the address of every direct call of
/// `callee` (CALL on amd64, BL on arm64).
fn runtime_calls_of(version: &str, binary: &Path, callee: &str) -> Vec<u64> {
    let target = format!("{callee}(SB)");
    go_tool(version, &["objdump", "-s", "^runtime\\.", binary.to_str().unwrap()])
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').map(str::trim).filter(|s| !s.is_empty()).collect();
            let insn: Vec<&str> = f.get(3)?.split_whitespace().collect();
            match insn.as_slice() {
                ["CALL" | "BL", t] if *t == target => {
                    u64::from_str_radix(f[1].trim_start_matches("0x"), 16).ok()
                }
                _ => None,
            }
        })
        .collect()
}

fn check(version: &str, goarch: &str, variant: &str, flags: &[&str], env: &[(&str, &str)]) {
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.extend([("GOTOOLCHAIN", version), ("GOARCH", goarch)]);
    let tag = format!("{version}-{goarch}-{variant}");
    let stripped_flags = with_strip(flags);
    let stripped_flags: Vec<&str> = stripped_flags.iter().map(String::as_str).collect();
    let binary = go_program("pingpong", &format!("{tag}-stripped"), &stripped_flags, &env);
    let twin = go_program("pingpong", &tag, flags, &env);
    let (got, reference) = (inspect(&binary), inspect(&twin));
    eprintln!("{tag}: checking stripped build against its unstripped twin");
    assert!(!got.has_symbols, "{tag}");
    assert!(!got.has_dwarf, "{tag}");
    assert!(reference.has_dwarf, "{tag}");
    assert_eq!(got.build.go_version, version, "{tag}");
    assert_eq!(got.arch, if goarch == "amd64" { "amd64" } else { "arm64" });
    let settings = &got.build.settings;
    assert!(settings.iter().any(|(k, v)| k == "GOARCH" && v == goarch), "{tag}: {settings:?}");

    let symbols = nm(version, &twin);
    for name in ALWAYS_PRESENT {
        let f =
            got.functions.get(*name).unwrap_or_else(|| panic!("{tag}: {name} not resolved from .gopclntab"));
        let r = &reference.functions[*name];
        assert_eq!(f.source, "pclntab");
        assert_eq!(r.source, "symtab");
        let (addr, size) = symbols[*name];
        assert_eq!(f.address, addr, "{tag}: {name} address differs from go tool nm");
        assert_eq!(r.address, addr);
        assert_eq!(r.size, size, "{tag}: {name} symtab size differs from go tool nm");
        let pcln_size = f.size;
        assert!(
            pcln_size >= size && pcln_size < size + 64,
            "{tag}: {name} pclntab size {pcln_size} vs {size}"
        );
        assert_eq!(f.file_offset, r.file_offset, "{tag}: {name}");
        assert_eq!(f.site, r.site, "{tag}: {name}");
        assert_eq!(f.returns, r.returns, "{tag}: {name}");

        // The Go disassembler agrees about the site and every RET.
        let code = objdump(version, &twin, name);
        let site = addr + f.site.offset;
        assert_ne!(site, addr, "{tag}: {name}: probe on the entry instruction");
        let site_insn = code.iter().find(|(a, _)| *a == site).map(|(_, m)| m.as_str());
        assert!(
            matches!(site_insn, Some(m) if m.starts_with('J') || m.starts_with("BLS") || m.starts_with("B")),
            "{tag}: {name}: site {site:#x} is {site_insn:?}, not a branch"
        );
        assert_eq!(f.site.kind, "emulated", "{tag}: {name}");
        assert!(f.site.args_intact, "{tag}: {name}");
        let rets: Vec<u64> = code.iter().filter(|(_, m)| m == "RET").map(|(a, _)| a - addr).collect();
        assert_eq!(f.returns, rets, "{tag}: {name}: RETs differ from go tool objdump");
    }

    // Every call of casgstatus, where gort probes goroutine state changes:
    // the same from the stripped build's .gopclntab as from the symbols,
    // every one the Go disassembler shows, each emulated. On amd64 the
    // stack growth's two calls carry their statuses as constants (running
    // <-> copystack, which gort leaves unprobed), and so does execute's
    // runnable -> running, which it probes.
    let calls = &got.calls["runtime.casgstatus"];
    assert_eq!(calls, &reference.calls["runtime.casgstatus"], "{tag}");
    let addresses: Vec<u64> = calls.iter().map(|c| c.address).collect();
    assert_eq!(addresses, runtime_calls_of(version, &twin, "runtime.casgstatus"), "{tag}");
    assert!(calls.len() >= 20, "{tag}: {} calls", calls.len());
    assert!(calls.iter().all(|c| c.kind == "emulated" && c.offset > 0), "{tag}");
    let args_in = |caller: &str| -> Vec<Vec<Option<u64>>> {
        calls.iter().filter(|c| c.caller == caller).map(|c| c.constant_args[1..].to_vec()).collect()
    };
    if goarch == "amd64" {
        assert_eq!(
            args_in("runtime.newstack"),
            vec![vec![Some(2), Some(8)], vec![Some(8), Some(2)]],
            "{tag}"
        );
        assert_eq!(args_in("runtime.execute"), vec![vec![Some(1), Some(2)]], "{tag}");
    } else {
        assert!(calls.iter().all(|c| c.constant_args.iter().all(Option::is_none)), "{tag}");
    }

    // Where the runtime's own goroutines start, from the stripped build's
    // .gopclntab: its GC workers, sweeper, scavenger and finalizer
    // goroutine, and never runtime.main (the program's main goroutine).
    let bytes = std::fs::read(&binary).unwrap();
    let go = gort_goexe::GoVersion::parse(version).unwrap();
    let entries = gort_goexe::runtime_goroutine_entries(bytes.as_slice(), go).unwrap();
    for name in [
        "runtime.gcBgMarkWorker",
        "runtime.bgsweep",
        "runtime.bgscavenge",
        "runtime.forcegchelper",
        "runtime.runfinq",
    ] {
        // runtime.runfinq is linked only into programs that set finalizers.
        let Some(&(addr, _)) = symbols.get(name) else {
            assert_eq!(name, "runtime.runfinq", "{tag}: {name} missing from go tool nm");
            continue;
        };
        assert!(
            entries.binary_search(&addr).is_ok(),
            "{tag}: {name} at {addr:#x} is not a runtime goroutine entry"
        );
    }
    let (main, _) = symbols["runtime.main"];
    assert!(entries.binary_search(&main).is_err(), "{tag}: runtime.main counted as the runtime's");
    let user = symbols.iter().filter(|(n, _)| n.starts_with("main.")).map(|(_, (a, _))| *a);
    assert!(
        user.into_iter().all(|a| entries.binary_search(&a).is_err()),
        "{tag}: a main.* function counted as the runtime's"
    );

    // runtime.goready has no body of its own in these releases: inlined only.
    assert!(!symbols.contains_key("runtime.goready"), "{tag}: goready is a function here; update the test");
    let callers = got.inlined_only.get("runtime.goready").unwrap_or_else(|| panic!("{tag}: {got:?}"));
    assert!(
        callers.iter().any(|c| c == "runtime.send"),
        "{tag}: goready not found inlined into runtime.send"
    );
    assert_eq!(got.inlined_only, reference.inlined_only, "{tag}");

    // Offsets: stripped from the generated table, equal to the twin's DWARF.
    assert_eq!(got.fields.len(), reference.fields.len(), "{tag}");
    for (field, value) in &got.fields {
        assert_eq!(value.source, "table", "{tag}: {field}");
        let dwarf = &reference.fields[field];
        assert_eq!(dwarf.source, "dwarf", "{tag}: {field}");
        assert_eq!(value.offset, dwarf.offset, "{tag}: {field}: table and DWARF disagree");
    }
}

/// The same build flags with `-s -w` added to the linker flags.
fn with_strip(flags: &[&str]) -> Vec<String> {
    let mut out: Vec<String> =
        flags.iter().filter(|f| !f.starts_with("-ldflags")).map(|f| (*f).to_owned()).collect();
    let ld = flags.iter().find_map(|f| f.strip_prefix("-ldflags=")).unwrap_or("");
    out.push(format!("-ldflags={ld} -s -w"));
    out
}

#[test]
fn amd64_normal_builds() {
    for v in VERSIONS {
        check(v, "amd64", "normal", &[], &[("CGO_ENABLED", "0")]);
    }
}

#[test]
fn amd64_pie_builds() {
    for v in VERSIONS {
        check(v, "amd64", "pie", &["-buildmode=pie"], &[]);
    }
}

#[test]
fn amd64_cgo_external_link_builds() {
    for v in VERSIONS {
        check(v, "amd64", "cgo", &["-ldflags=-linkmode=external"], &[("CGO_ENABLED", "1")]);
    }
}

#[test]
fn arm64_cross_builds() {
    for v in VERSIONS {
        check(v, "arm64", "normal", &[], &[("CGO_ENABLED", "0")]);
        check(v, "arm64", "pie", &["-buildmode=pie"], &[("CGO_ENABLED", "0")]);
    }
}

/// The text output names the OpenTelemetry Go SDK release trace linkage
/// will use (it was only in --json), and says so when there is none.
#[test]
fn inspect_names_the_opentelemetry_sdk_in_text() {
    let text = |binary: &Path| {
        let out = Command::new(gort_binary()).args(["inspect", binary.to_str().unwrap()]).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let traced = text(&go_program("tracedsvc", "default", &[], &[]));
    assert!(
        traced
            .lines()
            .any(|l| l.trim_start().starts_with("OpenTelemetry Go SDK: go.opentelemetry.io/otel/sdk v1.")),
        "{traced}"
    );
    let plain = text(&go_program("pingpong", "default", &[], &[]));
    assert!(plain.contains("OpenTelemetry Go SDK: not in the build"), "{plain}");
}
