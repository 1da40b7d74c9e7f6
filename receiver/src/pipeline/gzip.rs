//! gzip for outgoing batches, with deflate states kept for the next batch.
//!
//! A deflate state (zlib-rs, level 1) is one allocation of about 370 KiB.
//! Made afresh for every batch, it was gort's largest allocation under load
//! (about 47 a second at 40,000 spans/s); glibc serves the first one with
//! mmap and, once it is freed, raises its mmap and trim thresholds to that
//! size, so from then on every buffer below it stays in the heap arenas of
//! the threads that used it. Kept and reset instead, the state is allocated
//! once per concurrent send.

use std::{
    io::{self, Write},
    sync::{Mutex, PoisonError},
};

use flate2::{Compression, Crc, write::DeflateEncoder};

/// gzip's fastest level. The upstream is a Collector next door or across a
/// data-centre link, and CPU is what a sidecar pays for on every instance:
/// on a batch of 8,000 SDK-like spans level 1 took 3.1 ms where tonic's
/// fixed level 6 took 11.0, for output 13% larger (README, "Pass-through").
pub const GZIP_LEVEL: u32 = 1;

/// A gzip member's header (RFC 1952): deflate, no flags, no time, no extra
/// flags, operating system unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// Deflate states not in use: one per batch being compressed at once, at
/// most (the forwarder's concurrent sends).
#[derive(Default)]
pub struct Compressors {
    idle: Mutex<Vec<DeflateEncoder<Vec<u8>>>>,
}

impl Compressors {
    /// `chunks` as one gzip member, appended to `out`.
    pub fn gzip<'a>(
        &self,
        mut out: Vec<u8>,
        chunks: impl IntoIterator<Item = &'a [u8]>,
    ) -> io::Result<Vec<u8>> {
        let taken = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut deflate =
            taken.unwrap_or_else(|| DeflateEncoder::new(Vec::new(), Compression::new(GZIP_LEVEL)));
        out.extend_from_slice(&HEADER);
        // A reset ends the stream in the writer it replaces (an empty one
        // for a new state) and starts a new one in `out`.
        deflate.reset(out)?;
        let mut crc = Crc::new();
        for chunk in chunks {
            deflate.write_all(chunk)?;
            crc.update(chunk);
        }
        let mut out = deflate.reset(Vec::new())?;
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&crc.amount().to_le_bytes());
        // Only a state whose stream ended cleanly goes back: one that failed
        // half-way is dropped with its stream.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).push(deflate);
        Ok(out)
    }

    /// States kept for reuse.
    #[cfg(test)]
    fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// One gzip stream's contents, for tests of what gort compresses.
#[cfg(test)]
pub(crate) fn gunzip(compressed: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    io::Read::read_to_end(&mut flate2::read::GzDecoder::new(compressed), &mut out).unwrap();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_batch_is_one_whole_gzip_member_and_the_state_is_reused() {
        let gz = Compressors::default();
        let first: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let out = gz.gzip(b"prefix".to_vec(), [&first[..100], &first[100..]]).unwrap();
        assert_eq!(&out[..6], b"prefix");
        assert_eq!(gunzip(&out[6..]), first);
        assert_eq!(gz.idle(), 1);

        // The reused state carries nothing of the first batch over.
        let out = gz.gzip(Vec::new(), [&b"second"[..]]).unwrap();
        assert_eq!(gunzip(&out), b"second");
        assert_eq!(gz.idle(), 1, "one state, taken and put back");

        let out = gz.gzip(Vec::new(), std::iter::empty()).unwrap();
        assert_eq!(gunzip(&out), b"");
    }
}
