//! The write-ahead log's record format, and the scan that reads a segment
//! back: pure functions over bytes.
//!
//! A record is a 24-byte header and the export request as protobuf:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `gWAL` |
//! | 4 | 4 | body length (little endian) |
//! | 8 | 8 | sequence number |
//! | 16 | 1 | signal (0 traces, 1 metrics, 2 logs, 3 profiles) |
//! | 17 | 3 | zero |
//! | 20 | 4 | CRC-32 of bytes 4..20 and the body |
//!
//! The magic lets a scan find the next record after a damaged one; the CRC
//! tells a damaged record from a good one.

use std::ops::Range;

pub const MAGIC: [u8; 4] = *b"gWAL";
pub const HEADER: usize = 24;
/// No request gort takes comes near this (the receiver's limit is MiBs):
/// a larger length field is damage, not a record.
pub const MAX_BODY: usize = 1 << 30;

/// Bytes of a record with a body of `body` bytes.
pub fn size(body: usize) -> usize {
    HEADER + body
}

/// Appends one record to `out`; `body` is written by the caller's
/// `write_body`, which must append exactly `body_len` bytes.
pub fn encode(
    out: &mut Vec<u8>,
    seq: u64,
    signal: u8,
    body_len: usize,
    write_body: impl FnOnce(&mut Vec<u8>),
) {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&u32::try_from(body_len).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&[signal, 0, 0, 0]);
    out.extend_from_slice(&[0; 4]);
    write_body(out);
    debug_assert_eq!(out.len() - start, HEADER + body_len, "the body is the length the header says");
    let crc = checksum(&out[start..]);
    out[start + 20..start + 24].copy_from_slice(&crc.to_le_bytes());
}

/// CRC-32 of a whole record but its magic and its CRC field.
fn checksum(record: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&record[4..20]);
    h.update(&record[HEADER..]);
    h.finalize()
}

/// A good record found by `scan`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub seq: u64,
    pub signal: u8,
    /// Where its body is in the scanned bytes.
    pub body: Range<usize>,
}

/// What a scan of one segment found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub records: Vec<Found>,
    /// Damaged stretches skipped (a record whose CRC fails, or bytes that
    /// are no record): each counts once, however long.
    pub damaged: u64,
    /// The segment ends inside a record: a write that a crash cut short
    /// (its request was never acknowledged).
    pub truncated: bool,
}

enum At {
    Good(Found, usize),
    /// A record header whose body runs past the end.
    Cut,
    Bad,
}

fn at(bytes: &[u8], pos: usize) -> At {
    let rest = &bytes[pos..];
    if rest.len() < HEADER {
        return if MAGIC.starts_with(&rest[..rest.len().min(4)]) { At::Cut } else { At::Bad };
    }
    if rest[..4] != MAGIC || rest[17..20] != [0; 3] {
        return At::Bad;
    }
    let le32 = |r: Range<usize>| u32::from_le_bytes(rest[r].try_into().unwrap_or_default());
    let len = le32(4..8) as usize;
    if len > MAX_BODY {
        return At::Bad;
    }
    if rest.len() < HEADER + len {
        return At::Cut;
    }
    let record = &rest[..HEADER + len];
    if checksum(record) != le32(20..24) {
        return At::Bad;
    }
    let seq = u64::from_le_bytes(rest[8..16].try_into().unwrap_or_default());
    let body = pos + HEADER..pos + HEADER + len;
    At::Good(Found { seq, signal: rest[16], body }, pos + HEADER + len)
}

/// Reads every good record of a segment in order. A damaged stretch is
/// skipped to the next good record (found by its magic and CRC) and counted;
/// a record cut off at the end is reported as truncation, not damage.
pub fn scan(bytes: &[u8]) -> Scan {
    let mut out = Scan::default();
    let mut pos = 0;
    while pos < bytes.len() {
        match at(bytes, pos) {
            At::Good(found, next) => {
                out.records.push(found);
                pos = next;
            }
            cut_or_bad => {
                // A record cut off with nothing good after it is the tail a
                // crash cut short; anything else is damage (a damaged length
                // can also point past the end).
                match next_good(bytes, pos + 1) {
                    Some(p) => {
                        out.damaged += 1;
                        pos = p;
                    }
                    None => {
                        match cut_or_bad {
                            At::Cut => out.truncated = true,
                            _ => out.damaged += 1,
                        }
                        break;
                    }
                }
            }
        }
    }
    out
}

/// The next good record from `from`: a magic that a valid record follows
/// (a body may hold the magic by chance).
fn next_good(bytes: &[u8], mut from: usize) -> Option<usize> {
    while let Some(i) = find(&bytes[from..], &MAGIC) {
        let p = from + i;
        if let At::Good(..) = at(bytes, p) {
            return Some(p);
        }
        from = p + 1;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(bodies: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, b) in bodies.iter().enumerate() {
            encode(&mut out, i as u64 + 1, 0, b.len(), |o| o.extend_from_slice(b));
        }
        out
    }

    fn bodies<'a>(bytes: &'a [u8], scan: &Scan) -> Vec<&'a [u8]> {
        scan.records.iter().map(|r| &bytes[r.body.clone()]).collect()
    }

    #[test]
    fn reads_back_what_was_written() {
        let bytes = log(&[b"one", b"", b"three"]);
        let s = scan(&bytes);
        assert_eq!(bodies(&bytes, &s), [&b"one"[..], b"", b"three"]);
        assert_eq!(s.records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!((s.damaged, s.truncated), (0, false));
        assert_eq!(scan(&[]), Scan::default());
    }

    #[test]
    fn a_flipped_byte_costs_its_record_only() {
        let clean = log(&[b"first record", b"second record", b"third record"]);
        // Every byte of the middle record, header or body, damaged in turn.
        let second = size(12)..size(12) + size(13);
        for i in second {
            let mut bytes = clean.clone();
            bytes[i] ^= 0x40;
            let s = scan(&bytes);
            assert_eq!(bodies(&bytes, &s), [&b"first record"[..], b"third record"], "byte {i} damaged");
            assert_eq!((s.damaged, s.truncated), (1, false), "byte {i} damaged");
        }
    }

    #[test]
    fn a_cut_tail_is_truncation_not_damage() {
        let clean = log(&[b"kept", b"cut short by a crash"]);
        for cut in size(4) + 1..clean.len() {
            let s = scan(&clean[..cut]);
            assert_eq!(bodies(&clean, &s), [&b"kept"[..]], "cut at {cut}");
            assert_eq!((s.damaged, s.truncated), (0, true), "cut at {cut}");
        }
    }

    #[test]
    fn garbage_between_records_is_one_damaged_stretch() {
        let mut bytes = log(&[b"a"]);
        bytes.extend_from_slice(b"garbage gWAL with a false magic inside");
        bytes.extend(log(&[b"b"]));
        let s = scan(&bytes);
        assert_eq!(bodies(&bytes, &s), [&b"a"[..], b"b"]);
        assert_eq!(s.damaged, 1);
        // A body that holds the magic is still one record.
        let bytes = log(&[b"xxgWALxx", b"y"]);
        assert_eq!(scan(&bytes).records.len(), 2);
    }

    #[test]
    fn a_huge_length_is_damage() {
        let mut bytes = log(&[b"a", b"b"]);
        bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let s = scan(&bytes);
        assert_eq!(bodies(&bytes, &s), [&b"b"[..]]);
        assert_eq!(s.damaged, 1);
    }
}
