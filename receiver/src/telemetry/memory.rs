//! The target's memory, read through /proc/PID/mem: where its executable is
//! mapped, and bounded reads at run-time addresses. Reading costs the target
//! nothing (no stop, no trap); what is read may change meanwhile, so each
//! reader says how it copes with a racing writer.

use std::{fs, io, os::unix::fs::FileExt, path::Path};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum MemoryError {
    #[error("cannot open /proc/{pid}/mem: {source}{}", ptrace_hint(.source))]
    Open { pid: u32, source: io::Error },
    #[error("reading the target's memory at {address:#x}: {source}")]
    Read { address: u64, source: io::Error },
    #[error("cannot find where {exe} is mapped in /proc/{pid}/maps")]
    NotMapped { pid: u32, exe: String },
}

/// What a refused open needs: the kernel allows reading another process's
/// memory only with ptrace access to it.
fn ptrace_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::PermissionDenied {
        " (reading another process's memory needs ptrace access: run gort as root or with CAP_SYS_PTRACE, or as the target's user with kernel.yama.ptrace_scope = 0)"
    } else {
        ""
    }
}

/// An open /proc/PID/mem.
pub struct TargetMemory {
    mem: fs::File,
}

impl TargetMemory {
    pub fn open(pid: u32) -> Result<Self, MemoryError> {
        let mem =
            fs::File::open(format!("/proc/{pid}/mem")).map_err(|source| MemoryError::Open { pid, source })?;
        Ok(Self { mem })
    }

    pub fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.mem.read_exact_at(buf, address).map_err(|source| MemoryError::Read { address, source })
    }

    pub fn u64_at(&self, address: u64) -> Result<u64, MemoryError> {
        let mut b = [0; 8];
        self.read(address, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    pub fn u32_at(&self, address: u64) -> Result<u32, MemoryError> {
        let mut b = [0; 4];
        self.read(address, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// `n` little-endian words from `address`.
    pub fn words(&self, address: u64, n: usize) -> Result<Vec<u64>, MemoryError> {
        let mut bytes = vec![0u8; n * 8];
        self.read(address, &mut bytes)?;
        Ok(bytes.as_chunks::<8>().0.iter().map(|c| u64::from_le_bytes(*c)).collect())
    }
}

/// How far a (PIE) executable is loaded from where it was linked: the
/// start of its first page in /proc/PID/maps minus the lowest address it is
/// linked at (`image_base`).
pub fn load_bias(pid: u32, exe: &Path, image_base: u64) -> Result<u64, MemoryError> {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|source| MemoryError::Open { pid, source })?;
    let start = mapped_start(&maps, exe)
        .ok_or_else(|| MemoryError::NotMapped { pid, exe: exe.display().to_string() })?;
    Ok(start.wrapping_sub(image_base & !0xfff))
}

/// Start of the executable's mapping at file offset 0 in /proc/PID/maps.
fn mapped_start(maps: &str, exe: &Path) -> Option<u64> {
    let exe = exe.to_str()?;
    maps.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        let range = f.next()?;
        let offset = f.nth(1)?;
        let path = f.nth(2)?;
        let path = path.strip_suffix(" (deleted)").unwrap_or(path);
        (path == exe && u64::from_str_radix(offset, 16).ok()? == 0)
            .then(|| u64::from_str_radix(range.split('-').next()?, 16).ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_page_of_the_executable() {
        let maps = "\
00400000-00401000 r--p 00000000 fd:01 1234 /usr/lib/other
55d0c0000000-55d0c0100000 r--p 00000000 fd:01 42 /srv/app
55d0c0100000-55d0c0200000 r-xp 00100000 fd:01 42 /srv/app
7f0000000000-7f0000001000 rw-p 00000000 00:00 0
";
        assert_eq!(mapped_start(maps, Path::new("/srv/app")), Some(0x55d0_c000_0000));
        assert_eq!(mapped_start(maps, Path::new("/srv/none")), None);
    }
}
