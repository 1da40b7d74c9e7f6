//! Telling a Go executable cut short from a corrupt one: what its own ELF
//! headers say the file should hold.

use object::ReadRef;

/// (file size, bytes its ELF headers describe, whether some headers were
/// cut off so the extent is a lower bound) when a 64-bit little-endian ELF
/// file is shorter than its own headers say: a copy cut short, which
/// deserves that sentence rather than whatever part is missing first. The
/// extent is the furthest of the program and section header tables, every
/// segment's file bytes and every section's (but NOBITS) that the file
/// still holds headers for.
pub fn truncation<'data, R: ReadRef<'data>>(data: R) -> Option<(u64, u64, bool)> {
    let size = data.len().ok()?;
    let header = data.read_bytes_at(0, 64).ok()?;
    if header[..4] != *b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return None;
    }
    let u16_at = |b: &[u8], o: usize| u64::from(u16::from_le_bytes([b[o], b[o + 1]]));
    let u32_at = |b: &[u8], o: usize| u64::from(u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4])));
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    let (phoff, shoff) = (u64_at(header, 32), u64_at(header, 40));
    let (phentsize, phnum) = (u16_at(header, 54), u16_at(header, 56));
    let (shentsize, shnum) = (u16_at(header, 58), u16_at(header, 60));
    let mut needed = 64u64;
    let mut partial = false;
    let tables = [(phoff, phentsize, phnum, 56u64), (shoff, shentsize, shnum, 64u64)];
    for (i, &(off, entsize, num, min_entsize)) in tables.iter().enumerate() {
        if num == 0 || entsize < min_entsize {
            continue;
        }
        let end = off.saturating_add(entsize.saturating_mul(num));
        needed = needed.max(end);
        for n in 0..num {
            let Ok(entry) = data.read_bytes_at(off.saturating_add(n * entsize), min_entsize) else {
                partial = true;
                break;
            };
            let (start, len) = if i == 0 {
                // A segment: p_offset, p_filesz.
                (u64_at(entry, 8), u64_at(entry, 32))
            } else {
                // A section: sh_type (8 = NOBITS holds no file bytes), sh_offset, sh_size.
                if u32_at(entry, 4) == 8 {
                    continue;
                }
                (u64_at(entry, 24), u64_at(entry, 32))
            };
            needed = needed.max(start.saturating_add(len));
        }
    }
    (size < needed).then_some((size, needed, partial))
}
