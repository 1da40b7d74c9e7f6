//! `gort inspect`: what gort resolves from a Go executable, as text or JSON.

use std::path::Path;

use anyhow::Context as _;
use gort_common::field::{Module, OTEL_SDK_MODULE};
use gort_goexe::{
    self as analysis, Request,
    functions::{INSPECTED_CALLERS, INSPECTED_FIELDS, INSPECTED_FUNCTIONS},
};

pub fn inspect(path: &Path, json: bool) -> anyhow::Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let cache = object::ReadCache::new(file);
    let request =
        Request { functions: INSPECTED_FUNCTIONS, fields: INSPECTED_FIELDS, callers: INSPECTED_CALLERS };
    let mut analysis = analysis::analyse(&cache, &request).with_context(|| path.display().to_string())?;
    // The SDK's functions and fields are only missing from a program that
    // uses the SDK; for any other, they are not worth a mention.
    if !analysis.build.deps.iter().any(|m| m.path == OTEL_SDK_MODULE) {
        let sdk = |name: &str| name.starts_with("go.opentelemetry.io/");
        analysis.missing_functions.retain(|f| !sdk(f));
        analysis.missing_fields.retain(|f| f.module() != Module::OtelSdk);
        analysis.inlined_only.retain(|f, _| !sdk(f));
    }
    // A field only some releases have is not missing from the others.
    analysis.missing_fields.retain(|f| !analysis::offsets::VERSIONED.iter().any(|(v, _)| v == f));
    let mut out = String::new();
    if json {
        outln!(out, "{}", serde_json::to_string_pretty(&analysis)?);
        return super::print_out(&out);
    }
    outln!(out, "{}: {} {:?}", path.display(), analysis.build.go_version, analysis.arch);
    outln!(out, "  main module: {} {}", analysis.build.main.path, analysis.build.main.version);
    match analysis.build.deps.iter().find(|m| m.path == OTEL_SDK_MODULE) {
        Some(sdk) => outln!(out, "  OpenTelemetry Go SDK: {} {} (trace linkage)", sdk.path, sdk.version),
        None => outln!(out, "  OpenTelemetry Go SDK: not in the build (no trace linkage)"),
    }
    outln!(out, "  symbols: {}  dwarf: {}", analysis.has_symbols, analysis.has_dwarf);
    for f in analysis.functions.values() {
        outln!(
            out,
            "  {:<24} {:#x} size {:<5} site +{:#x} {:?} ({}) returns {:?} (each {:?})",
            f.name,
            f.address,
            f.size,
            f.code.site.offset,
            f.code.site.kind,
            f.code.site.instruction,
            f.code.returns,
            analysis::RETURN_SITE_KIND
        );
    }
    for (name, calls) in &analysis.calls {
        let emulated = calls.iter().filter(|c| c.kind == analysis::SiteKind::Emulated).count();
        let constant = calls.iter().filter(|c| c.constant_args.iter().skip(1).all(Option::is_some)).count();
        outln!(
            out,
            "  {name:<24} called at {} sites ({emulated} emulated, {} single-stepped), {constant} with constant 2nd and 3rd arguments",
            calls.len(),
            calls.len() - emulated
        );
        for c in calls {
            let args: Vec<String> =
                c.constant_args.iter().map(|a| a.map_or_else(|| "?".to_owned(), |v| v.to_string())).collect();
            outln!(
                out,
                "    {:#x} {}+{:#x} {:?} args ({})",
                c.address,
                c.caller,
                c.offset,
                c.kind,
                args.join(", ")
            );
        }
    }
    for name in &analysis.missing_functions {
        match analysis.inlined_only.get(name) {
            Some(callers) => outln!(out, "  {name:<24} only inlined, into: {}", callers.join(", ")),
            None => outln!(out, "  {name:<24} not found"),
        }
    }
    for (name, reason) in &analysis.unprobeable {
        outln!(out, "  {name:<30} no probe site: {reason}");
    }
    for (field, offset) in &analysis.fields {
        outln!(out, "  {field:<24} offset {} ({:?})", offset.offset, offset.source);
    }
    for field in &analysis.missing_fields {
        outln!(out, "  {field:<24} offset unknown");
    }
    for warning in &analysis.warnings {
        outln!(out, "  warning: {warning}");
    }
    super::print_out(&out)
}
