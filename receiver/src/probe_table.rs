//! The declarative table of what gort attaches: which Go runtime function, at
//! which site, runs which eBPF program, and whether gort can work without it.
//! The analysis resolves every symbol and field named here; attach walks it.

use gort_common::{ProbeId, names};

use crate::analysis::FieldRef;

/// Where in the function the uprobe goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// The first instruction the kernel emulates after the entry (see
    /// `analysis::sites`): arguments are still in their registers.
    AfterEntry,
}

/// Whether gort refuses to run when the probe cannot be attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Required,
    Optional,
}

#[derive(Clone, Copy, Debug)]
pub struct ProbeSpec {
    pub id: ProbeId,
    /// Short name used in output and metric attributes.
    pub name: &'static str,
    pub symbol: &'static str,
    pub site: Site,
    pub program: &'static str,
    pub need: Need,
}

pub const PROBES: &[ProbeSpec] = &[
    ProbeSpec {
        id: ProbeId::Execute,
        name: "execute",
        symbol: "runtime.execute",
        site: Site::AfterEntry,
        program: names::PROG_EXECUTE,
        need: Need::Required,
    },
    ProbeSpec {
        id: ProbeId::Ready,
        name: "ready",
        symbol: "runtime.ready",
        site: Site::AfterEntry,
        program: names::PROG_READY,
        need: Need::Required,
    },
];

pub const GOID: FieldRef = FieldRef { type_name: "runtime.g", field: "goid" };

/// Struct fields the probes read, with whether they are required.
pub const FIELDS: &[(FieldRef, Need)] = &[(GOID, Need::Required)];

pub fn symbols() -> Vec<&'static str> {
    PROBES.iter().map(|p| p.symbol).collect()
}

pub fn fields() -> Vec<FieldRef> {
    FIELDS.iter().map(|(f, _)| *f).collect()
}
