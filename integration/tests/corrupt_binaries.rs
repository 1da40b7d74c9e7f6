//! Truncated and corrupted copies of real Go binaries: the analysis must
//! answer every one with a result or a clear error, never a panic or a hang.
//! Damage is aimed at the parts gort parses (ELF headers, .go.buildinfo,
//! .gopclntab, the module data, DWARF, code) and scattered at random with a
//! fixed seed, so a failure reproduces.

use std::{
    path::Path,
    sync::mpsc,
    time::{Duration, Instant},
};

use gort_goexe::{
    self as analysis, Request,
    functions::{INSPECTED_CALLERS, INSPECTED_FIELDS, INSPECTED_FUNCTIONS},
};
use gort_integration::go_program;
use object::{Object, ObjectSection};

/// xorshift64*: deterministic damage without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Runs the full analysis on `bytes` in a thread; panics in it or a run
/// longer than the limit fail the test with the case's name. Returns the
/// error's text ("" for a result).
fn survives(case: &str, bytes: Vec<u8>) -> String {
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || {
        let request =
            Request { functions: INSPECTED_FUNCTIONS, fields: INSPECTED_FIELDS, callers: INSPECTED_CALLERS };
        let outcome = std::panic::catch_unwind(|| match analysis::analyse(&bytes[..], &request) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        });
        let _ = tx.send(outcome);
    });
    let err = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Ok(err)) => err,
        Ok(Err(_)) => panic!("{case}: the analysis panicked"),
        Err(_) => panic!("{case}: the analysis hung (> 20 s)"),
    };
    assert!(err.is_empty() || err.len() > 10, "{case}: unclear error {err:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    err
}

fn section_ranges(bytes: &[u8]) -> Vec<(String, usize, usize)> {
    let file = object::File::parse(bytes).unwrap();
    let mut out = Vec::new();
    for s in file.sections() {
        let name = s.name().unwrap_or_default();
        let wanted = [
            ".gopclntab",
            ".go.buildinfo",
            ".go.module",
            ".noptrdata",
            ".debug_info",
            ".debug_abbrev",
            ".text",
            ".rela",
            ".symtab",
            ".strtab",
        ];
        if let (true, Some((off, len))) = (wanted.contains(&name), s.file_range()) {
            out.push((name.to_owned(), off as usize, len as usize));
        }
    }
    out
}

fn damage(label: &str, original: &Path, seed: u64) {
    let bytes = std::fs::read(original).unwrap();
    let len = bytes.len();
    for cut in [0, 4, 16, 63, 64, 512, 4096, 65_536, len / 4, len / 2, 3 * len / 4, len - 1] {
        let err = survives(&format!("{label} truncated to {cut}"), bytes[..cut].to_vec());
        // With its ELF header still there, a copy cut short says so, with
        // its size and what its headers describe: more than is left, and
        // no more than the original (which may end in padding no header
        // describes); "at least" while some headers are cut off. A cut
        // into that padding alone takes nothing the analysis reads.
        if cut >= 64 && !err.is_empty() {
            let said =
                format!("the executable is truncated: the file has {cut} bytes, its ELF headers describe ");
            let rest =
                err.strip_prefix(&said).unwrap_or_else(|| panic!("{label} truncated to {cut}: {err:?}"));
            let n: usize = rest.trim_start_matches("at least ").parse().unwrap();
            assert!(n > cut && n <= len, "{label} truncated to {cut}: {err:?} (original {len} bytes)");
        }
    }
    let mut rng = Rng(seed);
    // The ELF header and the section header table, then each parsed section.
    let shoff = u64::from_le_bytes(bytes[0x28..0x30].try_into().unwrap()) as usize;
    let mut targets =
        vec![("elf header".to_owned(), 0, 64), ("section headers".to_owned(), shoff, len - shoff)];
    targets.extend(section_ranges(&bytes));
    for (name, off, size) in targets {
        for i in 0..6 {
            let mut copy = bytes.clone();
            // Early bytes of a section hold its header: hit them more often.
            let at = off + if i < 3 { rng.below(64.min(size)) } else { rng.below(size) };
            for b in copy.iter_mut().skip(at).take(1 + rng.below(32)) {
                *b = rng.next() as u8;
            }
            survives(&format!("{label}: {name} damaged at {at:#x}"), copy);
        }
    }
    for i in 0..40 {
        let mut copy = bytes.clone();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(len);
            copy[at] = rng.next() as u8;
        }
        survives(&format!("{label}: random damage #{i} (seed {seed})"), copy);
    }
}

#[test]
fn damaged_unstripped_binary() {
    damage("unstripped", &go_program("pingpong", "default", &[], &[]), 0x9e37_79b9_7f4a_7c15);
}

#[test]
fn damaged_stripped_pie_binary() {
    let binary = go_program("pingpong", "pie-stripped", &["-buildmode=pie", "-ldflags=-s -w"], &[]);
    damage("stripped pie", &binary, 0xd1b5_4a32_d192_ed03);
}

#[test]
fn damaged_stripped_go1_21_binary() {
    let binary =
        go_program("pingpong", "go1.21.13-stripped", &["-ldflags=-s -w"], &[("GOTOOLCHAIN", "go1.21.13")]);
    damage("stripped go1.21", &binary, 0x94d0_49bb_1331_11eb);
}
