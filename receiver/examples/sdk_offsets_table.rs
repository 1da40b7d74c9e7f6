//! Generates `receiver/src/analysis/sdk_offsets.json` from real builds of the
//! OpenTelemetry Go SDK (made by scripts/gen-sdk-offsets): reads each
//! binary's SDK version from its build info and the SDK struct offsets
//! (`probe_table::SDK_FIELDS`) from its DWARF.
//!
//! cargo run -p gort --example sdk_offsets_table -- OUT.json BINARY...

use std::collections::BTreeMap;

use gort::{
    analysis::{self, Request},
    probe_table,
    sdk_offsets::{SdkLayout, SdkTable},
};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = args.next().ok_or_else(|| anyhow::anyhow!("usage: sdk_offsets_table OUT.json BINARY..."))?;
    let mut layouts: Vec<SdkLayout> = Vec::new();
    for path in args {
        let bytes = std::fs::read(&path)?;
        let request = Request { functions: &[], fields: probe_table::SDK_FIELDS };
        let a = analysis::analyse(&bytes[..], &request).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        anyhow::ensure!(a.has_dwarf, "{path}: built without DWARF");
        let sdk = a
            .build
            .deps
            .iter()
            .find(|m| m.path == probe_table::SDK_MODULE)
            .ok_or_else(|| anyhow::anyhow!("{path}: no {} dependency", probe_table::SDK_MODULE))?
            .version
            .clone();
        let offsets: BTreeMap<String, u64> =
            a.fields.iter().map(|(f, o)| (f.to_string(), o.offset)).collect();
        anyhow::ensure!(
            offsets.len() == probe_table::SDK_FIELDS.len(),
            "{path}: fields missing: {offsets:?}"
        );
        eprintln!("{path}: SDK {sdk} {:?}: {offsets:?}", a.arch);
        layouts.push(SdkLayout { sdk, arch: a.arch, offsets });
    }
    layouts.sort_by(|a, b| (a.arch, &a.sdk).cmp(&(b.arch, &b.sdk)));
    let table = SdkTable { generated_by: "scripts/gen-sdk-offsets".into(), layouts };
    std::fs::write(&out, serde_json::to_string_pretty(&table)? + "\n")?;
    Ok(())
}
