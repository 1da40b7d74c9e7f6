//! The Linux capabilities gort holds and the ones it needs, so that a
//! refusal from the kernel reaches the user as one sentence naming the
//! capability to grant, not an errno.
//!
//! What each capability is for:
//! - `CAP_BPF`: creating maps and loading the probe programs.
//! - `CAP_PERFMON`: loading tracing programs that read user memory, and
//!   attaching them to perf events.
//! - `CAP_SYS_ADMIN`: creating uprobes. Linux 5.8 to 6.15 took `CAP_PERFMON`
//!   for them; Linux 6.16 (and the stable kernels updated since July 2025)
//!   require `CAP_SYS_ADMIN` again, which also stands in for the two above.
//! - `CAP_SYS_PTRACE`: reading the executable, maps and memory of a process
//!   that runs as another user.

use std::{fmt, fs, io};

use thiserror::Error;

/// A capability gort may need; the discriminant is the kernel's number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    SysPtrace = 19,
    SysAdmin = 21,
    Perfmon = 38,
    Bpf = 39,
}

impl Capability {
    pub const fn name(self) -> &'static str {
        match self {
            Self::SysPtrace => "CAP_SYS_PTRACE",
            Self::SysAdmin => "CAP_SYS_ADMIN",
            Self::Perfmon => "CAP_PERFMON",
            Self::Bpf => "CAP_BPF",
        }
    }

    const fn bit(self) -> u64 {
        1 << self as u64
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The effective capability set of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities(u64);

impl Capabilities {
    /// This process's set; None when /proc/self/status cannot be read or
    /// parsed (gort then lets the kernel decide and explains its refusal).
    pub fn of_self() -> Option<Self> {
        Self::parse(&fs::read_to_string("/proc/self/status").ok()?)
    }

    /// The `CapEff:` line of a /proc/PID/status text.
    pub fn parse(status: &str) -> Option<Self> {
        let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
        u64::from_str_radix(hex, 16).ok().map(Self)
    }

    pub const fn has(self, cap: Capability) -> bool {
        self.0 & cap.bit() != 0
    }

    /// What the kernel's `bpf_capable()`/`perfmon_capable()` accept:
    /// `CAP_SYS_ADMIN` stands in for `CAP_BPF` and `CAP_PERFMON`.
    pub const fn allows(self, cap: Capability) -> bool {
        match cap {
            Capability::Bpf | Capability::Perfmon => self.has(cap) || self.has(Capability::SysAdmin),
            _ => self.has(cap),
        }
    }
}

/// How a user grants a capability, said once in every refusal.
const HOW_TO_GRANT: &str = "grant it to gort (`setcap` on its binary, `setpriv --ambient-caps` or \
                            capabilities.add in the container's securityContext) or run gort as root";

#[derive(Debug, Error)]
pub enum PrivilegeError {
    #[error("missing capability {missing}, which {purpose}: {HOW_TO_GRANT}")]
    Missing { missing: Capability, purpose: &'static str },
    #[error(
        "the kernel refused to create uprobes although gort holds CAP_SYS_ADMIN ({source}); \
         a security module (SELinux, AppArmor, a seccomp filter) or kernel.perf_event_paranoid may forbid them"
    )]
    UprobesRefused { source: io::Error },
}

/// Why each capability is asked for, in the words of the refusal.
const fn purpose(cap: Capability) -> &'static str {
    match cap {
        Capability::Bpf => "loading the eBPF probes needs",
        Capability::Perfmon => "the probes' programs need to read the target's memory",
        Capability::SysAdmin => {
            "this kernel needs to create uprobes (Linux 6.16 and the stable kernels since July 2025; \
             before, CAP_PERFMON sufficed)"
        }
        Capability::SysPtrace => "reading the memory and executable of a process of another user needs",
    }
}

/// Loading the probes: `CAP_BPF` and `CAP_PERFMON` (or `CAP_SYS_ADMIN`),
/// checked before the kernel is asked so the refusal names the one missing.
pub fn check_probes_load(caps: Option<Capabilities>) -> Result<(), PrivilegeError> {
    let Some(caps) = caps else { return Ok(()) };
    for cap in [Capability::Bpf, Capability::Perfmon] {
        if !caps.allows(cap) {
            return Err(PrivilegeError::Missing { missing: cap, purpose: purpose(cap) });
        }
    }
    Ok(())
}

/// The kernel refused a uprobe (`source`): name what gort lacks for it.
pub fn uprobes_refused(caps: Option<Capabilities>, source: io::Error) -> PrivilegeError {
    match caps {
        Some(c) if !c.allows(Capability::Perfmon) => {
            PrivilegeError::Missing { missing: Capability::Perfmon, purpose: purpose(Capability::Perfmon) }
        }
        Some(c) if !c.has(Capability::SysAdmin) => {
            PrivilegeError::Missing { missing: Capability::SysAdmin, purpose: purpose(Capability::SysAdmin) }
        }
        _ => PrivilegeError::UprobesRefused { source },
    }
}

/// A failed read of another process's /proc entries or memory, said as
/// the capability that grants it when that is what gort lacks, else as
/// the error itself.
pub fn explain_ptrace(e: &io::Error, caps: Option<Capabilities>) -> String {
    match caps {
        Some(c) if e.kind() == io::ErrorKind::PermissionDenied && !c.has(Capability::SysPtrace) => format!(
            "missing capability {}, which {}: {HOW_TO_GRANT}",
            Capability::SysPtrace,
            purpose(Capability::SysPtrace)
        ),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str =
        "Name:\tgort\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n";
    // setpriv --ambient-caps +bpf,+perfmon,+sys_ptrace as an unprivileged user.
    const THREE: &str = "CapPrm:\t000000c000080000\nCapEff:\t000000c000080000\nCapBnd:\t000000c000080000\n";

    #[test]
    fn the_effective_set_is_read_from_cap_eff() {
        let root = Capabilities::parse(ROOT).unwrap();
        assert!(
            [Capability::Bpf, Capability::Perfmon, Capability::SysAdmin, Capability::SysPtrace]
                .iter()
                .all(|&c| root.has(c))
        );
        let three = Capabilities::parse(THREE).unwrap();
        assert!(
            three.has(Capability::Bpf) && three.has(Capability::Perfmon) && three.has(Capability::SysPtrace)
        );
        assert!(!three.has(Capability::SysAdmin));
        assert_eq!(Capabilities::parse("CapPrm:\t0\n"), None);
        assert_eq!(Capabilities::parse("CapEff:\tnot hex\n"), None);
    }

    #[test]
    fn sys_admin_stands_in_for_bpf_and_perfmon_only() {
        let admin = Capabilities(Capability::SysAdmin.bit());
        assert!(admin.allows(Capability::Bpf) && admin.allows(Capability::Perfmon));
        assert!(!admin.allows(Capability::SysPtrace));
        assert!(check_probes_load(Some(admin)).is_ok());
    }

    #[test]
    fn each_refusal_names_the_missing_capability() {
        let without =
            |cap: Capability| Some(Capabilities(Capabilities::parse(THREE).unwrap().0 & !cap.bit()));
        let e = check_probes_load(without(Capability::Bpf)).unwrap_err().to_string();
        assert!(
            e.starts_with("missing capability CAP_BPF, which loading the eBPF probes needs: grant it"),
            "{e}"
        );
        let e = check_probes_load(without(Capability::Perfmon)).unwrap_err().to_string();
        assert!(e.starts_with("missing capability CAP_PERFMON"), "{e}");
        let denied = || io::Error::from(io::ErrorKind::PermissionDenied);
        let e = uprobes_refused(without(Capability::SysAdmin), denied()).to_string();
        assert!(
            e.starts_with("missing capability CAP_SYS_ADMIN, which this kernel needs to create uprobes"),
            "{e}"
        );
        let e = uprobes_refused(Capabilities::parse(ROOT), denied()).to_string();
        assert!(e.contains("although gort holds CAP_SYS_ADMIN"), "{e}");
        let hint = explain_ptrace(&denied(), without(Capability::SysPtrace));
        assert!(hint.starts_with("missing capability CAP_SYS_PTRACE, which reading the memory"), "{hint}");
        assert_eq!(explain_ptrace(&denied(), Capabilities::parse(THREE)), denied().to_string());
        let gone = io::Error::from(io::ErrorKind::NotFound);
        assert_eq!(explain_ptrace(&gone, without(Capability::SysPtrace)), gone.to_string());
        for e in [check_probes_load(without(Capability::Bpf)).unwrap_err().to_string(), hint] {
            assert!(!e.contains('\n'), "one sentence: {e}");
        }
    }
}
