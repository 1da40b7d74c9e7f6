//! A large real-world Go program (Hugo, ~70 MB, from the module proxy)
//! resolves completely, with and without its symbol table and DWARF.

use std::process::Command;

use gort_integration::{gort_binary, large_go_binary};

fn inspect(path: &std::path::Path) -> serde_json::Value {
    let out = Command::new(gort_binary()).args(["inspect", "--json"]).arg(path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn hugo_resolves_completely_stripped_or_not() {
    let (binary, stripped) = large_go_binary();
    let (full, bare) = (inspect(&binary), inspect(&stripped));
    assert!(std::fs::metadata(&binary).unwrap().len() > 50 << 20, "the large binary is not large");
    assert_eq!(full["build"]["main"]["path"], "github.com/gohugoio/hugo");
    assert_eq!((full["has_symbols"].clone(), bare["has_symbols"].clone()), (true.into(), false.into()));
    assert_eq!((full["has_dwarf"].clone(), bare["has_dwarf"].clone()), (true.into(), false.into()));
    for a in [&full, &bare] {
        assert_eq!(a["missing_fields"], serde_json::json!([]), "{}", a["warnings"]);
        assert_eq!(a["warnings"], serde_json::json!([]));
        assert_eq!(a["unprobeable"], serde_json::json!({}));
        // Only the inlined-only helper is not a function of its own.
        assert_eq!(a["missing_functions"], serde_json::json!(["runtime.goready"]));
    }
    for (name, f) in full["functions"].as_object().unwrap() {
        let b = &bare["functions"][name];
        assert_eq!(f["address"], b["address"], "{name}");
        assert_eq!(f["site"], b["site"], "{name}");
        assert_eq!(f["returns"], b["returns"], "{name}");
        assert_eq!(f["inlined_into"], b["inlined_into"], "{name}");
    }
    for (field, f) in full["fields"].as_object().unwrap() {
        assert_eq!(f["source"], "dwarf");
        assert_eq!(bare["fields"][field]["source"], "table");
        assert_eq!(f["offset"], bare["fields"][field]["offset"], "{field}");
    }
}
