//! Where `runtime.allgs` (the runtime's list of every goroutine) is linked,
//! for binaries without a symbol table. `runtime.allgadd` appends to it, so
//! its code addresses the slice header's three words, pointer, length and
//! capacity, RIP-relative: the one address that code reaches at +0, +8 and
//! +16 is the header. The pclntab, which stripping keeps, finds `allgadd`.

use std::collections::{BTreeMap, BTreeSet};

use iced_x86::{Decoder, DecoderOptions};
use object::{Object, ReadRef};

use crate::{AnalysisError, Arch, GoVersion, code_at, pclntab};

const ALLGADD: &str = "runtime.allgadd";

/// The symbol's name, as the symbol table of an unstripped binary has it.
pub const ALLGS: &str = "runtime.allgs";

/// The link-time address of `runtime.allgs`: the symbol table's, taken
/// from `symbols` (`data_symbols`), or where it has none (stripped) the one
/// the code of `runtime.allgadd` shows; None where neither does (or on
/// arm64, whose address pairs the code reading does not follow).
pub fn allgs_address<'data, R: ReadRef<'data>>(
    data: R,
    version: GoVersion,
    symbols: &BTreeMap<String, u64>,
) -> Result<Option<u64>, AnalysisError> {
    if let Some(address) = symbols.get(ALLGS) {
        return Ok(Some(*address));
    }
    let file = object::File::parse(data).map_err(|e| AnalysisError::NotElf(e.to_string()))?;
    if file.architecture() != object::Architecture::X86_64 {
        return Ok(None);
    }
    let pcln = pclntab::Pclntab::parse(data, &file, pclntab::gofunc_word(version))?;
    let Some(f) = pcln.functions(&[ALLGADD])?.remove(ALLGADD) else { return Ok(None) };
    let Ok((_, code)) = code_at(data, &file, f.entry, f.size) else { return Ok(None) };
    Ok(slice_header(Arch::Amd64, f.entry, code))
}

/// The lowest address that `code` addresses RIP-relative together with
/// the two words after it.
fn slice_header(arch: Arch, address: u64, code: &[u8]) -> Option<u64> {
    if arch != Arch::Amd64 {
        return None;
    }
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut referenced = BTreeSet::new();
    for insn in &mut decoder {
        if insn.is_ip_rel_memory_operand() {
            referenced.insert(insn.ip_rel_memory_address());
        }
    }
    referenced.iter().copied().find(|a| referenced.contains(&(a + 8)) && referenced.contains(&(a + 16)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_the_address_reached_at_three_words() {
        // Loads of an unrelated B, then of A+8, A and A+16 (what append
        // does with a slice header), each `mov rax, [rip+disp32]`.
        let a: u64 = 0x5000;
        let b: u64 = 0x7000;
        let mut code = Vec::new();
        let base = 0x1000u64;
        for target in [b, a + 8, a, a + 16] {
            // 48 8b 05 disp32: mov rax, [rip+disp32], 7 bytes
            let next = base + code.len() as u64 + 7;
            let disp = (target as i64 - next as i64) as i32;
            code.extend_from_slice(&[0x48, 0x8b, 0x05]);
            code.extend_from_slice(&disp.to_le_bytes());
        }
        assert_eq!(slice_header(Arch::Amd64, base, &code), Some(a));
        assert_eq!(slice_header(Arch::Amd64, base, &code[..14]), None);
        assert_eq!(slice_header(Arch::Arm64, base, &code), None);
        assert_eq!(slice_header(Arch::Amd64, base, &[0xff; 9]), None);
    }
}
