//! A process's executable opened for symbolization: its `.gopclntab`
//! parsed once per opening, run-time pcs (the image loaded `bias` from
//! where it was linked) turned into frames. The dump opens it for one dump;
//! the census's park locations open it only when pcs it has not named yet
//! turn up.

use std::{fs::File, ops::Range, path::Path};

use gort_goexe::{
    GoVersion, goroutines,
    pclntab::{self, Frame, PclntabError, Symbolizer},
};
use object::{ReadCache, ReadRef};
use thiserror::Error;

use super::Symbols;

/// Every goroutine's bottom frame: a walk that reaches it is complete.
const GOEXIT: &str = "runtime.goexit";

#[derive(Debug, Error)]
pub enum SymbolsError {
    #[error("cannot read {path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("{path}: {reason}")]
    Elf { path: String, reason: String },
    #[error("{path}: {source}")]
    Pclntab { path: String, source: PclntabError },
}

/// Symbolizes run-time pcs of a process whose executable is loaded `bias`
/// from where it was linked.
pub struct ProcessSymbols<'p, 'data, 'file, R: ReadRef<'data>> {
    symbolizer: Symbolizer<'p, 'data, 'file, R>,
    bias: u64,
    /// Link-time entries of the runtime's goroutine functions, sorted.
    runtime_entries: Vec<u64>,
    /// Link-time extent of `runtime.goexit`.
    goexit: Option<Range<u64>>,
}

impl<'data, R: ReadRef<'data>> Symbols for ProcessSymbols<'_, 'data, '_, R> {
    fn frames(&self, pc: u64) -> Vec<Frame> {
        let mut frames = self.symbolizer.frames(pc.wrapping_sub(self.bias));
        for f in &mut frames {
            f.entry = f.entry.wrapping_add(self.bias);
        }
        frames
    }

    fn is_runtime_entry(&self, pc: u64) -> bool {
        self.runtime_entries.binary_search(&pc.wrapping_sub(self.bias)).is_ok()
    }

    fn is_stack_bottom(&self, pc: u64) -> bool {
        self.goexit.as_ref().is_some_and(|r| r.contains(&pc.wrapping_sub(self.bias)))
    }
}

/// Opens `image` (for a process, `/proc/PID/exe`: the file it runs even
/// when replaced on disk) and calls `f` with its symbols.
pub fn with_symbols<T>(
    image: &Path,
    go_version: GoVersion,
    bias: u64,
    f: impl for<'p, 'd, 'f> FnOnce(&ProcessSymbols<'p, 'd, 'f, &'d ReadCache<File>>) -> T,
) -> Result<T, SymbolsError> {
    let path = image.display().to_string();
    let file = File::open(image).map_err(|source| SymbolsError::Open { path: path.clone(), source })?;
    let cache = ReadCache::new(file);
    let elf = object::File::parse(&cache)
        .map_err(|e| SymbolsError::Elf { path: path.clone(), reason: e.to_string() })?;
    let pcln = pclntab::Pclntab::parse(&cache, &elf, pclntab::gofunc_word(go_version))
        .map_err(|source| SymbolsError::Pclntab { path: path.clone(), source })?;
    let runtime_entries = goroutines::runtime_goroutine_entries_in(&pcln).unwrap_or_else(|e| {
        log::warn!("{path}: {e}: the runtime's own goroutines are shown with the application's");
        Vec::new()
    });
    let goexit =
        pcln.functions(&[GOEXIT]).ok().and_then(|mut f| f.remove(GOEXIT)).map(|f| f.entry..f.entry + f.size);
    let symbols =
        ProcessSymbols { symbolizer: Symbolizer::new(&pcln, &cache, &elf), bias, runtime_entries, goexit };
    Ok(f(&symbols))
}
