//! `--otlp-json`: a copy of everything the pipeline forwards upstream (the
//! service's spans as enriched, its metrics and logs, gort's own metrics
//! and wait profiles), one `Export*ServiceRequest` per line in the
//! Collector file exporter's format, written as each request enters the
//! queue.

use std::{
    fs,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    sync::Mutex,
};

use super::Payload;

pub struct JsonTap {
    path: PathBuf,
    out: Mutex<Option<BufWriter<fs::File>>>,
}

impl JsonTap {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let file = fs::File::create(path)?;
        Ok(Self { path: path.to_owned(), out: Mutex::new(Some(BufWriter::new(file))) })
    }

    /// Appends one request. A write error is said once and ends the copy
    /// (the requests still go upstream).
    pub fn write(&self, payload: &Payload) {
        let mut out = self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(w) = out.as_mut() else { return };
        // Bytes forwarded unchanged are decoded again for the copy alone.
        let Some(payload) = payload.decoded() else {
            log::error!("{}: a request kept as bytes no longer decodes; not copied", self.path.display());
            return;
        };
        let written = match payload.as_ref() {
            Payload::Traces(r) => gort_proto::write_json_line(w, r),
            Payload::Metrics(r) => gort_proto::write_json_line(w, r),
            Payload::Logs(r) => gort_proto::write_json_line(w, r),
            Payload::Profiles(r) => gort_proto::write_profiles_json_line(w, r),
            // `decoded` returns no bytes.
            Payload::Raw(_) => Ok(()),
        }
        .and_then(|()| w.flush());
        if let Err(e) = written {
            log::error!("{}: {e}; no more is written there (forwarding goes on)", self.path.display());
            *out = None;
        }
    }
}
