//! Binary analysis of Go executables: bytes in, facts out. No BPF, no root,
//! no I/O beyond the bytes handed in, so everything here is unit-testable
//! against real Go binaries.
//!
//! It answers what gort needs before attaching: is this a Go program, which Go
//! version, where each runtime function lives (address, file offset for the
//! uprobe, the emulatable probe site, every RET), and where the struct fields
//! the probes read sit.

pub mod allgs;
pub mod buildinfo;
pub mod callers;
pub mod dwarf;
pub mod functions;
pub mod goroutines;
pub mod offsets;
pub mod pclntab;
pub mod sites;
pub mod symbols;
pub mod truncation;
pub mod version;
pub mod wait_reasons;

use std::collections::BTreeMap;

pub use gort_common::{Field, Module};
use object::{Object, ObjectSection, ObjectSymbol, ReadRef, SectionKind};
use thiserror::Error;

pub use self::{
    buildinfo::BuildInfo,
    callers::CallSite,
    goroutines::{is_runtime_entry, runtime_goroutine_entries},
    sites::{Arch, CodeFacts, DirectCall, ProbeSite, RETURN_SITE_KIND, SiteKind},
    symbols::data_symbols,
    truncation::truncation,
    version::GoVersion,
};

/// The oldest Go release gort supports.
pub const MIN_GO: GoVersion = GoVersion { major: 1, minor: 21, patch: 0 };

#[derive(Debug, Error)]
pub enum AnalysisError {
    #[error("not an ELF executable ({0})")]
    NotElf(String),
    #[error(
        "the executable is truncated: the file has {size} bytes, its ELF headers describe {}{needed}",
        if *.partial { "at least " } else { "" }
    )]
    Truncated { size: u64, needed: u64, partial: bool },
    #[error("not a Go program: the ELF file has no .go.buildinfo section")]
    NotGo,
    #[error("unsupported architecture {0:?}: gort analyses amd64 and arm64 Go binaries")]
    UnsupportedArch(object::Architecture),
    #[error("cannot read the Go build info: {0}")]
    BuildInfo(#[from] buildinfo::BuildInfoError),
    #[error("cannot read the .go.buildinfo section: {0}")]
    BuildInfoSection(object::Error),
    #[error("Go version {found} is older than {MIN_GO}, the oldest gort supports")]
    GoTooOld { found: String },
    #[error("cannot read the code of {function}: {reason}")]
    Code { function: String, reason: String },
    #[error(transparent)]
    Dwarf(#[from] dwarf::DwarfError),
    #[error("the binary has no symbol table and its .gopclntab cannot be read: {0}")]
    Pclntab(#[from] pclntab::PclntabError),
}

/// Where a struct field offset came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetSource {
    /// The binary's own DWARF.
    Dwarf,
    /// The generated table keyed by (module, release) (`offsets/offsets.json`).
    Table,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FieldOffset {
    pub offset: u64,
    pub source: OffsetSource,
}

/// Where a function's address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SymbolSource {
    /// The ELF symbol table.
    Symtab,
    /// Go's own function table, which survives stripping.
    Pclntab,
}

/// One runtime function as found in the binary.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Function {
    pub name: String,
    pub source: SymbolSource,
    /// Functions this one was inlined into: a probe on it does not fire for
    /// those calls, so probe the caller instead. `None` when the inline
    /// trees could not be read.
    pub inlined_into: Option<Vec<String>>,
    /// Virtual address of the entry.
    pub address: u64,
    pub size: u64,
    /// File offset of the entry: what the kernel's uprobe API takes.
    pub file_offset: u64,
    #[serde(flatten)]
    pub code: CodeFacts,
}

impl Function {
    /// File offset of the probe site.
    pub fn site_file_offset(&self) -> u64 {
        self.file_offset + self.code.site.offset
    }

    /// File offsets of every RET instruction (exit probes).
    pub fn return_file_offsets(&self) -> impl Iterator<Item = u64> + '_ {
        self.code.returns.iter().map(|r| self.file_offset + r)
    }
}

/// Everything gort resolved from one binary.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Analysis {
    pub arch: Arch,
    pub go_version: GoVersion,
    pub build: BuildInfo,
    pub has_symbols: bool,
    pub has_dwarf: bool,
    pub functions: BTreeMap<String, Function>,
    /// For each function of `Request::callers` found: every direct call of
    /// it from its package, in address order.
    pub calls: BTreeMap<String, Vec<CallSite>>,
    /// Requested functions the binary does not contain as functions of their own.
    pub missing_functions: Vec<String>,
    /// Of those, the ones that exist only inlined, with the functions they
    /// were inlined into (the ones to probe instead).
    pub inlined_only: BTreeMap<String, Vec<String>>,
    /// Functions found but offering no probe site (with the reason).
    pub unprobeable: BTreeMap<String, String>,
    #[serde(serialize_with = "serialize_fields")]
    pub fields: BTreeMap<Field, FieldOffset>,
    /// Requested fields not found.
    #[serde(serialize_with = "serialize_field_names")]
    pub missing_fields: Vec<Field>,
    /// Things the user should know (an extrapolated offsets table, a table
    /// that cannot serve this release).
    pub warnings: Vec<String>,
}

fn serialize_field_names<S: serde::Serializer>(fields: &[Field], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(fields.iter().map(ToString::to_string))
}

fn serialize_fields<S: serde::Serializer>(
    fields: &BTreeMap<Field, FieldOffset>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(fields.iter().map(|(k, v)| (k.to_string(), v)))
}

/// What the caller wants resolved.
pub struct Request<'a> {
    pub functions: &'a [&'a str],
    pub fields: &'a [Field],
    /// Functions (also named in `functions`) whose call sites are wanted
    /// (`Analysis::calls`).
    pub callers: &'a [&'a str],
}

/// Analyses a Go ELF executable: `data` is its bytes in memory, or an
/// `object::ReadCache` over the open file, which reads only the sections
/// the analysis touches (a fraction of a large binary).
pub fn analyse<'data, R: ReadRef<'data>>(data: R, request: &Request<'_>) -> Result<Analysis, AnalysisError> {
    if let Some((size, needed, partial)) = truncation(data) {
        return Err(AnalysisError::Truncated { size, needed, partial });
    }
    let file = object::File::parse(data).map_err(|e| AnalysisError::NotElf(e.to_string()))?;
    if file.format() != object::BinaryFormat::Elf {
        return Err(AnalysisError::NotElf(format!("a {:?} file", file.format())));
    }
    let arch = match file.architecture() {
        object::Architecture::X86_64 => Arch::Amd64,
        object::Architecture::Aarch64 => Arch::Arm64,
        other => return Err(AnalysisError::UnsupportedArch(other)),
    };
    let section = file.section_by_name(".go.buildinfo").ok_or(AnalysisError::NotGo)?;
    let build = buildinfo::parse(section.data().map_err(AnalysisError::BuildInfoSection)?)?;
    let go_version = GoVersion::parse(&build.go_version)
        .ok_or_else(|| AnalysisError::GoTooOld { found: build.go_version.clone() })?;
    if go_version < MIN_GO {
        return Err(AnalysisError::GoTooOld { found: build.go_version.clone() });
    }

    let has_symbols = file.symbol_table().is_some();
    // The pclntab is needed for stripped binaries and for inline trees; a
    // binary with symbols but an unreadable pclntab still gets its functions.
    let pcln = pclntab::Pclntab::parse(data, &file, pclntab::gofunc_word(go_version));
    let (symbols, source) = if has_symbols {
        (symbol_table(&file, request.functions), SymbolSource::Symtab)
    } else {
        let pcln = pcln.as_ref().map_err(Clone::clone)?;
        let found = pcln.functions(request.functions)?;
        (found.into_iter().map(|(k, f)| (k, (f.entry, f.size))).collect(), SymbolSource::Pclntab)
    };
    let inlined = pcln.as_ref().ok().map(|p| p.inlined(data, &file, request.functions));
    let mut functions = BTreeMap::new();
    let mut missing_functions = Vec::new();
    let mut inlined_only = BTreeMap::new();
    let mut unprobeable = BTreeMap::new();
    for &name in request.functions {
        let Some(&(address, size)) = symbols.get(name) else {
            missing_functions.push(name.to_owned());
            if let Some(sites) = inlined.as_ref().and_then(|m| m.get(name)) {
                inlined_only.insert(name.to_owned(), sites.callers.iter().cloned().collect());
            }
            continue;
        };
        let mut f = match function(data, &file, arch, name, address, size) {
            Ok(f) => f,
            Err(e) => {
                unprobeable.insert(name.to_owned(), e.to_string());
                continue;
            }
        };
        f.source = source;
        f.inlined_into = inlined
            .as_ref()
            .map(|m| m.get(name).map(|s| s.callers.iter().cloned().collect()).unwrap_or_default());
        functions.insert(name.to_owned(), f);
    }

    let mut warnings = Vec::new();
    let mut calls = BTreeMap::new();
    for &name in request.callers {
        let Some(callee) = functions.get(name) else { continue };
        match callers::calls_to(data, &file, arch, pcln.as_ref().ok(), name, callee.address) {
            Ok(sites) => {
                calls.insert(name.to_owned(), sites);
            }
            Err(e) => warnings.push(format!("the calls of {name} cannot be listed: {e}")),
        }
    }

    let has_dwarf = dwarf::has_dwarf(&file);
    let mut fields: BTreeMap<Field, FieldOffset> = if has_dwarf && !request.fields.is_empty() {
        dwarf::field_offsets(&file, request.fields)?
            .into_iter()
            .map(|(k, offset)| (k, FieldOffset { offset, source: OffsetSource::Dwarf }))
            .collect()
    } else {
        BTreeMap::new()
    };
    for module in Module::ALL {
        let wanted: Vec<Field> = request
            .fields
            .iter()
            .filter(|f| f.module() == module && !fields.contains_key(f))
            .copied()
            .collect();
        let version = match module {
            Module::Runtime => Some(go_version.to_string()),
            Module::OtelSdk => build
                .deps
                .iter()
                .find(|m| m.path == gort_common::field::OTEL_SDK_MODULE)
                .map(|m| m.version.clone()),
        };
        let (false, Some(version)) = (wanted.is_empty(), version) else { continue };
        match offsets::embedded().lookup(module, &version, arch) {
            Ok(m) => {
                warnings.extend(m.warning);
                for f in wanted {
                    if let Some(&offset) = m.layout.offsets.get(&f.to_string()) {
                        fields.insert(f, FieldOffset { offset, source: OffsetSource::Table });
                    }
                }
            }
            Err(e) => warnings.push(format!("struct offsets: {e}")),
        }
    }
    let missing_fields = request.fields.iter().filter(|f| !fields.contains_key(f)).copied().collect();

    Ok(Analysis {
        arch,
        go_version,
        build,
        has_symbols,
        has_dwarf,
        functions,
        calls,
        missing_functions,
        inlined_only,
        unprobeable,
        fields,
        missing_fields,
        warnings,
    })
}

/// Address and size of the wanted functions from the ELF symbol table.
fn symbol_table<'data, R: ReadRef<'data>>(
    file: &object::File<'data, R>,
    wanted: &[&str],
) -> BTreeMap<String, (u64, u64)> {
    let mut found = BTreeMap::new();
    for symbol in file.symbols() {
        if symbol.kind() != object::SymbolKind::Text {
            continue;
        }
        let Ok(name) = symbol.name() else { continue };
        if wanted.contains(&name) {
            found.insert(name.to_owned(), (symbol.address(), symbol.size()));
        }
    }
    found
}

/// The file offset and bytes of `size` bytes of code at link-time
/// `address`, or why they cannot be read. A ranged read:
/// `Section::data_range` would load the whole text section.
pub(crate) fn code_at<'data, R: ReadRef<'data>>(
    data: R,
    file: &object::File<'data, R>,
    address: u64,
    size: u64,
) -> Result<(u64, &'data [u8]), String> {
    let section = file
        .sections()
        .find(|s| {
            s.kind() == SectionKind::Text && address.checked_sub(s.address()).is_some_and(|d| d < s.size())
        })
        .ok_or_else(|| format!("address {address:#x} is in no text section"))?;
    let (section_offset, _) = section.file_range().ok_or("its text section has no file data")?;
    let file_offset = address - section.address() + section_offset;
    if address - section.address() + size > section.size() {
        return Err(format!("{size} bytes at {address:#x} run past its section"));
    }
    let code = data.read_bytes_at(file_offset, size).map_err(|()| "cannot read its bytes".to_owned())?;
    Ok((file_offset, code))
}

fn function<'data, R: ReadRef<'data>>(
    data: R,
    file: &object::File<'data, R>,
    arch: Arch,
    name: &str,
    address: u64,
    size: u64,
) -> Result<Function, AnalysisError> {
    let code_err = |reason: String| AnalysisError::Code { function: name.to_owned(), reason };
    let (file_offset, code) = code_at(data, file, address, size).map_err(code_err)?;
    let code = sites::analyse(arch, address, code).map_err(|e| code_err(e.to_string()))?;
    Ok(Function {
        name: name.to_owned(),
        source: SymbolSource::Symtab,
        inlined_into: None,
        address,
        size,
        file_offset,
        code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_versions_parse_and_order() {
        let v = |s| GoVersion::parse(s).unwrap();
        assert_eq!(v("go1.22.12"), GoVersion { major: 1, minor: 22, patch: 12 });
        assert_eq!(v("go1.21rc2"), GoVersion { major: 1, minor: 21, patch: 0 });
        assert_eq!(v("go1.26.8 X:nocoverageredesign"), GoVersion { major: 1, minor: 26, patch: 8 });
        assert!(v("go1.20.14") < MIN_GO);
        assert!(v("go1.21.0") >= MIN_GO);
        assert_eq!(GoVersion::parse("devel +abc"), None);
    }

    #[test]
    fn non_elf_input_is_a_clear_error() {
        let request = Request { functions: &[], fields: &[], callers: &[] };
        let err = analyse(&b"#!/bin/sh\necho hi\n"[..], &request).unwrap_err();
        assert!(matches!(err, AnalysisError::NotElf(_)), "{err}");
        let err = analyse(&[][..], &request).unwrap_err();
        assert!(matches!(err, AnalysisError::NotElf(_)), "{err}");
    }
}
