//! The one table of struct offsets for binaries without DWARF, keyed by
//! (module, release, architecture): the Go runtime's layouts by Go release,
//! the OpenTelemetry Go SDK's by SDK release (from the binary's build info).
//! It is generated from real builds' DWARF by `scripts/gen-offsets-table`
//! (one layout per minor release, newest patch, per architecture) and
//! embedded at build time.
//!
//! A release newer than the table knows gets the newest known layout only if
//! that layout is unchanged from the release before it; otherwise the offsets
//! stay unknown and gort says why.

use std::{collections::BTreeMap, sync::OnceLock};

use gort_common::{Field, Module};
use thiserror::Error;

use crate::{Arch, GoVersion};

/// Fields that only some releases have, with the releases that do: every
/// other field is in every layout of its module.
pub const VERSIONED: &[(Field, &str)] =
    &[(Field::SchedtStwTotalTimeGC, "Go 1.22 and later"), (Field::MstatsGcPauseDist, "Go 1.21")];

/// One release's offsets of one module on one architecture, keyed
/// `type.member` (`Field`'s display form).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// `go` or the module path (`Module::name`).
    pub module: String,
    /// The release as the binary names it: `go1.22.12`, `v1.32.0`.
    pub version: String,
    pub arch: Arch,
    pub offsets: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffsetsTable {
    pub generated_by: String,
    pub layouts: Vec<Layout>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TableError {
    #[error("{module} release {version:?} cannot be parsed")]
    Version { module: &'static str, version: String },
    #[error("the offsets table has no {module} layouts for {arch:?}")]
    NoArch { module: &'static str, arch: Arch },
    #[error(
        "{module} release {version} is newer than the offsets table ({newest}), and the layout changed at {newest}, so it cannot be assumed; build with DWARF or regenerate the table"
    )]
    NewerChanged { module: &'static str, version: String, newest: String },
    #[error("{module} release {version} is older than every release in the offsets table ({oldest})")]
    Older { module: &'static str, version: String, oldest: String },
    #[error(
        "{module} release {version} is missing from the offsets table, and its neighbours' layouts differ"
    )]
    Gap { module: &'static str, version: String },
}

/// The layout chosen for a binary, and whether it was an extrapolation.
#[derive(Debug, PartialEq, Eq)]
pub struct Match<'t> {
    pub layout: &'t Layout,
    /// Set when the binary's release is newer than the table: a warning.
    pub warning: Option<String>,
}

/// (major, minor) of a release as either module names it: `go1.22.12`,
/// `go1.21rc2`, `v1.32.0`, `v1.47.0-rc.1`.
pub fn minor_of(version: &str) -> Option<(u32, u32)> {
    if let Some(v) = GoVersion::parse(version) {
        return Some((v.major, v.minor));
    }
    let mut parts = version.strip_prefix('v')?.split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

const TABLE_JSON: &str = include_str!("offsets.json");

/// The embedded table, parsed once.
pub fn embedded() -> &'static OffsetsTable {
    static TABLE: OnceLock<OffsetsTable> = OnceLock::new();
    TABLE.get_or_init(|| serde_json::from_str(TABLE_JSON).expect("offsets.json is generated and tested"))
}

impl OffsetsTable {
    /// A table of `layouts`, in the order the generator writes them.
    pub fn new(mut layouts: Vec<Layout>) -> Self {
        layouts.sort_by_key(|l| (l.module.clone(), l.arch, minor_of(&l.version), l.version.clone()));
        Self { generated_by: "scripts/gen-offsets-table".into(), layouts }
    }

    /// This table with `module`'s layouts replaced by `layouts` (what the
    /// generator does for the module it was run for).
    pub fn replace(self, module: Module, layouts: Vec<Layout>) -> Self {
        let kept = self.layouts.into_iter().filter(|l| l.module != module.name());
        Self::new(kept.chain(layouts).collect())
    }

    /// A module's layouts on `arch`, oldest release first.
    pub fn layouts(&self, module: Module, arch: Arch) -> Vec<(&Layout, (u32, u32))> {
        let mut of: Vec<_> = self
            .layouts
            .iter()
            .filter(|l| l.module == module.name() && l.arch == arch)
            .filter_map(|l| Some((l, minor_of(&l.version)?)))
            .collect();
        of.sort_by_key(|(_, v)| *v);
        of
    }

    /// The layout of `module` release `version` on `arch`: the same minor
    /// release (layouts do not change in patch releases), or for a newer
    /// release the newest one when it equals the one before it.
    pub fn lookup(&self, module: Module, version: &str, arch: Arch) -> Result<Match<'_>, TableError> {
        let name = module.name();
        let wanted =
            minor_of(version).ok_or_else(|| TableError::Version { module: name, version: version.into() })?;
        let of = self.layouts(module, arch);
        let (Some(&(oldest, oldest_v)), Some(&(newest, newest_v))) = (of.first(), of.last()) else {
            return Err(TableError::NoArch { module: name, arch });
        };
        if let Some((layout, _)) = of.iter().find(|(_, v)| *v == wanted) {
            return Ok(Match { layout, warning: None });
        }
        if wanted < oldest_v {
            return Err(TableError::Older {
                module: name,
                version: version.into(),
                oldest: oldest.version.clone(),
            });
        }
        if wanted > newest_v {
            let stable = of.len() >= 2 && of[of.len() - 2].0.offsets == newest.offsets;
            if !stable {
                return Err(TableError::NewerChanged {
                    module: name,
                    version: version.into(),
                    newest: newest.version.clone(),
                });
            }
            let warning = format!(
                "{name} release {version} is newer than the offsets table; using the {} layout, unchanged from the release before it",
                newest.version
            );
            return Ok(Match { layout: newest, warning: Some(warning) });
        }
        // A minor release between two known ones (the generator skips none,
        // so only a hand-made table gets here): the older neighbour's layout
        // if it equals the newer one's.
        let below = of.iter().rev().find(|(_, v)| *v < wanted);
        let above = of.iter().find(|(_, v)| *v > wanted);
        match (below, above) {
            (Some((b, _)), Some((a, _))) if b.offsets == a.offsets => Ok(Match { layout: b, warning: None }),
            _ => Err(TableError::Gap { module: name, version: version.into() }),
        }
    }

    /// The offset of `field` for a binary of `version` of the field's module.
    pub fn offset(&self, field: Field, version: &str, arch: Arch) -> Result<Option<u64>, TableError> {
        let m = self.lookup(field.module(), version, arch)?;
        Ok(m.layout.offsets.get(&field.to_string()).copied())
    }
}

#[cfg(test)]
mod tests;
