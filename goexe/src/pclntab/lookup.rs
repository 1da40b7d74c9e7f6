//! A program counter looked up in the pclntab: the function, file and line
//! it stands at, inlined calls expanded innermost first, the way the
//! runtime's own traceback reads the same tables (`pcvalue` in
//! runtime/symtab.go, the inline unwinder in runtime/symtabinl.go). It is
//! what turns a goroutine's return addresses, read from outside the
//! process, into the frames of a Go stack dump, stripped binaries included.

use object::ReadRef;

use super::{
    DataReader, FUNC_CU_OFFSET, FUNC_FIXED_LEN, FUNC_FUNCID, FUNC_NFUNCDATA, FUNC_NPCDATA, FUNC_PCFILE,
    FUNC_PCLN, FUNCDATA_INL_TREE, INLINED_CALL_LEN, PCDATA_INL_TREE_INDEX, Pclntab, read_uvarint, u32_at,
};

/// Bound on inline levels expanded at one pc: real code nests a handful.
const MAX_INLINE_DEPTH: usize = 32;
/// Bound on pc-value steps for one lookup: a function's tables have at most
/// a few thousand; a corrupt one must not loop long.
const MAX_STEPS: usize = 1 << 20;

/// One frame of a stack: a function at a file and line. Several frames
/// share one physical frame where calls were inlined.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Frame {
    pub function: String,
    pub file: String,
    pub line: u32,
    /// Link-time entry of the physical function holding the pc (the same
    /// for every frame inlined into it).
    pub entry: u64,
    /// Whether this call was inlined into the frame below it.
    pub inlined: bool,
    /// Code the compiler generated (method-value and `go` statement
    /// wrappers, ...): Go's dump leaves it out.
    pub wrapper: bool,
}

/// Looks up pcs of one binary; holds what inline trees need to be read.
pub struct Symbolizer<'p, 'data, 'file, R: ReadRef<'data>> {
    pcln: &'p Pclntab<'data>,
    reader: DataReader<'data, 'file, R>,
    /// `FuncIDWrapper`: the last of the funcID enum, whose number moves
    /// between releases, so the highest any function of the binary has
    /// (every binary has generated code).
    wrapper_id: u8,
}

impl<'p, 'data, 'file, R: ReadRef<'data>> Symbolizer<'p, 'data, 'file, R> {
    pub fn new(pcln: &'p Pclntab<'data>, data: R, file: &'file object::File<'data, R>) -> Self {
        let wrapper_id = (0..pcln.nfunc)
            .filter_map(|i| pcln.func_record(i)?.get(FUNC_FUNCID).copied())
            .max()
            .unwrap_or(u8::MAX);
        Self { pcln, reader: DataReader::new(data, file), wrapper_id }
    }

    /// The frames at link-time `pc`, innermost first; empty when no Go
    /// function holds it. A return address points past its call, which may
    /// be the next line: pass `pc - 1` for every frame but the innermost,
    /// as the runtime does.
    pub fn frames(&self, pc: u64) -> Vec<Frame> {
        let p = self.pcln;
        let Some(i) = p.func_index(pc) else { return Vec::new() };
        let (Some(rec), Some((entry_off, _))) = (p.func_record(i), p.functab(i)) else { return Vec::new() };
        let entry = p.module.text.wrapping_add(u64::from(entry_off));
        let tree = inline_tree(rec);
        let mut frames = Vec::new();
        let mut at = pc;
        for _ in 0..MAX_INLINE_DEPTH {
            let (file, line) = p.file_line(rec, entry, at);
            let call = tree.and_then(|(index_table, tree_off)| {
                let index = p.pcvalue(index_table, entry, at)?;
                let index = u64::try_from(index).ok()?;
                let base =
                    p.module.gofunc.wrapping_add(u64::from(tree_off)).wrapping_add(index * INLINED_CALL_LEN);
                let func_id = self.reader.bytes_at(base, 1)?[0];
                let name_off = self.reader.u32(base.wrapping_add(4))?;
                let parent_pc = self.reader.u32(base.wrapping_add(8))?;
                Some((func_id, name_off, parent_pc))
            });
            match call {
                Some((func_id, name_off, parent_pc)) => {
                    let function = p.name_at(name_off).map(lossy).unwrap_or_default();
                    let wrapper = func_id == self.wrapper_id;
                    frames.push(Frame { function, file, line, entry, inlined: true, wrapper });
                    at = entry.wrapping_add(u64::from(parent_pc));
                }
                None => {
                    let function = u32_at(rec, 4).and_then(|o| p.name_at(o)).map(lossy).unwrap_or_default();
                    let wrapper = rec.get(FUNC_FUNCID) == Some(&self.wrapper_id);
                    frames.push(Frame { function, file, line, entry, inlined: false, wrapper });
                    break;
                }
            }
        }
        frames
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The inline-tree index table and the tree's offset from `gofunc`, for a
/// function that has inlined calls.
fn inline_tree(rec: &[u8]) -> Option<(u32, u32)> {
    let npcdata = u32_at(rec, FUNC_NPCDATA)? as usize;
    let nfuncdata = usize::from(*rec.get(FUNC_NFUNCDATA)?);
    if npcdata <= PCDATA_INL_TREE_INDEX || nfuncdata <= FUNCDATA_INL_TREE {
        return None;
    }
    let index_table = u32_at(rec, FUNC_FIXED_LEN + 4 * PCDATA_INL_TREE_INDEX).filter(|o| *o != 0)?;
    let tree =
        u32_at(rec, FUNC_FIXED_LEN + 4 * npcdata + 4 * FUNCDATA_INL_TREE).filter(|o| *o != u32::MAX)?;
    Some((index_table, tree))
}

impl Pclntab<'_> {
    /// The function whose extent holds link-time `pc` (binary search over
    /// the functab, whose last entry is the end of text).
    fn func_index(&self, pc: u64) -> Option<usize> {
        let off = u32::try_from(pc.checked_sub(self.module.text)?).ok()?;
        let (first, _) = self.functab(0)?;
        let (end, _) = self.functab(self.nfunc)?;
        if off < first || off >= end {
            return None;
        }
        let (mut lo, mut hi) = (0, self.nfunc);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.functab(mid)?.0 <= off { lo = mid } else { hi = mid }
        }
        Some(lo)
    }

    /// The value of the pc-value table at `off` for `target` in the
    /// function entered at `entry`; None where the table has none.
    fn pcvalue(&self, off: u32, entry: u64, target: u64) -> Option<i32> {
        if off == 0 {
            return None;
        }
        let mut p = self.pctab.get(off as usize..)?;
        let (mut pc, mut value, mut first) = (entry, -1i32, true);
        for _ in 0..MAX_STEPS {
            let uv = read_uvarint(&mut p)?;
            if uv == 0 && !first {
                return None;
            }
            let delta = if uv & 1 != 0 { !(uv >> 1) as i32 } else { (uv >> 1) as i32 };
            value = value.wrapping_add(delta);
            pc = pc.wrapping_add(read_uvarint(&mut p)?.wrapping_mul(self.min_lc));
            first = false;
            if target < pc {
                return Some(value);
            }
        }
        None
    }

    /// File and line at `pc` (the innermost inlined call's, as the tables
    /// record them); "?" and 0 where the tables say nothing.
    fn file_line(&self, rec: &[u8], entry: u64, pc: u64) -> (String, u32) {
        let line = u32_at(rec, FUNC_PCLN).and_then(|t| self.pcvalue(t, entry, pc));
        let file = u32_at(rec, FUNC_PCFILE).and_then(|t| self.pcvalue(t, entry, pc)).and_then(|fileno| {
            let cu = u32_at(rec, FUNC_CU_OFFSET)?;
            let index = cu.checked_add(u32::try_from(fileno).ok()?)? as usize;
            let at = u32_at(self.cutab, index.checked_mul(4)?).filter(|o| *o != u32::MAX)?;
            let s = self.filetab.get(at as usize..)?;
            Some(lossy(&s[..s.iter().position(|&b| b == 0)?]))
        });
        (file.unwrap_or_else(|| "?".into()), line.and_then(|l| u32::try_from(l).ok()).unwrap_or(0))
    }
}
