//! Files gort reads again while it runs: TLS certificates, keys and CAs
//! (cert-manager rotates them) and bearer tokens (a Kubernetes Secret is
//! updated by swapping a symlink). One loop for all of them: every
//! interval the files are read, and when their contents differ from those
//! last applied, `apply` builds what they configure. A file caught
//! half-written fails to apply: what is in force stays, the failure is
//! logged once per content, and the next change tries again.

use std::{fmt::Display, path::PathBuf, time::Duration};

/// What one look at the files found.
#[derive(Debug, PartialEq, Eq)]
enum Check {
    Unchanged,
    Applied,
    Refused(String),
}

struct Watched {
    files: Vec<PathBuf>,
    applied: Vec<Option<Vec<u8>>>,
    /// Contents `apply` refused, not tried again until they change.
    refused: Option<Vec<Option<Vec<u8>>>>,
}

impl Watched {
    /// The files as they are now count as applied.
    fn new(files: Vec<PathBuf>) -> Self {
        let mut w = Self { files, applied: Vec::new(), refused: None };
        w.applied = w.contents();
        w
    }

    fn contents(&self) -> Vec<Option<Vec<u8>>> {
        self.files.iter().map(|f| std::fs::read(f).ok()).collect()
    }

    fn check<E: Display>(&mut self, apply: &mut impl FnMut() -> Result<(), E>) -> Check {
        let now = self.contents();
        if now == self.applied || self.refused.as_ref() == Some(&now) {
            return Check::Unchanged;
        }
        match apply() {
            Ok(()) => {
                self.applied = now;
                self.refused = None;
                Check::Applied
            }
            Err(e) => {
                self.refused = Some(now);
                Check::Refused(e.to_string())
            }
        }
    }
}

/// Watches `files` every `interval` until `stop`; `what` names them in the
/// log ("receiver TLS files"), `effect` says what an applied change does.
pub async fn watch_files<E: Display>(
    files: Vec<PathBuf>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    what: String,
    effect: &'static str,
    mut apply: impl FnMut() -> Result<(), E>,
) {
    let mut watched = Watched::new(files);
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        match watched.check(&mut apply) {
            Check::Unchanged => {}
            Check::Applied => log::info!("{what} changed: {effect}"),
            Check::Refused(e) => {
                log::warn!("{what} changed but cannot be used yet ({e}); what was in force stays");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_applied_once_and_a_refused_content_is_not_retried() {
        let dir = std::env::temp_dir().join(format!("gort-watch-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::write(&a, "one").unwrap();
        let mut watched = Watched::new(vec![a.clone(), b.clone()]);
        let mut calls = 0;
        let mut ok = |calls: &mut u32, result: Result<(), &str>| {
            let mut apply = || {
                *calls += 1;
                result
            };
            watched.check(&mut apply)
        };
        assert_eq!(ok(&mut calls, Ok(())), Check::Unchanged);
        // A file that appears is a change, as is one that changes.
        std::fs::write(&b, "x").unwrap();
        assert_eq!(ok(&mut calls, Ok(())), Check::Applied);
        assert_eq!(ok(&mut calls, Ok(())), Check::Unchanged);
        std::fs::write(&a, "half").unwrap();
        assert_eq!(ok(&mut calls, Err("no key")), Check::Refused("no key".into()));
        assert_eq!(ok(&mut calls, Err("no key")), Check::Unchanged, "refused content retried");
        std::fs::write(&a, "two").unwrap();
        assert_eq!(ok(&mut calls, Ok(())), Check::Applied);
        // Back to what was refused: a change again, so tried again.
        std::fs::write(&a, "half").unwrap();
        assert_eq!(ok(&mut calls, Ok(())), Check::Applied);
        assert_eq!(calls, 4);
        let _ = std::fs::remove_dir_all(dir);
    }
}
