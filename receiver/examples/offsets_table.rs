//! Generates `receiver/src/analysis/offsets_table.json` from real Go builds:
//! reads the DWARF of each binary given (built by scripts/gen-offsets-table
//! with one toolchain and GOARCH each) and records the offsets of every field
//! in `probe_table::INSPECTED_FIELDS`, plus, per architecture, whether the
//! newest release's layout equals the one before it (which is what allows
//! gort to use it for a newer, unknown release).
//!
//! cargo run -p gort --example offsets_table -- OUT.json BINARY...

use std::collections::BTreeMap;

use gort::{
    analysis::{self, Request},
    offsets::{Layout, OffsetsTable},
    probe_table,
};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = args.next().ok_or_else(|| anyhow::anyhow!("usage: offsets_table OUT.json BINARY..."))?;
    let mut layouts: Vec<Layout> = Vec::new();
    for path in args {
        let bytes = std::fs::read(&path)?;
        let request = Request { functions: &[], fields: probe_table::INSPECTED_FIELDS };
        let a = analysis::analyse(&bytes[..], &request).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        anyhow::ensure!(a.has_dwarf, "{path}: built without DWARF");
        let offsets: BTreeMap<String, u64> =
            a.fields.iter().map(|(f, o)| (f.to_string(), o.offset)).collect();
        eprintln!("{path}: {} {:?}: {} fields", a.build.go_version, a.arch, offsets.len());
        layouts.push(Layout { go: a.build.go_version.clone(), arch: a.arch, offsets });
    }
    let table = OffsetsTable::new(layouts);
    std::fs::write(&out, serde_json::to_string_pretty(&table)? + "\n")?;
    for (arch, same) in &table.newest_equals_previous {
        eprintln!("{arch:?}: newest layout equals the previous release's: {same}");
    }
    Ok(())
}
