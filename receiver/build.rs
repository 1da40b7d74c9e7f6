//! Builds the eBPF probes (probes/) with the nightly pinned in
//! probes/rust-toolchain.toml and embeds the object in the `gort` binary.
//!
//! `AYA_BUILD_SKIP=1` skips the eBPF build so clippy and unit tests work on a
//! machine without the BPF toolchain; such a `gort` says so when asked to attach.
use std::{env, fs, path::Path};

use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

fn main() -> anyhow::Result<()> {
    println!("cargo::rustc-check-cfg=cfg(gort_probes_embedded)");
    println!("cargo::rerun-if-env-changed=AYA_BUILD_SKIP");
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));

    let manifest_dir = env::var("CARGO_MANIFEST_DIR")?;
    let probes_dir = Path::new(&manifest_dir).join("../probes");
    let toolchain_file = probes_dir.join("rust-toolchain.toml");
    println!("cargo::rerun-if-changed={}", toolchain_file.display());
    let toolchain_toml = fs::read_to_string(&toolchain_file)
        .with_context(|| format!("reading {}", toolchain_file.display()))?;
    let channel = toolchain_toml
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("channel")
                .map(|v| v.trim_start_matches([' ', '=']).trim().trim_matches('"'))
        })
        .ok_or_else(|| anyhow!("no channel in {}", toolchain_file.display()))?
        .to_owned();

    let probes_dir = probes_dir.canonicalize()?;
    let package = aya_build::Package {
        name: "gort-probes",
        root_dir: probes_dir.to_str().ok_or_else(|| anyhow!("non-UTF-8 path"))?,
        ..Default::default()
    };
    aya_build::build_ebpf([package], Toolchain::Custom(&channel))?;
    if !skip {
        println!("cargo::rustc-cfg=gort_probes_embedded");
    }
    Ok(())
}
