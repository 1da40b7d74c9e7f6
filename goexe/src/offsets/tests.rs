use std::collections::BTreeSet;

use super::*;
use crate::MIN_GO;

fn layout(module: Module, version: &str, offset: u64) -> Layout {
    let field = match module {
        Module::Runtime => Field::GGoid,
        Module::OtelSdk => Field::SpanContext,
    };
    Layout {
        module: module.name().into(),
        version: version.into(),
        arch: Arch::Amd64,
        offsets: BTreeMap::from([(field.to_string(), offset)]),
    }
}

fn go(version: &str, goid: u64) -> Layout {
    layout(Module::Runtime, version, goid)
}

fn sdk(version: &str, offset: u64) -> Layout {
    layout(Module::OtelSdk, version, offset)
}

#[test]
fn same_minor_matches_any_patch() {
    let t = OffsetsTable::new(vec![go("go1.22.12", 160), go("go1.21.13", 152)]);
    let m = t.lookup(Module::Runtime, "go1.22.3", Arch::Amd64).unwrap();
    assert_eq!(m.layout.version, "go1.22.12");
    assert_eq!(m.warning, None);
    assert!(matches!(t.lookup(Module::Runtime, "go1.22.3", Arch::Arm64), Err(TableError::NoArch { .. })));
    assert!(matches!(t.lookup(Module::OtelSdk, "v1.32.0", Arch::Amd64), Err(TableError::NoArch { .. })));
}

#[test]
fn newer_release_only_when_the_layout_was_stable() {
    let changed = OffsetsTable::new(vec![go("go1.25.14", 160), go("go1.26.11", 152)]);
    assert!(matches!(
        changed.lookup(Module::Runtime, "go1.27.4", Arch::Amd64),
        Err(TableError::NewerChanged { .. })
    ));
    let stable = OffsetsTable::new(vec![go("go1.25.14", 152), go("go1.26.11", 152)]);
    let m = stable.lookup(Module::Runtime, "go1.27.4", Arch::Amd64).unwrap();
    assert_eq!(m.layout.version, "go1.26.11");
    assert!(m.warning.unwrap().contains("newer than the offsets table"));
    assert!(matches!(stable.lookup(Module::Runtime, "go1.24.0", Arch::Amd64), Err(TableError::Older { .. })));
}

#[test]
fn sdk_releases_exact_newer_older_and_between() {
    let t = OffsetsTable::new(vec![
        sdk("v1.32.0", 80),
        sdk("v1.33.0", 88),
        sdk("v1.34.0", 88),
        go("go1.26.8", 1),
    ]);
    assert_eq!(t.lookup(Module::OtelSdk, "v1.32.0", Arch::Amd64).unwrap().layout.version, "v1.32.0");
    assert_eq!(t.lookup(Module::OtelSdk, "v1.33.4", Arch::Amd64).unwrap().layout.version, "v1.33.0");
    let m = t.lookup(Module::OtelSdk, "v1.40.0", Arch::Amd64).unwrap();
    assert_eq!(m.layout.version, "v1.34.0");
    assert!(m.warning.is_some());
    assert!(matches!(t.lookup(Module::OtelSdk, "v1.20.0", Arch::Amd64), Err(TableError::Older { .. })));
    assert!(matches!(t.lookup(Module::OtelSdk, "garbage", Arch::Amd64), Err(TableError::Version { .. })));
    let changed = OffsetsTable::new(vec![sdk("v1.32.0", 80), sdk("v1.33.0", 88)]);
    assert!(matches!(
        changed.lookup(Module::OtelSdk, "v1.35.0", Arch::Amd64),
        Err(TableError::NewerChanged { .. })
    ));
    let gap = OffsetsTable::new(vec![sdk("v1.32.0", 80), sdk("v1.34.0", 88)]);
    assert!(matches!(gap.lookup(Module::OtelSdk, "v1.33.0", Arch::Amd64), Err(TableError::Gap { .. })));
    let same = OffsetsTable::new(vec![sdk("v1.32.0", 88), sdk("v1.34.0", 88)]);
    assert_eq!(same.lookup(Module::OtelSdk, "v1.33.0", Arch::Amd64).unwrap().layout.version, "v1.32.0");
}

#[test]
fn replacing_a_module_keeps_the_others() {
    let t = OffsetsTable::new(vec![sdk("v1.32.0", 80), go("go1.26.8", 1)]);
    let t = t.replace(Module::Runtime, vec![go("go1.27.4", 2)]);
    let versions: Vec<&str> = t.layouts.iter().map(|l| l.version.as_str()).collect();
    assert_eq!(versions, ["go1.27.4", "v1.32.0"]);
}

/// Non-comment lines of one of the generator's input lists.
fn listed(text: &str) -> Vec<&str> {
    text.lines().map(str::trim).filter(|l| !l.starts_with('#') && !l.is_empty()).collect()
}

/// The Go releases the tests build with and the generator builds
/// (`integration/go-toolchains`), the newest included.
fn toolchains() -> Vec<GoVersion> {
    listed(include_str!("../../../integration/go-toolchains"))
        .into_iter()
        .filter_map(GoVersion::parse)
        .filter(|v| *v >= MIN_GO)
        .collect()
}

/// The SDK releases the generator builds (`integration/otel-sdk-releases`).
fn sdk_releases() -> Vec<&'static str> {
    listed(include_str!("../../../integration/otel-sdk-releases"))
}

#[test]
fn the_table_is_current_with_its_generators_inputs() {
    let t = embedded();
    let releases = toolchains();
    assert!(releases.iter().any(|v| v.minor >= 27), "go-toolchains lists no Go 1.27");
    let wanted = [(Module::Runtime, releases.iter().map(ToString::to_string).collect::<Vec<_>>())]
        .into_iter()
        .chain([(Module::OtelSdk, sdk_releases().into_iter().map(str::to_owned).collect())]);
    for (module, versions) in wanted {
        for v in &versions {
            for arch in [Arch::Amd64, Arch::Arm64] {
                let m = t.lookup(module, v, arch).unwrap_or_else(|e| panic!("{arch:?} {v}: {e}"));
                assert!(
                    m.warning.is_none(),
                    "offsets.json lacks {} {v} ({arch:?}): run scripts/gen-offsets-table",
                    module.name()
                );
            }
        }
        // Nothing the generator no longer builds.
        let minors: BTreeSet<_> = versions.iter().filter_map(|v| minor_of(v)).collect();
        for l in t.layouts.iter().filter(|l| l.module == module.name()) {
            assert!(
                minor_of(&l.version).is_some_and(|v| minors.contains(&v)),
                "offsets.json holds {} {}, which the generator's inputs no longer list",
                l.module,
                l.version
            );
        }
    }
    for v in &releases {
        assert!(
            crate::wait_reasons::names(*v).is_some(),
            "wait_reasons.json lacks {v}: run scripts/gen-offsets-table"
        );
    }
}

#[test]
fn every_layout_holds_exactly_the_fields_of_its_module() {
    for l in &embedded().layouts {
        let module = Module::ALL.into_iter().find(|m| m.name() == l.module);
        let module = module.unwrap_or_else(|| panic!("unknown module {}", l.module));
        let wanted: BTreeSet<String> =
            Field::ALL.iter().filter(|f| f.module() == module).map(ToString::to_string).collect();
        let have: BTreeSet<String> = l.offsets.keys().cloned().collect();
        let versioned: BTreeSet<String> = VERSIONED.iter().map(|(f, _)| f.to_string()).collect();
        assert!(
            have.is_subset(&wanted) && wanted.difference(&have).all(|f| versioned.contains(f)),
            "{} {} {:?}: stale against the Field enum: run scripts/gen-offsets-table (missing {:?})",
            l.module,
            l.version,
            l.arch,
            wanted.difference(&have).collect::<Vec<_>>()
        );
    }
    // Each versioned field is in some layout: a misspelt member is not one.
    for (f, _) in VERSIONED {
        assert!(embedded().layouts.iter().any(|l| l.offsets.contains_key(&f.to_string())), "{f}");
    }
}

#[test]
fn the_embedded_table_is_in_the_generators_form() {
    let again = OffsetsTable::new(embedded().layouts.clone());
    assert_eq!(
        serde_json::to_string_pretty(&again).unwrap() + "\n",
        TABLE_JSON,
        "run scripts/gen-offsets-table"
    );
}
