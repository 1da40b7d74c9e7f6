//! The version-keyed table of Go runtime struct offsets, for binaries without
//! DWARF. It is generated from real Go toolchains' DWARF by
//! `scripts/gen-offsets-table` (one entry per Go minor release, newest patch,
//! per architecture) and embedded at build time.
//!
//! A release newer than the table knows gets the newest known layout only if
//! the generator found that layout unchanged from the release before it;
//! otherwise the offsets stay unknown and gort says why.

use std::{collections::BTreeMap, sync::OnceLock};

use thiserror::Error;

use crate::analysis::{Arch, GoVersion};

/// One Go release's offsets on one architecture, keyed `type.field`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    pub go: String,
    pub arch: Arch,
    pub offsets: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffsetsTable {
    pub generated_by: String,
    pub layouts: Vec<Layout>,
    /// Per architecture: the generator's comparison of the newest release's
    /// layout with the previous release's.
    pub newest_equals_previous: BTreeMap<Arch, bool>,
}

impl OffsetsTable {
    /// Builds a table and computes the newest-vs-previous comparison.
    pub fn new(mut layouts: Vec<Layout>) -> Self {
        layouts.sort_by_key(|l| (l.arch, GoVersion::parse(&l.go)));
        let mut newest_equals_previous = BTreeMap::new();
        for arch in [Arch::Amd64, Arch::Arm64] {
            let of_arch: Vec<&Layout> = layouts.iter().filter(|l| l.arch == arch).collect();
            if let [.., previous, newest] = of_arch.as_slice() {
                newest_equals_previous.insert(arch, previous.offsets == newest.offsets);
            }
        }
        Self { generated_by: "scripts/gen-offsets-table".into(), layouts, newest_equals_previous }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TableError {
    #[error("the offsets table has no {arch:?} layouts")]
    NoArch { arch: Arch },
    #[error(
        "{version} is newer than the offsets table ({newest}), and the runtime layout changed at {newest}, so it cannot be assumed; rebuild with DWARF or regenerate the table"
    )]
    NewerChanged { version: GoVersion, newest: String },
    #[error("{version} is older than every release in the offsets table")]
    Older { version: GoVersion },
}

/// The layout chosen for a binary, and whether it was an extrapolation.
#[derive(Debug, PartialEq, Eq)]
pub struct Match<'t> {
    pub layout: &'t Layout,
    /// Set when the binary's release is newer than the table: a warning.
    pub warning: Option<String>,
}

const TABLE_JSON: &str = include_str!("analysis/offsets_table.json");

/// The embedded table, parsed once.
pub fn embedded() -> &'static OffsetsTable {
    static TABLE: OnceLock<OffsetsTable> = OnceLock::new();
    TABLE
        .get_or_init(|| serde_json::from_str(TABLE_JSON).expect("offsets_table.json is generated and tested"))
}

impl OffsetsTable {
    /// The layout for `version` on `arch`: the same minor release (layouts do
    /// not change in patch releases), or for a newer release the newest one
    /// when the generator found it stable.
    pub fn lookup(&self, version: GoVersion, arch: Arch) -> Result<Match<'_>, TableError> {
        let of_arch: Vec<&Layout> = self.layouts.iter().filter(|l| l.arch == arch).collect();
        let minor = |l: &Layout| GoVersion::parse(&l.go).map(|v| (v.major, v.minor));
        if let Some(layout) = of_arch.iter().find(|l| minor(l) == Some((version.major, version.minor))) {
            return Ok(Match { layout, warning: None });
        }
        let newest = of_arch.last().ok_or(TableError::NoArch { arch })?;
        let newest_version = GoVersion::parse(&newest.go).unwrap_or(version);
        if version < newest_version {
            return Err(TableError::Older { version });
        }
        if self.newest_equals_previous.get(&arch) != Some(&true) {
            return Err(TableError::NewerChanged { version, newest: newest.go.clone() });
        }
        Ok(Match {
            layout: newest,
            warning: Some(format!(
                "{version} is newer than the offsets table; using the {} layout, which the table's generator found unchanged from the release before it",
                newest.go
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(go: &str, goid: u64) -> Layout {
        Layout {
            go: go.into(),
            arch: Arch::Amd64,
            offsets: BTreeMap::from([("runtime.g.goid".into(), goid)]),
        }
    }

    fn v(s: &str) -> GoVersion {
        GoVersion::parse(s).unwrap()
    }

    #[test]
    fn same_minor_matches_any_patch() {
        let t = OffsetsTable::new(vec![layout("go1.22.12", 160), layout("go1.21.13", 152)]);
        let m = t.lookup(v("go1.22.3"), Arch::Amd64).unwrap();
        assert_eq!(m.layout.go, "go1.22.12");
        assert_eq!(m.warning, None);
        assert_eq!(t.lookup(v("go1.22.3"), Arch::Arm64), Err(TableError::NoArch { arch: Arch::Arm64 }));
    }

    #[test]
    fn newer_release_only_when_the_layout_was_stable() {
        let changed = OffsetsTable::new(vec![layout("go1.25.14", 160), layout("go1.26.11", 152)]);
        assert!(matches!(changed.lookup(v("go1.27.4"), Arch::Amd64), Err(TableError::NewerChanged { .. })));
        let stable = OffsetsTable::new(vec![layout("go1.25.14", 152), layout("go1.26.11", 152)]);
        let m = stable.lookup(v("go1.27.4"), Arch::Amd64).unwrap();
        assert_eq!(m.layout.go, "go1.26.11");
        assert!(m.warning.unwrap().contains("newer than the offsets table"));
        assert!(matches!(stable.lookup(v("go1.24.0"), Arch::Amd64), Err(TableError::Older { .. })));
    }

    /// The Go releases the tests build with (`integration/go-toolchains`),
    /// the newest included: a release listed there but missing from a
    /// generated table means the table is stale.
    fn toolchains() -> Vec<GoVersion> {
        include_str!("../../integration/go-toolchains")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| GoVersion::parse(l.trim()))
            .filter(|v| *v >= crate::analysis::MIN_GO)
            .collect()
    }

    #[test]
    fn embedded_tables_cover_every_release_the_tests_build_with() {
        let releases = toolchains();
        assert!(releases.iter().any(|v| v.minor >= 27), "go-toolchains lists no Go 1.27");
        for v in &releases {
            assert!(
                crate::wait_reasons::names(*v).is_some(),
                "wait_reasons.json lacks go{}.{}: run scripts/gen-offsets-table",
                v.major,
                v.minor
            );
            for arch in [Arch::Amd64, Arch::Arm64] {
                let m = embedded().lookup(*v, arch).unwrap_or_else(|e| panic!("{arch:?} {v:?}: {e}"));
                assert!(
                    m.warning.is_none(),
                    "offsets_table.json lacks go{}.{} ({arch:?}): run scripts/gen-offsets-table",
                    v.major,
                    v.minor
                );
            }
        }
    }

    #[test]
    fn embedded_table_covers_every_supported_minor_on_both_arches() {
        let t = embedded();
        let newest = toolchains().iter().map(|v| v.minor).max().unwrap_or(26);
        for arch in [Arch::Amd64, Arch::Arm64] {
            for minor in 21..=newest {
                let m = t.lookup(GoVersion { major: 1, minor, patch: 0 }, arch).unwrap();
                assert!(m.warning.is_none());
                for field in crate::probe_table::INSPECTED_FIELDS {
                    assert!(
                        m.layout.offsets.contains_key(&field.to_string()),
                        "{arch:?} 1.{minor}: no {field}"
                    );
                }
            }
        }
    }
}
