//! Generates `goexe/src/offsets/offsets.json` from real builds: reads the
//! DWARF of each binary given (built by scripts/gen-offsets-table with one
//! toolchain or SDK release and GOARCH each) and records the offset of every
//! `Field` of the module, keyed by the module's release in that binary (its
//! Go version, or its SDK dependency's version). The other modules' layouts
//! in OUT are kept.
//!
//! cargo run -p gort-goexe --example offsets_table -- go|go.opentelemetry.io/otel/sdk OUT.json BINARY...

use std::collections::BTreeMap;

use gort_goexe::{
    self as goexe, Field, Module, Request,
    offsets::{Layout, OffsetsTable},
};

fn main() -> anyhow::Result<()> {
    let usage = "usage: offsets_table MODULE OUT.json BINARY...";
    let mut args = std::env::args().skip(1);
    let module = args.next().ok_or_else(|| anyhow::anyhow!(usage))?;
    let module = Module::ALL
        .into_iter()
        .find(|m| m.name() == module)
        .ok_or_else(|| anyhow::anyhow!("{module}: not a module of the table ({usage})"))?;
    let out = args.next().ok_or_else(|| anyhow::anyhow!(usage))?;
    let fields: Vec<Field> = Field::ALL.iter().copied().filter(|f| f.module() == module).collect();
    let mut layouts: Vec<Layout> = Vec::new();
    for path in args {
        let bytes = std::fs::read(&path)?;
        let request = Request { functions: &[], fields: &fields, callers: &[] };
        let a = goexe::analyse(&bytes[..], &request).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        anyhow::ensure!(a.has_dwarf, "{path}: built without DWARF");
        let version = match module {
            Module::Runtime => a.build.go_version.clone(),
            Module::OtelSdk => {
                let dep = a.build.deps.iter().find(|m| m.path == module.name());
                dep.ok_or_else(|| anyhow::anyhow!("{path}: no {} dependency", module.name()))?.version.clone()
            }
        };
        let offsets: BTreeMap<String, u64> =
            a.fields.iter().map(|(f, o)| (f.to_string(), o.offset)).collect();
        // Only fields some releases lack may be missing.
        let versioned = |f: &Field| gort_goexe::offsets::VERSIONED.iter().any(|(v, _)| v == f);
        let missing: Vec<_> = a.missing_fields.iter().filter(|f| !versioned(f)).collect();
        anyhow::ensure!(missing.is_empty(), "{path}: fields missing: {missing:?}");
        eprintln!("{path}: {} {version} {:?}: {} fields", module.name(), a.arch, offsets.len());
        layouts.push(Layout { module: module.name().into(), version, arch: a.arch, offsets });
    }
    let table = match std::fs::read_to_string(&out) {
        Ok(text) => serde_json::from_str::<OffsetsTable>(&text)?,
        Err(_) => OffsetsTable::new(Vec::new()),
    };
    let table = table.replace(module, layouts);
    std::fs::write(&out, serde_json::to_string_pretty(&table)? + "\n")?;
    Ok(())
}
