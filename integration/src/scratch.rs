//! Per-test scratch directories under the system's temporary directory.
//! A passing test leaves nothing behind (a test run must not fill the disk
//! it runs on); a failing one keeps its directory, named on stderr, as
//! evidence.

use std::path::{Path, PathBuf};

pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// An empty directory `gort-<name>-<pid>`; `name` must be unique among
    /// the tests of one test binary, which share the pid.
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("gort-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create scratch directory {}: {e}", path.display()));
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for the failed test", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
