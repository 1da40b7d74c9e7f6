//! Declares `bpf_target_arch` (which pt_regs layout the probes read) when the
//! probes are built directly rather than through receiver/build.rs.
fn main() -> anyhow::Result<()> {
    aya_build::emit_bpf_target_arch_cfg()
}
