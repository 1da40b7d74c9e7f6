//! Generates `goexe/src/wait_reasons.json`: for each Go minor
//! release, the `waitReason` numbers of its runtime in order, read from the
//! toolchain's own runtime/runtime2.go (the `waitReason = iota` block, whose
//! comments hold the strings the runtime prints). The numbering changes
//! between releases, so probes report the number and gort names it.
//!
//! cargo run -p gort-goexe --example wait_reasons_table -- OUT.json GOVERSION=GOROOT...

use std::collections::BTreeMap;

fn reasons(runtime2: &str) -> anyhow::Result<Vec<String>> {
    let start =
        runtime2.find("waitReasonZero").ok_or_else(|| anyhow::anyhow!("no waitReasonZero in runtime2.go"))?;
    let block = &runtime2[start..];
    let block = &block[..block.find("\n)").ok_or_else(|| anyhow::anyhow!("unterminated const block"))?];
    let mut out = Vec::new();
    for line in block.lines().map(str::trim) {
        if !line.starts_with("waitReason") {
            continue;
        }
        let text = line
            .split_once("//")
            .map(|(_, c)| c.trim().trim_matches('"').to_owned())
            .ok_or_else(|| anyhow::anyhow!("no string comment on {line:?}"))?;
        out.push(text);
    }
    anyhow::ensure!(out.len() > 10, "only {} wait reasons found", out.len());
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out =
        args.next().ok_or_else(|| anyhow::anyhow!("usage: wait_reasons_table OUT.json VERSION=GOROOT..."))?;
    let mut table: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for arg in args {
        let (version, goroot) =
            arg.split_once('=').ok_or_else(|| anyhow::anyhow!("{arg}: want VERSION=GOROOT"))?;
        let source = std::fs::read_to_string(format!("{goroot}/src/runtime/runtime2.go"))?;
        let list = reasons(&source)?;
        eprintln!("{version}: {} wait reasons", list.len());
        let minor: String = version.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
        table.insert(minor, list);
    }
    std::fs::write(&out, serde_json::to_string_pretty(&table)? + "\n")?;
    Ok(())
}
