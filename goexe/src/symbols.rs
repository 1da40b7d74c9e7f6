//! Data symbols of the executable (for reading the process's memory) and
//! where its image is linked.

use std::collections::BTreeMap;

use object::{Object, ObjectSegment, ObjectSymbol, ReadRef};

use crate::AnalysisError;

/// Link-time addresses of data symbols (e.g. `runtime.allgs`) from the ELF
/// symbol table, and the image's base address (to relocate them in a PIE
/// process). Stripped binaries have none: the map is then empty.
pub fn data_symbols<'data, R: ReadRef<'data>>(
    data: R,
    wanted: &[&str],
) -> Result<(u64, BTreeMap<String, u64>), AnalysisError> {
    let file = object::File::parse(data).map_err(|e| AnalysisError::NotElf(e.to_string()))?;
    let found = file
        .symbols()
        .filter(|s| s.kind() == object::SymbolKind::Data)
        .filter_map(|s| Some((s.name().ok()?, s.address())))
        .filter(|(name, _)| wanted.contains(name))
        .map(|(name, address)| (name.to_owned(), address))
        .collect();
    // The lowest loaded address: where the first page of the file is linked
    // (0 for a PIE, 0x400000 for a classic amd64 executable).
    let base = file.segments().map(|s| s.address()).min().unwrap_or(0);
    Ok((base, found))
}
