//! Every direct call of one function from the functions of its own package,
//! with the argument registers the caller set from constants just before
//! the call. A probe at a relative CALL costs an emulated trap, as one after
//! the callee's entry does, and sees the callee's arguments in their
//! registers; probing the calls instead of the callee lets gort leave out
//! the calls whose constant arguments say the probe would do nothing (the
//! runtime's `casgstatus(gp, _Grunning, _Gcopystack)` around every stack
//! growth, for instance).

use std::collections::HashSet;

use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, OpKind, Register,
};
use object::{Object, ObjectSymbol, ReadRef};

use crate::{
    code_at,
    pclntab::Pclntab,
    sites::{Arch, SiteKind, may_write},
};

/// Integer argument registers whose constants a call site records: the
/// first three of Go's register ABI (RAX, RBX, RCX on amd64).
pub const CONSTANT_ARGS: usize = 3;

/// One direct call of the callee.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CallSite {
    /// The calling function.
    pub caller: String,
    /// Link-time address of the CALL (BL) instruction.
    pub address: u64,
    /// Its offset from the calling function's entry (never 0: a call is
    /// not the first instruction of a Go function).
    pub offset: u64,
    /// Its file offset: what the kernel's uprobe API takes.
    pub file_offset: u64,
    pub kind: SiteKind,
    /// Argument registers 0..3 when the straight-line code just before the
    /// call set them from an immediate, with no branch target in between:
    /// the callee's argument on every path to the call. None where it is not
    /// certain (any arm64 call, or a caller with an indirect jump, whose
    /// targets are not known).
    pub constant_args: [Option<u64>; CONSTANT_ARGS],
}

/// `runtime.` for `runtime.casgstatus`, `example.com/a/b.` for
/// `example.com/a/b.(*T).M`: the prefix of every function of the package.
fn package_prefix(name: &str) -> &str {
    let base = name.rfind('/').map_or(0, |slash| slash + 1);
    name[base..].find('.').map_or(name, |dot| &name[..base + dot + 1])
}

/// Every direct call of `callee` (named `name`, entry at `callee`) from the
/// functions of its own package, found in the pclntab (which stripping
/// keeps) or else the symbol table. An unexported function is called only
/// from its package; a caller whose code cannot be read is an error, since
/// a call left out would be a call not probed.
pub(crate) fn calls_to<'data, R: ReadRef<'data>>(
    data: R,
    file: &object::File<'data, R>,
    arch: Arch,
    pcln: Option<&Pclntab<'data>>,
    name: &str,
    callee: u64,
) -> Result<Vec<CallSite>, String> {
    let prefix = package_prefix(name).as_bytes();
    let functions: Vec<(String, u64, u64)> = match pcln {
        Some(pcln) => pcln
            .functions_where(|n| n.starts_with(prefix))
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|f| (f.name, f.entry, f.size))
            .collect(),
        None => file
            .symbols()
            .filter(|s| s.kind() == object::SymbolKind::Text)
            .filter_map(|s| {
                let n = s.name().ok()?;
                n.as_bytes().starts_with(prefix).then(|| (n.to_owned(), s.address(), s.size()))
            })
            .collect(),
    };
    let mut out = Vec::new();
    for (caller, address, size) in functions {
        let (file_offset, code) =
            code_at(data, file, address, size).map_err(|e| format!("the code of {caller}: {e}"))?;
        for (at, kind, constant_args) in calls_in(arch, address, code, callee) {
            out.push(CallSite {
                caller: caller.clone(),
                address: at,
                offset: at - address,
                file_offset: file_offset + (at - address),
                kind,
                constant_args,
            });
        }
    }
    Ok(out)
}

/// The calls to `callee` in one function's `code`, loaded at `address`:
/// (address of the call, how the kernel runs a probe there, constant args).
pub(crate) fn calls_in(
    arch: Arch,
    address: u64,
    code: &[u8],
    callee: u64,
) -> Vec<(u64, SiteKind, [Option<u64>; CONSTANT_ARGS])> {
    match arch {
        Arch::Amd64 => amd64_calls_in(address, code, callee),
        Arch::Arm64 => code
            .as_chunks::<4>()
            .0
            .iter()
            .enumerate()
            .filter_map(|(i, chunk)| {
                let pc = address + 4 * i as u64;
                let target = crate::sites::arm64_bl_target(u32::from_le_bytes(*chunk), pc)?;
                (target == callee).then_some((pc, SiteKind::Emulated, [None; CONSTANT_ARGS]))
            })
            .collect(),
    }
}

fn arg_index(register: Register) -> Option<usize> {
    match register.full_register() {
        Register::RAX => Some(0),
        Register::RBX => Some(1),
        Register::RCX => Some(2),
        _ => None,
    }
}

/// The argument register an instruction sets to a constant, and the
/// constant: MOV of an immediate (32-bit forms zero-extend), or a register
/// XORed with itself (Go's zero).
fn constant_write(insn: &Instruction) -> Option<(usize, u64)> {
    if insn.op0_kind() != OpKind::Register {
        return None;
    }
    let index = arg_index(insn.op0_register())?;
    let value = match insn.code() {
        Code::Mov_r32_imm32 | Code::Mov_rm32_imm32 => u64::from(insn.immediate32()),
        Code::Mov_r64_imm64 => insn.immediate64(),
        Code::Mov_rm64_imm32 => insn.immediate32to64() as u64,
        Code::Xor_r32_rm32 | Code::Xor_rm32_r32 | Code::Xor_r64_rm64 | Code::Xor_rm64_r64
            if insn.op1_kind() == OpKind::Register && insn.op1_register() == insn.op0_register() =>
        {
            0
        }
        _ => return None,
    };
    Some((index, value))
}

fn amd64_calls_in(
    address: u64,
    code: &[u8],
    callee: u64,
) -> Vec<(u64, SiteKind, [Option<u64>; CONSTANT_ARGS])> {
    let insns: Vec<Instruction> =
        Decoder::with_ip(64, code, address, DecoderOptions::NONE).into_iter().collect();
    // Where control can arrive other than from the instruction before:
    // direct branch targets. An indirect jump's (a jump table's) are not
    // known, so in a function that has one no constant is certain.
    let labels: HashSet<u64> = insns
        .iter()
        .filter(|i| {
            matches!(i.flow_control(), FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch)
        })
        .map(Instruction::near_branch_target)
        .collect();
    let certain = !insns.iter().any(|i| i.flow_control() == FlowControl::IndirectBranch);
    let mut factory = InstructionInfoFactory::new();
    let mut known = [None; CONSTANT_ARGS];
    let mut out = Vec::new();
    for insn in &insns {
        if insn.is_invalid() || labels.contains(&insn.ip()) {
            known = [None; CONSTANT_ARGS];
        }
        if insn.is_invalid() {
            continue;
        }
        if insn.is_call_near() && insn.near_branch_target() == callee {
            let start = usize::try_from(insn.ip() - address).unwrap_or(usize::MAX);
            let bytes = code.get(start..start + insn.len()).unwrap_or_default();
            let kind = SiteKind::of_amd64(bytes);
            out.push((insn.ip(), kind, if certain { known } else { [None; CONSTANT_ARGS] }));
        }
        if let Some((index, value)) = constant_write(insn) {
            known[index] = Some(value);
        } else {
            for used in factory.info(insn).used_registers() {
                if let (true, Some(index)) = (may_write(used.access()), arg_index(used.register())) {
                    known[index] = None;
                }
            }
        }
        // A call clobbers the argument registers; after a jump or return the
        // next instruction is reached only by a branch.
        if insn.flow_control() != FlowControl::Next {
            known = [None; CONSTANT_ARGS];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: u64 = 0x1000;
    const CALLEE: u64 = 0x2000;

    /// CALL rel32 to CALLEE from an instruction at `ip`.
    fn call(ip: u64) -> Vec<u8> {
        let rel = (CALLEE as i64 - (ip as i64 + 5)) as i32;
        let mut b = vec![0xe8];
        b.extend_from_slice(&rel.to_le_bytes());
        b
    }

    #[test]
    fn constants_set_just_before_a_call_are_its_arguments() {
        // MOVL $8, CX; MOVL $2, BX; MOVQ R8, AX; CALL callee.
        let mut code = vec![0xb9, 8, 0, 0, 0, 0xbb, 2, 0, 0, 0, 0x4c, 0x89, 0xc0];
        code.extend(call(AT + code.len() as u64));
        let calls = calls_in(Arch::Amd64, AT, &code, CALLEE);
        assert_eq!(calls, vec![(AT + 13, SiteKind::Emulated, [None, Some(2), Some(8)])]);
    }

    #[test]
    fn a_branch_target_or_a_later_write_makes_an_argument_unknown() {
        // MOVL $2, BX; XORL CX, CX; JMP +2 (to the ADD); NOP; NOP;
        // ADDL $1, CX (a branch target: BX unknown, CX written); CALL.
        let mut code = vec![0xbb, 2, 0, 0, 0, 0x31, 0xc9, 0xeb, 0x02, 0x90, 0x90, 0x83, 0xc1, 0x01];
        code.extend(call(AT + code.len() as u64));
        // XORL CX, CX; MOVL $4, BX; CALL; CALL (the first clobbers both).
        let second = code.len();
        code.extend([0x31, 0xc9, 0xbb, 4, 0, 0, 0]);
        code.extend(call(AT + code.len() as u64));
        code.extend(call(AT + code.len() as u64));
        let calls = calls_in(Arch::Amd64, AT, &code, CALLEE);
        let args: Vec<_> = calls.iter().map(|c| c.2).collect();
        assert_eq!(args, vec![[None; 3], [None, Some(4), Some(0)], [None; 3]]);
        assert_eq!(calls[1].0, AT + second as u64 + 7);
    }

    #[test]
    fn an_indirect_jump_makes_every_constant_uncertain() {
        // MOVL $2, BX; MOVL $3, CX; CALL; JMP *AX.
        let mut code = vec![0xbb, 2, 0, 0, 0, 0xb9, 3, 0, 0, 0];
        code.extend(call(AT + code.len() as u64));
        code.extend([0xff, 0xe0]);
        let calls = calls_in(Arch::Amd64, AT, &code, CALLEE);
        assert_eq!(calls, vec![(AT + 10, SiteKind::Emulated, [None; 3])]);
    }

    #[test]
    fn a_package_is_named_up_to_the_dot_after_its_path() {
        assert_eq!(package_prefix("runtime.casgstatus"), "runtime.");
        assert_eq!(
            package_prefix("go.opentelemetry.io/otel/sdk/trace.(*recordingSpan).End"),
            "go.opentelemetry.io/otel/sdk/trace."
        );
        assert_eq!(package_prefix("main"), "main");
    }

    #[test]
    fn arm64_calls_are_found_without_constants() {
        // MOVD 16(R28), R16; BL to 0x7_0008 + 0x1000; RET.
        let words: [u32; 3] = [0xf940_0b90, 0x9400_0400, 0xd65f_03c0];
        let code: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let calls = calls_in(Arch::Arm64, 0x7_0000, &code, 0x7_1004);
        assert_eq!(calls, vec![(0x7_0004, SiteKind::Emulated, [None; 3])]);
        assert!(calls_in(Arch::Arm64, 0x7_0000, &code, 0x7_2000).is_empty());
        let junk: Vec<u8> = (0..=255).collect();
        let _ = calls_in(Arch::Amd64, 0, &junk, 7);
        let _ = calls_in(Arch::Arm64, 0, &junk, 7);
    }
}
