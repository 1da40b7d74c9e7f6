//! Parser for Go's `.gopclntab`: the function table the runtime itself uses
//! for stack traces, which survives `-ldflags="-s -w"`. It gives every Go
//! function's name, entry and extent, and each function's inline tree, so
//! gort can tell when a function it wants to probe was inlined somewhere.
//!
//! Layout (Go 1.20+, magic 0xfffffff1; runtime/symtab.go): a `pcHeader`, then
//! name, file, pc-value tables and the `functab` of (entryoff, funcoff) pairs.
//! Entry offsets are relative to `moduledata.text`, which Go 1.26 no longer
//! copies into the header, so the text base is read from the module data (see
//! [`ModuleData`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use object::{Object, ObjectSection, ReadRef, RelocationTarget};
use thiserror::Error;

mod lookup;

pub use lookup::{Frame, Symbolizer};

const MAGIC_GO120: u32 = 0xffff_fff1;
const MAGIC_GO118: u32 = 0xffff_fff0;
/// `_func` fixed part: entryOff..nfuncdata.
const FUNC_FIXED_LEN: usize = 44;
const FUNC_PCFILE: usize = 20;
const FUNC_PCLN: usize = 24;
const FUNC_CU_OFFSET: usize = 32;
const FUNC_NPCDATA: usize = 28;
const FUNC_FUNCID: usize = 40;
const FUNC_NFUNCDATA: usize = 43;
const PCDATA_INL_TREE_INDEX: usize = 2;
const FUNCDATA_INL_TREE: usize = 3;
/// `runtime.inlinedCall`: funcID u8, pad [3]u8, nameOff i32, parentPc i32, startLine i32.
const INLINED_CALL_LEN: u64 = 16;
/// Bound on pc-value steps decoded for inline trees in one binary: real
/// binaries need a few million at most; a crafted one must not loop for long.
const INLINE_STEP_BUDGET: usize = 50_000_000;

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum PclntabError {
    #[error("no .gopclntab section")]
    Missing,
    #[error(".gopclntab is truncated or corrupt ({0})")]
    Corrupt(&'static str),
    #[error(".gopclntab has magic {0:#x}; gort reads the Go 1.18+ formats")]
    UnknownMagic(u32),
    #[error("cannot find the runtime module data (needed for the text base address)")]
    NoModuleData,
}

/// A function from the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PclnFunc {
    pub name: String,
    pub entry: u64,
    /// Distance to the next function's entry (includes alignment padding).
    pub size: u64,
}

/// Where a wanted function was inlined.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InlineSites {
    /// Outer functions (the ones to probe instead), sorted, deduplicated.
    pub callers: BTreeSet<String>,
}

/// Addresses read out of `runtime.firstmoduledata`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleData {
    pub address: u64,
    pub text: u64,
    pub gofunc: u64,
}

/// Word offsets in `runtime.moduledata`, counted from its `ftab` slice, of
/// fields after it. `ftab, findfunctab, minpc, maxpc, text, etext` has been
/// stable since Go 1.16; `gofunc` follows `rodata` (see `gofunc_word`). The
/// analysis tests check them against DWARF.
const MD_MINPC_FROM_FTAB: u64 = 4;
const MD_TEXT_FROM_FTAB: u64 = 6;

/// Word offset of `moduledata.gofunc` from `ftab`, where the inline trees
/// are: 18 words after `text` since Go 1.20 (covctrs, ecovctrs), 21 since Go
/// 1.27 (typedesclen, itaboffset, itabsize came before it).
pub fn gofunc_word(version: super::GoVersion) -> u64 {
    if (version.major, version.minor) >= (1, 27) { MD_TEXT_FROM_FTAB + 21 } else { MD_TEXT_FROM_FTAB + 18 }
}

/// A parsed pclntab, borrowing the section bytes.
pub struct Pclntab<'data> {
    nfunc: usize,
    /// The pc quantum: pc deltas in pc-value tables are in these units.
    min_lc: u64,
    funcnametab: &'data [u8],
    /// Per compilation unit, file numbers to `filetab` offsets (u32 each).
    cutab: &'data [u8],
    filetab: &'data [u8],
    pctab: &'data [u8],
    /// functab + _func records.
    pclntab: &'data [u8],
    pub address: u64,
    pub module: ModuleData,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off.checked_add(4)?)?.try_into().ok()?))
}

fn word_at(b: &[u8], off: usize, ptr_size: u64) -> Option<u64> {
    if ptr_size == 8 {
        Some(u64::from_le_bytes(b.get(off..off.checked_add(8)?)?.try_into().ok()?))
    } else {
        u32_at(b, off).map(u64::from)
    }
}

fn sub<'a>(b: &'a [u8], start: u64, what: &'static str) -> Result<&'a [u8], PclntabError> {
    usize::try_from(start).ok().and_then(|s| b.get(s..)).ok_or(PclntabError::Corrupt(what))
}

/// Finds the pclntab section of an ELF Go binary.
pub fn section<'data, 'file, R: ReadRef<'data>>(
    file: &'file object::File<'data, R>,
) -> Option<object::Section<'data, 'file, R>> {
    file.section_by_name(".gopclntab").or_else(|| file.section_by_name(".data.rel.ro.gopclntab"))
}

impl<'data> Pclntab<'data> {
    /// `gofunc_word`: where this release keeps `moduledata.gofunc`.
    pub fn parse<R: ReadRef<'data>>(
        data: R,
        file: &object::File<'data, R>,
        gofunc_word: u64,
    ) -> Result<Self, PclntabError> {
        let section = section(file).ok_or(PclntabError::Missing)?;
        let raw = data;
        let data = section.data().map_err(|_| PclntabError::Corrupt("section data"))?;
        let magic = u32_at(data, 0).ok_or(PclntabError::Corrupt("header"))?;
        if magic != MAGIC_GO120 && magic != MAGIC_GO118 {
            return Err(PclntabError::UnknownMagic(magic));
        }
        let min_lc = u64::from(*data.get(6).ok_or(PclntabError::Corrupt("header"))?);
        let ptr_size = u64::from(*data.get(7).ok_or(PclntabError::Corrupt("header"))?);
        if ptr_size != 4 && ptr_size != 8 || min_lc == 0 {
            return Err(PclntabError::Corrupt("pointer size"));
        }
        let ps = ptr_size as usize;
        let word = |i: usize| word_at(data, 8 + i * ps, ptr_size).ok_or(PclntabError::Corrupt("header"));
        let nfunc = usize::try_from(word(0)?).map_err(|_| PclntabError::Corrupt("nfunc"))?;
        let funcname_off = word(3)?;
        let cutab_off = word(4)?;
        let filetab_off = word(5)?;
        let pctab_off = word(6)?;
        let pcln_off = word(7)?;
        let pclntab = sub(data, pcln_off, "functab")?;
        if nfunc.checked_add(1).and_then(|n| n.checked_mul(8)).is_none_or(|n| n > pclntab.len()) {
            return Err(PclntabError::Corrupt("nfunc larger than the table"));
        }
        let address = section.address();
        let module = find_moduledata(
            raw,
            file,
            address.wrapping_add(pcln_off),
            nfunc as u64 + 1,
            ptr_size,
            gofunc_word,
        )?;
        Ok(Self {
            nfunc,
            min_lc,
            funcnametab: sub(data, funcname_off, "funcnametab")?,
            cutab: sub(data, cutab_off, "cutab")?,
            filetab: sub(data, filetab_off, "filetab")?,
            pctab: sub(data, pctab_off, "pctab")?,
            pclntab,
            address,
            module,
        })
    }

    pub fn len(&self) -> usize {
        self.nfunc
    }

    pub fn is_empty(&self) -> bool {
        self.nfunc == 0
    }

    fn functab(&self, i: usize) -> Option<(u32, u32)> {
        Some((u32_at(self.pclntab, i * 8)?, u32_at(self.pclntab, i * 8 + 4)?))
    }

    fn func_record(&self, i: usize) -> Option<&'data [u8]> {
        let (_, funcoff) = self.functab(i)?;
        self.pclntab.get(funcoff as usize..)
    }

    fn name_at(&self, name_off: u32) -> Option<&'data [u8]> {
        let s = self.funcnametab.get(name_off as usize..)?;
        Some(&s[..s.iter().position(|&b| b == 0)?])
    }

    /// Finds the named functions (one pass over the table).
    ///
    /// A name can appear twice: a function and its ABI0 wrapper (the symbol
    /// table calls the latter `NAME.abi0`). The wrapper's funcID is
    /// `FuncIDWrapper`, the last of the funcID enum (its number moves between
    /// releases), so of two entries the one with the lower funcID is the body.
    pub fn functions(&self, wanted: &[&str]) -> Result<BTreeMap<String, PclnFunc>, PclntabError> {
        let mut found: BTreeMap<String, (u8, PclnFunc)> = BTreeMap::new();
        for i in 0..self.nfunc {
            let rec = self.func_record(i).ok_or(PclntabError::Corrupt("funcoff"))?;
            let name_off = u32_at(rec, 4).ok_or(PclntabError::Corrupt("_func"))?;
            let Some(name) = self.name_at(name_off) else { continue };
            let Some(w) = wanted.iter().find(|w| w.as_bytes() == name) else { continue };
            let func_id = *rec.get(FUNC_FUNCID).ok_or(PclntabError::Corrupt("_func"))?;
            if found.get(*w).is_some_and(|(id, _)| *id <= func_id) {
                continue;
            }
            let (entry_off, _) = self.functab(i).ok_or(PclntabError::Corrupt("functab"))?;
            let (next_off, _) = self.functab(i + 1).ok_or(PclntabError::Corrupt("functab"))?;
            let func = PclnFunc {
                name: (*w).to_owned(),
                entry: self.module.text.wrapping_add(u64::from(entry_off)),
                size: u64::from(next_off.saturating_sub(entry_off)),
            };
            found.insert((*w).to_owned(), (func_id, func));
        }
        Ok(found.into_iter().map(|(k, (_, f))| (k, f)).collect())
    }

    /// Entries (link-time addresses) of every function whose name `keep`
    /// accepts, in table order.
    pub fn entries_where(&self, keep: impl Fn(&[u8]) -> bool) -> Result<Vec<u64>, PclntabError> {
        Ok(self.functions_where(keep)?.into_iter().map(|f| f.entry).collect())
    }

    /// Every function whose name `keep` accepts, in table order (an ABI
    /// wrapper too, under its body's name).
    pub fn functions_where(&self, keep: impl Fn(&[u8]) -> bool) -> Result<Vec<PclnFunc>, PclntabError> {
        let mut out = Vec::new();
        for i in 0..self.nfunc {
            let rec = self.func_record(i).ok_or(PclntabError::Corrupt("funcoff"))?;
            let name_off = u32_at(rec, 4).ok_or(PclntabError::Corrupt("_func"))?;
            let Some(name) = self.name_at(name_off) else { continue };
            if keep(name) {
                let (entry_off, _) = self.functab(i).ok_or(PclntabError::Corrupt("functab"))?;
                let (next_off, _) = self.functab(i + 1).ok_or(PclntabError::Corrupt("functab"))?;
                out.push(PclnFunc {
                    name: String::from_utf8_lossy(name).into_owned(),
                    entry: self.module.text.wrapping_add(u64::from(entry_off)),
                    size: u64::from(next_off.saturating_sub(entry_off)),
                });
            }
        }
        Ok(out)
    }

    /// For each wanted function, the functions it was inlined into.
    pub fn inlined<R: ReadRef<'data>>(
        &self,
        data: R,
        file: &object::File<'data, R>,
        wanted: &[&str],
    ) -> HashMap<String, InlineSites> {
        let mut result: HashMap<String, InlineSites> = HashMap::new();
        // Names are stored once in funcnametab, NUL-terminated, so an inlined
        // call's nameOff is the offset of that string: find each wanted name's
        // offset once, then compare offsets rather than strings. This also
        // finds functions that exist only inlined (no _func of their own).
        let mut wanted_offs: HashMap<u32, &str> = HashMap::new();
        for w in wanted {
            let mut needle = Vec::with_capacity(w.len() + 2);
            needle.push(0);
            needle.extend_from_slice(w.as_bytes());
            needle.push(0);
            if self.funcnametab.starts_with(&needle[1..]) {
                wanted_offs.insert(0, w);
            }
            for pos in memchr::memmem::find_iter(self.funcnametab, &needle) {
                if let Ok(off) = u32::try_from(pos + 1) {
                    wanted_offs.insert(off, w);
                }
            }
        }
        if wanted_offs.is_empty() {
            return result;
        }
        let reader = DataReader::new(data, file);
        let mut budget = INLINE_STEP_BUDGET;
        for i in 0..self.nfunc {
            let Some(rec) = self.func_record(i) else { continue };
            let (Some(npcdata), Some(&nfuncdata)) = (u32_at(rec, FUNC_NPCDATA), rec.get(FUNC_NFUNCDATA))
            else {
                continue;
            };
            let npcdata = npcdata as usize;
            if npcdata <= PCDATA_INL_TREE_INDEX || usize::from(nfuncdata) <= FUNCDATA_INL_TREE {
                continue;
            }
            let pcdata_off = |k: usize| u32_at(rec, FUNC_FIXED_LEN + 4 * k);
            let Some(inl_index_table) = pcdata_off(PCDATA_INL_TREE_INDEX).filter(|o| *o != 0) else {
                continue;
            };
            let Some(tree_off) =
                u32_at(rec, FUNC_FIXED_LEN + 4 * npcdata + 4 * FUNCDATA_INL_TREE).filter(|o| *o != u32::MAX)
            else {
                continue;
            };
            let indices = self.pcvalue_values(inl_index_table, &mut budget);
            if budget == 0 {
                break;
            }
            for idx in indices {
                let Ok(idx) = u64::try_from(idx) else { continue };
                let at = self
                    .module
                    .gofunc
                    .wrapping_add(u64::from(tree_off))
                    .wrapping_add(idx.wrapping_mul(INLINED_CALL_LEN))
                    .wrapping_add(4);
                let Some(name_off) = reader.u32(at) else { continue };
                if let Some(w) = wanted_offs.get(&name_off) {
                    let outer = self.name_at(u32_at(rec, 4).unwrap_or(0)).unwrap_or_default();
                    result
                        .entry((*w).to_owned())
                        .or_default()
                        .callers
                        .insert(String::from_utf8_lossy(outer).into_owned());
                }
            }
        }
        result
    }

    /// The distinct values of a pc-value table (zig-zag value deltas and pc
    /// deltas, both uvarints, ending at a zero value delta after the first).
    fn pcvalue_values(&self, off: u32, budget: &mut usize) -> BTreeSet<i64> {
        let mut values = BTreeSet::new();
        let Some(mut p) = self.pctab.get(off as usize..) else { return values };
        let mut value: i64 = -1;
        let mut first = true;
        while let Some(uv) = read_uvarint(&mut p) {
            if uv == 0 && !first || *budget == 0 {
                break;
            }
            *budget -= 1;
            let delta = if uv & 1 != 0 { !(uv >> 1) as i64 } else { (uv >> 1) as i64 };
            value = value.wrapping_add(delta);
            // The pc delta only matters to lookups by pc; skip it.
            if read_uvarint(&mut p).is_none() {
                break;
            }
            first = false;
            if value >= 0 {
                values.insert(value);
            }
        }
        values
    }
}

fn read_uvarint(p: &mut &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    let mut shift = 0;
    loop {
        let (&b, rest) = p.split_first()?;
        *p = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

/// Reads pointer-sized words at virtual addresses of the file's data
/// sections, taking a PIE's RELATIVE relocation addend where the file holds 0.
struct DataReader<'data, 'file, R: ReadRef<'data>> {
    data: R,
    file: &'file object::File<'data, R>,
    relative: Option<HashMap<u64, u64>>,
}

impl<'data, 'file, R: ReadRef<'data>> DataReader<'data, 'file, R> {
    fn new(data: R, file: &'file object::File<'data, R>) -> Self {
        Self { data, file, relative: None }
    }

    /// A ranged read at the file offset backing `address` (never the whole
    /// section, which for .rodata or .text would be megabytes).
    fn bytes_at(&self, address: u64, len: u64) -> Option<&'data [u8]> {
        let section = self.file.sections().find(|s| {
            address.checked_sub(s.address()).is_some_and(|d| d.saturating_add(len) <= s.size())
                && s.kind() != object::SectionKind::UninitializedData
        })?;
        let (offset, _) = section.file_range()?;
        self.data.read_bytes_at(offset + (address - section.address()), len).ok()
    }

    fn u32(&self, address: u64) -> Option<u32> {
        self.bytes_at(address, 4).and_then(|b| u32_at(b, 0))
    }

    fn relative_relocs(&mut self) -> &HashMap<u64, u64> {
        self.relative.get_or_insert_with(|| {
            let mut map = HashMap::new();
            if let Some(relocs) = self.file.dynamic_relocations() {
                for (offset, r) in relocs {
                    if matches!(r.target(), RelocationTarget::Absolute) {
                        map.insert(offset, r.addend() as u64);
                    }
                }
            }
            map
        })
    }

    fn word(&mut self, address: u64, ptr_size: u64) -> Option<u64> {
        let stored = self.bytes_at(address, ptr_size).and_then(|b| word_at(b, 0, ptr_size))?;
        if stored != 0 {
            return Some(stored);
        }
        Some(self.relative_relocs().get(&address).copied().unwrap_or(0))
    }
}

/// Locates `runtime.firstmoduledata` through its `ftab` slice: a pointer to
/// the functab followed by len = cap = nfunc+1 (integers, never relocated),
/// then reads `text` and `gofunc`, checking `minpc == text + ftab[0].entryoff`.
fn find_moduledata<'data, R: ReadRef<'data>>(
    data: R,
    file: &object::File<'data, R>,
    ftab_address: u64,
    ftab_len: u64,
    ptr_size: u64,
    gofunc_word: u64,
) -> Result<ModuleData, PclntabError> {
    let mut reader = DataReader::new(data, file);
    let ps = ptr_size as usize;
    // Go 1.26 gives the module data a section of its own; before, it sits
    // in .noptrdata (.data.rel.ro in some PIE builds). Look there first.
    let rank = |name: &str| match name {
        ".go.module" => 0,
        ".noptrdata" => 1,
        ".data.rel.ro" => 2,
        _ => 3,
    };
    let mut sections: Vec<_> = file
        .sections()
        .filter(|s| {
            s.address() != 0
                && !matches!(s.kind(), object::SectionKind::Text | object::SectionKind::UninitializedData)
                && !s.name().unwrap_or_default().contains("gopclntab")
        })
        .collect();
    sections.sort_by_key(|s| rank(s.name().unwrap_or_default()));
    for section in sections {
        let Ok(bytes) = section.data() else { continue };
        let base = section.address();
        let mut off = ps;
        while off + 2 * ps <= bytes.len() {
            let len = word_at(bytes, off, ptr_size);
            if len == Some(ftab_len) && word_at(bytes, off + ps, ptr_size) == Some(ftab_len) {
                let slice_at = (base + off as u64).wrapping_sub(ptr_size);
                if reader.word(slice_at, ptr_size) == Some(ftab_address) {
                    let field = |k: u64| slice_at.wrapping_add(k * ptr_size);
                    let text = reader.word(field(MD_TEXT_FROM_FTAB), ptr_size);
                    let minpc = reader.word(field(MD_MINPC_FROM_FTAB), ptr_size);
                    let first_entry = reader.u32(ftab_address);
                    if let (Some(text), Some(minpc), Some(first)) = (text, minpc, first_entry)
                        && text != 0
                        && minpc == text.wrapping_add(u64::from(first))
                    {
                        let gofunc = reader.word(field(gofunc_word), ptr_size).unwrap_or(0);
                        let md_start = slice_at.wrapping_sub(16 * ptr_size);
                        return Ok(ModuleData { address: md_start, text, gofunc });
                    }
                }
            }
            off += ps;
        }
    }
    Err(PclntabError::NoModuleData)
}
