//! Names of the Go runtime's wait reasons, per Go minor release (generated
//! into `goexe/src/wait_reasons.json` by scripts/gen-offsets-table from each
//! toolchain's runtime sources), and the bounded categories gort exports as
//! the `go.wait.reason` attribute.

use std::{collections::BTreeMap, sync::OnceLock};

use crate::GoVersion;

const TABLE_JSON: &str = include_str!("wait_reasons.json");

fn table() -> &'static BTreeMap<String, Vec<String>> {
    static TABLE: OnceLock<BTreeMap<String, Vec<String>>> = OnceLock::new();
    TABLE.get_or_init(|| serde_json::from_str(TABLE_JSON).expect("wait_reasons.json is generated and tested"))
}

/// The wait-reason names of a release, indexed by the runtime's number.
pub fn names(version: GoVersion) -> Option<&'static [String]> {
    table().get(&format!("go{}.{}", version.major, version.minor)).map(Vec::as_slice)
}

/// The name of reason `n`, or `reason N` when the release is unknown.
pub fn name(names: Option<&[String]>, n: u32) -> String {
    match names.and_then(|t| t.get(n as usize)) {
        Some(s) if s.is_empty() => "unspecified".to_owned(),
        Some(s) => s.clone(),
        None => format!("reason {n}"),
    }
}

/// The wait reason a GC background mark worker is in while it marks
/// (`casGToWaiting(gp, _Grunning, waitReasonGCWorkerActive)`, Go 1.21 through
/// 1.27): it holds a P and works, so its "parked" time is the CPU the GC took
/// from goroutines, not blocking.
pub const GC_WORKER_ACTIVE: &str = "GC worker (active)";

/// The bounded category of a wait reason (the exported attribute value).
pub fn category(reason: &str) -> &'static str {
    match reason {
        r if r.starts_with("chan receive") => "chan_receive",
        r if r.starts_with("chan send") => "chan_send",
        r if r.starts_with("select") => "select",
        "sync.Mutex.Lock" | "sync.RWMutex.RLock" | "sync.RWMutex.Lock" => "mutex",
        r if r == "semacquire" || r == "sync.Cond.Wait" || r.starts_with("sync.WaitGroup.Wait") => "sync",
        "IO wait" => "io",
        "sleep" => "sleep",
        "GC assist marking" | "GC assist wait" => "gc_assist",
        r if r.starts_with("GC ")
            || r.starts_with("garbage collection")
            || r == "wait for GC cycle"
            || r == "force gc (idle)"
            || r == "finalizer wait"
            || r == "cleanup wait" =>
        {
            "runtime_gc"
        }
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_release_has_names_and_known_reasons_map_to_categories() {
        for minor in 21..=27 {
            let t = names(GoVersion { major: 1, minor, patch: 0 }).unwrap_or_else(|| panic!("1.{minor}"));
            assert_eq!(t[0], "");
            for (reason, cat) in
                [("sleep", "sleep"), ("chan receive", "chan_receive"), ("sync.Mutex.Lock", "mutex")]
            {
                let n =
                    t.iter().position(|s| s == reason).unwrap_or_else(|| panic!("1.{minor}: no {reason}"));
                assert_eq!(category(&name(Some(t), n as u32)), cat);
            }
        }
        assert_eq!(name(None, 7), "reason 7");
        assert_eq!(category("select (no cases)"), "select");
        assert_eq!(category("GC worker (idle)"), "runtime_gc");
        for minor in 21..=27 {
            let t = names(GoVersion { major: 1, minor, patch: 0 }).unwrap();
            assert!(t.iter().any(|s| s == GC_WORKER_ACTIVE), "1.{minor}");
        }
        assert_eq!(category("something new"), "other");
    }
}
