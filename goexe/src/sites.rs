//! Where to put a uprobe inside a Go function, found by decoding its code.
//!
//! A uprobe on an instruction the kernel cannot emulate is executed out of
//! line with a single-step trap, about ten times the cost of one it emulates
//! (measured here: ~6 µs against ~0.6 µs per hit). Go's prologue starts with
//! the stack-bound compare (not emulated) followed by a conditional branch to
//! `morestack` (emulated), so the site is the first emulatable instruction of
//! the straight-line prologue, never the entry itself. The registers still hold
//! the arguments there: the compare only sets flags.
//!
//! Exit probes go on every RET instruction: a uretprobe rewrites the return
//! address on the goroutine stack, which Go may move, and crashes the program.

use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, OpAccess, Register,
};
use thiserror::Error;

/// Instruction sets gort can analyse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Amd64,
    Arm64,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SiteError {
    #[error("function at {address:#x} is empty")]
    Empty { address: u64 },
    #[error("function at {address:#x} has no instruction after its first one before it branches")]
    NoSite { address: u64 },
}

/// How the kernel will run the probed instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteKind {
    /// The kernel emulates it (branch, call, nop): the cheap case.
    Emulated,
    /// Executed out of line with a single step: correct but ~10x dearer.
    SingleStepped,
}

/// The chosen probe site of one function.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProbeSite {
    /// Offset from the function's entry, in bytes (never 0).
    pub offset: u64,
    pub kind: SiteKind,
    /// The instruction at the site, for humans (`jbe 0x44cc4b`).
    pub instruction: String,
    /// Whether the argument registers and the g register still hold their
    /// entry values at the site (nothing before it writes
    /// them), so a probe there reads the arguments the function was called with.
    pub args_intact: bool,
}

/// One direct call inside a function: at the CALL instruction the callee's
/// arguments are already in their registers, and the kernel emulates a
/// relative CALL, so a call site is a cheap place to see a value the
/// function hands on (see `Site::CallTo` in the receiver).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectCall {
    /// Offset of the CALL (BL) from the function's entry.
    pub offset: u64,
    /// Virtual address it calls.
    pub target: u64,
    pub kind: SiteKind,
}

/// What decoding one function yields.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CodeFacts {
    pub site: ProbeSite,
    /// Offsets from the entry of every RET instruction.
    pub returns: Vec<u64>,
    /// Every direct call, in address order. Not in inspect's JSON: a large
    /// function has hundreds, and the probe table names the ones it uses.
    #[serde(skip)]
    pub calls: Vec<DirectCall>,
}

impl CodeFacts {
    /// The first direct call to `target`, in address order.
    pub fn first_call_to(&self, target: u64) -> Option<DirectCall> {
        self.calls.iter().copied().find(|c| c.target == target)
    }
}

/// Decodes a function's bytes (`code`, loaded at `address`).
pub fn analyse(arch: Arch, address: u64, code: &[u8]) -> Result<CodeFacts, SiteError> {
    match arch {
        Arch::Amd64 => analyse_amd64(address, code),
        Arch::Arm64 => analyse_arm64(address, code),
    }
}

/// x86 opcodes the kernel's uprobe code emulates instead of single-stepping
/// (arch/x86/kernel/uprobes.c: relative JMP/CALL/Jcc, NOP, and PUSH of a
/// register, with REX.B 0x41 for r8-r15), without other prefixes, which make
/// it fall back to single-stepping. Everything else, RET included, is
/// single-stepped: in a KVM guest every single step exits to the hypervisor.
pub fn amd64_emulated(bytes: &[u8]) -> bool {
    match bytes {
        [0xeb | 0xe9 | 0xe8 | 0x90, ..] => true,
        [op, ..] if (0x70..=0x7f).contains(op) => true,
        [0x0f, op, ..] if (0x80..=0x8f).contains(op) => true,
        [op, ..] if (0x50..=0x57).contains(op) => true,
        [0x41, op, ..] if (0x50..=0x57).contains(op) => true,
        _ => false,
    }
}

impl SiteKind {
    /// How the kernel runs a uprobe on the amd64 instruction `bytes`.
    pub fn of_amd64(bytes: &[u8]) -> Self {
        if amd64_emulated(bytes) { Self::Emulated } else { Self::SingleStepped }
    }
}

/// How the kernel runs a uprobe on a RET: it does not emulate it.
pub const RETURN_SITE_KIND: SiteKind = SiteKind::SingleStepped;

/// Registers whose entry values a probe reads: the Go register ABI's integer
/// arguments and R14 (the current g). RSP is left out: a frame push moves it,
/// but probes read register arguments, not stack slots.
const AMD64_ENTRY_STATE: &[Register] = &[
    Register::RAX,
    Register::RBX,
    Register::RCX,
    Register::RDI,
    Register::RSI,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
    Register::R14,
];

/// Whether an instruction may write a register it uses this way.
pub(crate) fn may_write(access: OpAccess) -> bool {
    !matches!(access, OpAccess::Read | OpAccess::CondRead | OpAccess::None | OpAccess::NoMemAccess)
}

fn writes_entry_state(factory: &mut InstructionInfoFactory, insn: &Instruction) -> bool {
    factory
        .info(insn)
        .used_registers()
        .iter()
        .any(|r| may_write(r.access()) && AMD64_ENTRY_STATE.contains(&r.register().full_register()))
}

fn analyse_amd64(address: u64, code: &[u8]) -> Result<CodeFacts, SiteError> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut factory = InstructionInfoFactory::new();
    let mut insn = Instruction::default();
    let mut site = None;
    let mut fallback = None;
    let mut prologue_open = true;
    let mut intact = true;
    let mut returns = Vec::new();
    let mut calls = Vec::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        let offset = insn.ip() - address;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let bytes = code.get(start..start + insn.len()).unwrap_or_default();
        if insn.is_invalid() {
            // Go pads between functions with INT3; anything undecodable ends
            // the straight-line prologue but not the RET scan.
            prologue_open = false;
            continue;
        }
        if prologue_open && offset > 0 && site.is_none() {
            let candidate =
                |kind| ProbeSite { offset, kind, instruction: insn.to_string(), args_intact: intact };
            if amd64_emulated(bytes) && intact {
                site = Some(candidate(SiteKind::Emulated));
            } else if fallback.is_none() {
                fallback = Some(candidate(SiteKind::SingleStepped));
            }
        }
        if prologue_open && writes_entry_state(&mut factory, &insn) {
            intact = false;
        }
        match insn.flow_control() {
            FlowControl::Return => {
                returns.push(offset);
                prologue_open = false;
            }
            FlowControl::Call if insn.is_call_near() => {
                let kind = SiteKind::of_amd64(bytes);
                calls.push(DirectCall { offset, target: insn.near_branch_target(), kind });
                prologue_open = false;
            }
            FlowControl::Next => {}
            _ => prologue_open = false,
        }
    }
    if code.is_empty() {
        return Err(SiteError::Empty { address });
    }
    let site = site.or(fallback).ok_or(SiteError::NoSite { address })?;
    Ok(CodeFacts { site, returns, calls })
}

/// arm64 instructions are 4 bytes. The arm64 uprobe code simulates branches
/// (B, BL, B.cond, CBZ/CBNZ, TBZ/TBNZ, BR/BLR/RET) and literal loads; of those,
/// Go's prologue has the B.LS to morestack.
fn arm64_emulated(word: u32) -> bool {
    let b_cond = word & 0xff00_0010 == 0x5400_0000;
    let b_or_bl = word & 0x7c00_0000 == 0x1400_0000;
    let cbz = word & 0x7e00_0000 == 0x3400_0000;
    let tbz = word & 0x7e00_0000 == 0x3600_0000;
    b_cond || b_or_bl || cbz || tbz
}

fn arm64_is_branch(word: u32) -> bool {
    let indirect = word & 0xfe1f_fc1f == 0xd61f_0000; // BR, BLR, RET
    arm64_emulated(word) || indirect
}

/// Conservatively, whether an instruction may write an argument register
/// (R0-R15 under Go's register ABI) or g (R28): the low five bits are the
/// destination of loads and data-processing instructions (and the source of
/// stores, which then count as writes: a false alarm only costs the cheap
/// site). Go's prologue writes only R16/R17 (scratch) and ZR (compare).
fn arm64_may_write_entry_state(word: u32) -> bool {
    let rd = word & 0x1f;
    !arm64_is_branch(word) && (rd <= 15 || rd == 28)
}

/// The target of a BL (branch with link, imm26 words from the instruction).
pub(crate) fn arm64_bl_target(word: u32, pc: u64) -> Option<u64> {
    if word & 0xfc00_0000 != 0x9400_0000 {
        return None;
    }
    // Sign-extend the 26-bit word offset.
    let words = (((word & 0x03ff_ffff) << 6) as i32) >> 6;
    Some(pc.wrapping_add_signed(i64::from(words) * 4))
}

fn arm64_is_ret(word: u32) -> bool {
    word & 0xffff_fc1f == 0xd65f_0000
}

fn analyse_arm64(address: u64, code: &[u8]) -> Result<CodeFacts, SiteError> {
    if code.len() < 4 {
        return Err(SiteError::Empty { address });
    }
    let mut site = None;
    let mut fallback = None;
    let mut prologue_open = true;
    let mut intact = true;
    let mut returns = Vec::new();
    let mut calls = Vec::new();
    for (i, chunk) in code.as_chunks::<4>().0.iter().enumerate() {
        let word = u32::from_le_bytes(*chunk);
        let offset = 4 * i as u64;
        if prologue_open && offset > 0 && site.is_none() {
            let text = format!(".word {word:#010x}");
            if arm64_emulated(word) && intact {
                site = Some(ProbeSite {
                    offset,
                    kind: SiteKind::Emulated,
                    instruction: text,
                    args_intact: intact,
                });
            } else if fallback.is_none() {
                fallback = Some(ProbeSite {
                    offset,
                    kind: SiteKind::SingleStepped,
                    instruction: text,
                    args_intact: intact,
                });
            }
        }
        if prologue_open && arm64_may_write_entry_state(word) {
            intact = false;
        }
        if arm64_is_ret(word) {
            returns.push(offset);
        }
        if let Some(target) = arm64_bl_target(word, address + offset) {
            calls.push(DirectCall { offset, target, kind: SiteKind::Emulated });
        }
        if arm64_is_branch(word) {
            prologue_open = false;
        }
    }
    let site = site.or(fallback).ok_or(SiteError::NoSite { address })?;
    Ok(CodeFacts { site, returns, calls })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// runtime.ready's prologue as go1.26.8 emits it (go tool objdump).
    const READY_AMD64: &[u8] = &[
        0x49, 0x3b, 0x66, 0x10, // CMPQ SP, 0x10(R14)
        0x0f, 0x86, 0x61, 0x02, 0x00, 0x00, // JBE
        0x55, // PUSHQ BP
        0x48, 0x89, 0xe5, // MOVQ SP, BP
        0xc3, // RET
        0xcc, 0xcc, // INT3 padding
    ];

    #[test]
    fn amd64_site_is_the_branch_after_the_stack_check() {
        let facts = analyse(Arch::Amd64, 0x44c9e0, READY_AMD64).unwrap();
        assert_eq!(facts.site.offset, 4);
        assert_eq!(facts.site.kind, SiteKind::Emulated);
        assert!(facts.site.instruction.starts_with("jbe"), "{}", facts.site.instruction);
        assert!(facts.site.args_intact);
        assert_eq!(facts.returns, vec![14]);
    }

    #[test]
    fn amd64_emulated_set_is_the_kernel_s() {
        for emulated in [
            &[0xeb, 0x00][..],
            &[0x0f, 0x86, 0, 0, 0, 0],
            &[0x90],
            &[0x55],
            &[0x41, 0x57],
            &[0xe8, 0, 0, 0, 0],
        ] {
            assert!(amd64_emulated(emulated), "{emulated:x?}");
        }
        // RET, MOV, CMP, a PUSH with another prefix: single-stepped.
        for stepped in [&[0xc3][..], &[0x48, 0x89, 0xe5], &[0x49, 0x3b, 0x66, 0x10], &[0x48, 0x55]] {
            assert!(!amd64_emulated(stepped), "{stepped:x?}");
        }
        assert_eq!(RETURN_SITE_KIND, SiteKind::SingleStepped);
    }

    #[test]
    fn amd64_branch_after_an_argument_write_is_not_taken() {
        // MOVQ $1, AX; JMP: the JMP is emulatable but AX no longer holds arg 0.
        let code = [0x48, 0xc7, 0xc0, 0x01, 0x00, 0x00, 0x00, 0xeb, 0x00, 0xc3];
        let facts = analyse(Arch::Amd64, 0x1000, &code).unwrap();
        assert_eq!(facts.site.kind, SiteKind::SingleStepped);
        assert_eq!(facts.site.offset, 7);
        assert!(!facts.site.args_intact);
    }

    #[test]
    fn amd64_without_stack_check_falls_back_to_second_instruction() {
        // PUSHQ BP; MOVQ SP, BP; RET: a NOSPLIT function has no branch to use.
        let code = [0x55, 0x48, 0x89, 0xe5, 0xc3];
        let facts = analyse(Arch::Amd64, 0x1000, &code).unwrap();
        assert_eq!(facts.site.offset, 1);
        assert_eq!(facts.site.kind, SiteKind::SingleStepped);
    }

    #[test]
    fn never_the_entry_and_no_panic_on_junk() {
        assert_eq!(analyse(Arch::Amd64, 0x10, &[]), Err(SiteError::Empty { address: 0x10 }));
        assert_eq!(analyse(Arch::Amd64, 0x10, &[0xc3]), Err(SiteError::NoSite { address: 0x10 }));
        let junk: Vec<u8> = (0..=255).collect();
        let _ = analyse(Arch::Amd64, 0, &junk);
        let _ = analyse(Arch::Arm64, 0, &junk);
    }

    #[test]
    fn arm64_site_is_the_b_ls_after_the_stack_check() {
        let words: [u32; 5] = [
            0xf9400b90, // MOVD 16(R28), R16
            0xeb3063ff, // CMP R16, RSP
            0x54000209, // BLS
            0xf81c0ffe, // MOVD.W R30, -64(RSP)
            0xd65f03c0, // RET
        ];
        let code: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let facts = analyse(Arch::Arm64, 0x7_0000, &code).unwrap();
        assert_eq!(facts.site.offset, 8);
        assert_eq!(facts.site.kind, SiteKind::Emulated);
        assert_eq!(facts.returns, vec![16]);
    }

    #[test]
    fn direct_calls_are_listed_with_their_targets() {
        // CMPQ SP, 0x10(R14); JBE; CALL +0x10; CALL *AX; RET.
        let code = [0x49, 0x3b, 0x66, 0x10, 0x76, 0x08, 0xe8, 0x10, 0x00, 0x00, 0x00, 0xff, 0xd0, 0xc3];
        let facts = analyse(Arch::Amd64, 0x1000, &code).unwrap();
        let call = DirectCall { offset: 6, target: 0x1000 + 11 + 0x10, kind: SiteKind::Emulated };
        assert_eq!(facts.calls, vec![call], "the indirect CALL is not a direct call");
        assert_eq!(facts.first_call_to(0x101b), Some(call));
        assert_eq!(facts.first_call_to(0x2000), None);
        // MOVD 16(R28), R16; BL -1 word; BL +2 words; RET.
        let words: [u32; 4] = [0xf940_0b90, 0x97ff_ffff, 0x9400_0002, 0xd65f_03c0];
        let code: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let facts = analyse(Arch::Arm64, 0x7_0000, &code).unwrap();
        let targets: Vec<u64> = facts.calls.iter().map(|c| c.target).collect();
        assert_eq!(targets, vec![0x7_0000, 0x7_0010]);
    }
}
