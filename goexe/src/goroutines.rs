//! Which goroutines are the runtime's own, by where they start.

use object::ReadRef;

use crate::{AnalysisError, GoVersion, pclntab};

/// Functions that make a goroutine the runtime's own when it starts there:
/// everything in package runtime except these (the runtime's own rule,
/// `isSystemGoroutine` in runtime/traceback.go, Go 1.21-1.27).
const USER_RUNTIME_ENTRIES: &[&[u8]] = &[b"runtime.main", b"runtime.corostart", b"runtime.handleAsyncEvent"];

/// Whether a goroutine that starts in `name` is one of the runtime's own
/// (GC workers, the sweeper, the scavenger, the finalizer goroutine, ...).
/// The finalizer goroutine counts as the runtime's even while it runs a
/// finalizer, where the runtime's own accounting calls it a user goroutine.
pub fn is_runtime_entry(name: &[u8]) -> bool {
    name.starts_with(b"runtime.") && !USER_RUNTIME_ENTRIES.contains(&name)
}

/// Link-time entries of every function at which a goroutine is the
/// runtime's own (`is_runtime_entry`), from `.gopclntab`, so stripped
/// binaries have them too; sorted. `version`: the binary's Go release.
pub fn runtime_goroutine_entries<'data, R: ReadRef<'data>>(
    data: R,
    version: GoVersion,
) -> Result<Vec<u64>, AnalysisError> {
    let file = object::File::parse(data).map_err(|e| AnalysisError::NotElf(e.to_string()))?;
    let pcln = pclntab::Pclntab::parse(data, &file, pclntab::gofunc_word(version))?;
    Ok(runtime_goroutine_entries_in(&pcln)?)
}

/// `runtime_goroutine_entries` from a pclntab already parsed.
pub fn runtime_goroutine_entries_in(pcln: &pclntab::Pclntab<'_>) -> Result<Vec<u64>, pclntab::PclntabError> {
    let mut entries = pcln.entries_where(is_runtime_entry)?;
    entries.sort_unstable();
    entries.dedup();
    Ok(entries)
}
