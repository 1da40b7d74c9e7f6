//! A large real-world Go program (Hugo, ~70 MB, from the module proxy)
//! resolves completely, with and without its symbol table and DWARF.

use gort_integration::{inspect::inspect, large_go_binary};

#[test]
fn hugo_resolves_completely_stripped_or_not() {
    let (binary, stripped) = large_go_binary();
    let (full, bare) = (inspect(&binary), inspect(&stripped));
    assert!(std::fs::metadata(&binary).unwrap().len() > 50 << 20, "the large binary is not large");
    assert_eq!(full.build.main.path, "github.com/gohugoio/hugo");
    assert_eq!((full.has_symbols, bare.has_symbols), (true, false));
    assert_eq!((full.has_dwarf, bare.has_dwarf), (true, false));
    for a in [&full, &bare] {
        assert!(a.missing_fields.is_empty(), "{:?}: {:?}", a.missing_fields, a.warnings);
        assert!(a.warnings.is_empty(), "{:?}", a.warnings);
        assert!(a.unprobeable.is_empty(), "{:?}", a.unprobeable);
        // Only the inlined-only helper is not a function of its own.
        assert_eq!(a.missing_functions, ["runtime.goready"]);
    }
    for (name, f) in &full.functions {
        let b = &bare.functions[name];
        assert_eq!(f.address, b.address, "{name}");
        assert_eq!(f.site, b.site, "{name}");
        assert_eq!(f.returns, b.returns, "{name}");
        assert_eq!(f.inlined_into, b.inlined_into, "{name}");
    }
    for (field, f) in &full.fields {
        assert_eq!(f.source, "dwarf");
        assert_eq!(bare.fields[field].source, "table");
        assert_eq!(f.offset, bare.fields[field].offset, "{field}");
    }
}
