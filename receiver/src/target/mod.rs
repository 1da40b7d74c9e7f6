//! Finding the Go process to watch and noticing when it goes away.
//!
//! A process is identified by pid plus its start time, so a recycled pid is
//! never mistaken for the process gort attached to.

use std::{
    fs,
    path::{Path, PathBuf},
};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum TargetError {
    #[error("no process with pid {0} exists")]
    NoSuchPid(u32),
    #[error("pid {0} is a kernel thread, not a program: give the pid of the Go process")]
    KernelThread(u32),
    // Not a `source`: `explain` says it, or the capability that is missing.
    #[error("cannot read /proc/{pid}: {}", explain(.error))]
    Proc { pid: u32, error: std::io::Error },
    #[error("{path}: {source}")]
    Exe { path: PathBuf, source: std::io::Error },
}

fn explain(e: &std::io::Error) -> String {
    crate::privileges::explain_ptrace(e, crate::privileges::Capabilities::of_self())
}

/// A running process gort watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    /// Start time in clock ticks since boot (/proc/PID/stat field 22).
    pub start_time: u64,
    /// The executable as the process sees it (`/proc/PID/exe`'s target).
    pub exe: PathBuf,
}

impl Process {
    /// Path through which the exact executable image of the process can be
    /// opened even if the file was replaced or deleted since it started.
    pub fn image_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/exe", self.pid))
    }

    pub fn from_pid(pid: u32) -> Result<Self, TargetError> {
        let start_time = start_time(pid)?.ok_or(TargetError::NoSuchPid(pid))?;
        if is_kernel_thread(pid) {
            return Err(TargetError::KernelThread(pid));
        }
        let exe =
            fs::read_link(format!("/proc/{pid}/exe")).map_err(|error| TargetError::Proc { pid, error })?;
        Ok(Self { pid, start_time, exe })
    }

    /// Whether the very process (not a later one with the same pid) still runs.
    ///
    /// A process that is exiting has released its address space before it
    /// becomes a zombie, and that can take longer than a report interval on
    /// a loaded machine: its memory is unreadable from the first moment, so
    /// from then on it counts as gone.
    pub fn is_alive(&self) -> bool {
        let Ok(Some(fields)) = stat_fields(self.pid) else { return false };
        let field = |i: usize| fields.get(i).map(String::as_str);
        field(START_TIME).and_then(|s| s.parse::<u64>().ok()) == Some(self.start_time)
            && field(STATE) != Some("Z")
            && field(VSIZE).and_then(|s| s.parse::<u64>().ok()).is_some_and(|v| v > 0)
    }
}

/// Indices into [`stat_fields`] (fields after "pid (comm)", so field N of
/// /proc/PID/stat is index N - 3): the state, the flags, the start time,
/// and the virtual memory size, 0 once the process's address space is gone.
const STATE: usize = 0;
const FLAGS: usize = 6;
const START_TIME: usize = 19;
const VSIZE: usize = 20;

/// The kernel's PF_KTHREAD in /proc/PID/stat's flags (field 9): a kernel
/// thread has no executable to read.
const PF_KTHREAD: u64 = 0x0020_0000;

fn is_kernel_thread(pid: u32) -> bool {
    stat_fields(pid)
        .ok()
        .flatten()
        .and_then(|f| f.get(FLAGS)?.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_KTHREAD != 0)
}

fn is_zombie(pid: u32) -> bool {
    stat_fields(pid).ok().flatten().is_some_and(|f| f.get(STATE).is_some_and(|s| s == "Z"))
}

/// Fields of /proc/PID/stat after the command name, which may hold spaces
/// and parentheses, so split after the last ')'.
fn stat_fields(pid: u32) -> Result<Option<Vec<String>>, TargetError> {
    let stat = match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(TargetError::Proc { pid, error }),
    };
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    Ok(Some(rest.split_whitespace().map(str::to_owned).collect()))
}

fn start_time(pid: u32) -> Result<Option<u64>, TargetError> {
    Ok(stat_fields(pid)?.and_then(|f| f.get(START_TIME).and_then(|s| s.parse().ok())))
}

/// The path each process's /proc/PID/exe link must read: the file's
/// canonical path when gort can see it, else the absolute path as given. A
/// sidecar shares the service's processes but not its files, so there the
/// path is the executable as the service sees it in its own mount namespace
/// (say `/app/server`), which the link reads too.
fn wanted_exe(exe: &Path) -> Result<PathBuf, TargetError> {
    match fs::canonicalize(exe) {
        Ok(path) => Ok(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && exe.is_absolute() => Ok(exe.to_owned()),
        Err(source) => Err(TargetError::Exe { path: exe.to_owned(), source }),
    }
}

/// Live processes whose executable is `exe` (compared after resolving links).
pub fn processes_running(exe: &Path) -> Result<Vec<Process>, TargetError> {
    let wanted = wanted_exe(exe)?;
    let mut found = Vec::new();
    let entries = fs::read_dir("/proc").map_err(|error| TargetError::Proc { pid: 0, error })?;
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(target) = fs::read_link(entry.path().join("exe")) else { continue };
        if target == wanted
            && let Ok(p) = Process::from_pid(pid)
            && !is_zombie(pid)
        {
            found.push(p);
        }
    }
    found.sort_by_key(|p| p.start_time);
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_found_and_alive() {
        let me = Process::from_pid(std::process::id()).unwrap();
        assert!(me.is_alive());
        let mut other = me.clone();
        other.start_time += 1;
        assert!(!other.is_alive(), "a different start time means a different process");
    }

    #[test]
    fn a_zombie_is_not_alive() {
        let mut child = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        let zombie = Process::from_pid(child.id()).unwrap();
        assert!(zombie.is_alive());
        child.kill().unwrap();
        // Not reaped yet: it stays a zombie until `wait` below.
        while !is_zombie(zombie.pid) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!zombie.is_alive());
        child.wait().unwrap();
    }

    #[test]
    fn a_task_without_an_address_space_is_not_alive() {
        // An exiting process looks like this between releasing its memory
        // and becoming a zombie; a kernel thread always does (and is not a
        // zombie, so only the address space can tell).
        let kthread = fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .find(|&pid| is_kernel_thread(pid))
            .expect("a kernel thread visible in /proc (the tests run on the host)");
        let task =
            Process { pid: kthread, start_time: start_time(kthread).unwrap().unwrap(), exe: "/".into() };
        assert!(!is_zombie(kthread));
        assert!(!task.is_alive());
    }

    #[test]
    fn missing_pid_is_a_clear_error() {
        // pid_max is at most 2^22, so this pid cannot exist.
        let err = Process::from_pid(u32::MAX - 1).unwrap_err();
        assert_eq!(err.to_string(), format!("no process with pid {} exists", u32::MAX - 1));
    }
}

/// Which process to watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSpec {
    Pid(u32),
    /// Every process running this executable, one after another.
    Exe(PathBuf),
}
