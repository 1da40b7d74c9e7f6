//! The target's memory: where its executable is mapped, and bounded reads
//! at run-time addresses through process_vm_readv(2). Reading costs the
//! target nothing (no stop, no trap), and needs ptrace access to it only,
//! not read permission on /proc/PID/mem (which belongs to the target's
//! user). What is read may change meanwhile, so each reader says how it
//! copes with a racing writer.

use std::{fs, io, io::IoSliceMut, path::Path};

use nix::{
    sys::uio::{RemoteIoVec, process_vm_readv},
    unistd::Pid,
};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum MemoryError {
    // Not a `source`: `explain` says it, or the capability that is missing.
    #[error("cannot read the memory of pid {pid}: {}", explain(.error))]
    Open { pid: u32, error: io::Error },
    #[error("reading the target's memory at {address:#x}: {source}")]
    Read { address: u64, source: io::Error },
    #[error("cannot find where {exe} is mapped in /proc/{pid}/maps")]
    NotMapped { pid: u32, exe: String },
}

fn explain(e: &io::Error) -> String {
    crate::privileges::explain_ptrace(e, crate::privileges::Capabilities::of_self())
}

/// Another process's memory, read by pid.
pub struct TargetMemory {
    pid: Pid,
}

impl TargetMemory {
    /// Checks at once that `pid`'s memory can be read (one byte of its
    /// first readable mapping), so a missing privilege shows at attach, not at the
    /// first report.
    pub fn open(pid: u32) -> Result<Self, MemoryError> {
        let maps = fs::read_to_string(format!("/proc/{pid}/maps"))
            .map_err(|error| MemoryError::Open { pid, error })?;
        let first = maps
            .lines()
            .find(|l| l.split_whitespace().nth(1).is_some_and(|perms| perms.starts_with('r')))
            .and_then(|l| u64::from_str_radix(l.split('-').next()?, 16).ok())
            .ok_or_else(|| MemoryError::NotMapped { pid, exe: "anything readable".to_owned() })?;
        let memory = Self { pid: Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX)) };
        memory.read(first, &mut [0]).map_err(|e| match e {
            MemoryError::Read { source, .. } => MemoryError::Open { pid, error: source },
            other => other,
        })?;
        Ok(memory)
    }

    /// Fills `buf` from `address`; a read that stops short (an unmapped
    /// page on the way) is an error, as with any exact read.
    pub fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let want = buf.len();
        let remote = [RemoteIoVec { base: usize::try_from(address).unwrap_or(usize::MAX), len: want }];
        match process_vm_readv(self.pid, &mut [IoSliceMut::new(buf)], &remote) {
            Ok(n) if n == want => Ok(()),
            Ok(n) => Err(MemoryError::Read {
                address,
                source: io::Error::new(io::ErrorKind::UnexpectedEof, format!("read {n} of {want} bytes")),
            }),
            Err(errno) => Err(MemoryError::Read { address, source: io::Error::from(errno) }),
        }
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
    let maps =
        fs::read_to_string(format!("/proc/{pid}/maps")).map_err(|error| MemoryError::Open { pid, error })?;
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
