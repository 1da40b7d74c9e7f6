//! The analysis of the executable last attached to, kept for the next process
//! that runs the same file: a watched service restarts many times, and its
//! analysis (symbols, `.gopclntab`, DWARF) is most of the time an attach
//! takes. A file is the same while its device, inode, size and modification
//! time are; a new build replaces at least one of them.

use std::{fs::Metadata, os::unix::fs::MetadataExt};

/// What identifies an executable's content without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl FileKey {
    pub fn of(meta: &Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

/// One entry: `gort run` follows one executable at a time. (Generic so the
/// keeping can be tested without a Go binary.)
pub struct Analyses<T = gort_goexe::Analysis> {
    last: Option<(FileKey, T)>,
}

impl<T> Default for Analyses<T> {
    fn default() -> Self {
        Self { last: None }
    }
}

impl<T: Clone> Analyses<T> {
    /// The kept analysis of the file `key` names, or the one `analyse`
    /// makes (kept in its place when it succeeds).
    pub fn get_or<E>(
        &mut self,
        key: Option<FileKey>,
        analyse: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        if let (Some(key), Some((kept, analysis))) = (key, &self.last)
            && key == *kept
        {
            return Ok(analysis.clone());
        }
        let analysis = analyse()?;
        self.last = key.map(|k| (k, analysis.clone()));
        Ok(analysis)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn the_same_file_is_analysed_once_and_a_changed_one_again() {
        let dir = std::env::temp_dir().join(format!("gort-analyses-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("exe");
        std::fs::write(&path, b"v1").unwrap();
        let key = || Some(FileKey::of(&std::fs::metadata(&path).unwrap()));
        let mut analyses = Analyses::default();
        let mut runs = 0;
        let mut analyse = || -> Result<u32, ()> {
            runs += 1;
            Ok(runs)
        };
        assert_eq!(analyses.get_or(key(), &mut analyse), Ok(1));
        assert_eq!(analyses.get_or(key(), &mut analyse), Ok(1), "the same file analysed again");
        // A rebuild in place: another size (and mtime).
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b" and v2").unwrap();
        assert_eq!(analyses.get_or(key(), &mut analyse), Ok(2), "a changed file taken for the old one");
        // A failed analysis keeps the last good one, and is not kept.
        assert_eq!(analyses.get_or(Some(FileKey { size: 0, ..key().unwrap() }), || Err(())), Err(()));
        assert_eq!(analyses.get_or(key(), &mut analyse), Ok(2));
        // A file that cannot be identified is never taken for another.
        assert_eq!(analyses.get_or(None, &mut analyse), Ok(3));
        assert_eq!(analyses.get_or(None, &mut analyse), Ok(4));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
