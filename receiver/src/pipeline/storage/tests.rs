use std::time::Duration;

use gort_proto::{
    trace::{ResourceSpans, ScopeSpans, Span},
    trace_service::ExportTraceServiceRequest,
};

use super::*;

fn spans(names: &[&str]) -> Payload {
    Payload::Traces(ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: names.iter().map(|n| Span { name: (*n).to_owned(), ..Default::default() }).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
}

fn append(s: &Storage, p: &Payload) -> Result<Mark, StorageError> {
    s.append(p, p.encoded_len())
}

fn names(p: &Payload) -> Vec<String> {
    // Replayed requests come back as their bytes.
    let p = p.decoded().expect("a replayed request decodes");
    let Payload::Traces(r) = p.as_ref() else { panic!("not traces") };
    r.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.name.clone())
        .collect()
}

fn config(dir: &Path, max_bytes: u64) -> StorageConfig {
    StorageConfig { directory: dir.to_owned(), max_bytes, sync_interval: Duration::from_secs(1) }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

/// Everything left in `dir`, as a new run reads it.
fn replay(dir: &Path) -> (Storage, Vec<Vec<String>>) {
    let (s, left) = Storage::open(&config(dir, 1 << 30)).unwrap();
    let got = left
        .iter()
        .flat_map(|id| s.read_segment(*id))
        .map(|(_, p)| {
            assert!(matches!(p, Payload::Raw(_)), "a replayed request is kept as its bytes");
            names(&p)
        })
        .collect();
    (s, got)
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gort-storage-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn what_was_not_done_is_replayed_in_order_and_done_records_are_gone() {
    let dir = tempdir("replay");
    {
        let (s, left) = Storage::open(&config(&dir, 64 << 20)).unwrap();
        assert!(left.is_empty());
        let early = append(&s, &spans(&["early"])).unwrap();
        s.done(&[early]);
        assert!(segments(&dir).is_empty(), "a segment all done is deleted, even the one being written");
        let a = append(&s, &spans(&["a1", "a2"])).unwrap();
        let _b = append(&s, &spans(&["b"])).unwrap();
        let _c = append(&s, &spans(&["c"])).unwrap();
        s.done(&[a]);
        // Killed here: b and c were acknowledged and never delivered.
    }
    let (s, got) = replay(&dir);
    // At least once: a shares b's and c's segment, so a comes back too.
    assert_eq!(got, [vec!["a1", "a2"], vec!["b"], vec!["c"]]);
    assert_eq!(s.stats.damaged.load(Ordering::Relaxed), 0);
    // Done with all three: the old segment is deleted.
    let marks: Vec<Mark> = vec![Mark(2); 3];
    s.done(&marks);
    assert!(segments(&dir).is_empty(), "{:?}", segments(&dir));
    assert_eq!(s.disk_bytes(), 0);
    drop(s);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn concurrent_appends_are_whole_records() {
    let dir = tempdir("concurrent");
    {
        // 1 MiB bound: segments of 256 KiB, so writers also meet rotations.
        let (s, _) = Storage::open(&config(&dir, 1 << 20)).unwrap();
        let pad = "y".repeat(1_000);
        std::thread::scope(|scope| {
            for t in 0..4 {
                let (s, pad) = (&s, &pad);
                scope.spawn(move || {
                    for i in 0..100 {
                        append(s, &spans(&[&format!("{t}-{i}"), pad])).unwrap();
                    }
                });
            }
        });
    }
    let (s, got) = replay(&dir);
    assert_eq!(s.stats.damaged.load(Ordering::Relaxed), 0);
    let mut firsts: Vec<String> = got.iter().map(|names| names[0].clone()).collect();
    assert!(got.iter().all(|names| names.len() == 2));
    firsts.sort();
    let mut want: Vec<String> = (0..4).flat_map(|t| (0..100).map(move |i| format!("{t}-{i}"))).collect();
    want.sort();
    assert_eq!(firsts, want);
    drop(s);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn full_segments_close_and_are_deleted_once_done() {
    let dir = tempdir("segments");
    // 4 MiB bound: segments of 1 MiB; 100 KB requests.
    let (s, _) = Storage::open(&config(&dir, 4 << 20)).unwrap();
    let big = "x".repeat(100_000);
    let marks: Vec<Mark> = (0..25).map(|_| append(&s, &spans(&[&big])).unwrap()).collect();
    assert!(segments(&dir).len() >= 3, "{:?}", segments(&dir));
    // The bound: 40 more would pass 4 MiB.
    let refused = (0..40).map(|_| append(&s, &spans(&[&big]))).find_map(Result::err);
    assert!(matches!(refused, Some(StorageError::Full { .. })), "{refused:?}");
    let all = s.disk_bytes();
    s.done(&marks);
    assert!(s.disk_bytes() < all, "done segments leave the disk");
    assert!(segments(&dir).len() <= 2, "only the open segment(s) remain: {:?}", segments(&dir));
    drop(s);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_directory_has_one_gort() {
    let dir = tempdir("lock");
    let (first, _) = Storage::open(&config(&dir, 1 << 20)).unwrap();
    let second = Storage::open(&config(&dir, 1 << 20));
    assert!(matches!(second, Err(StorageError::Locked { .. })), "{second:?}");
    drop(first);
    assert!(Storage::open(&config(&dir, 1 << 20)).is_ok(), "the lock goes with its holder");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn damaged_and_cut_records_are_counted_and_the_rest_replayed() {
    let dir = tempdir("damage");
    {
        let (s, _) = Storage::open(&config(&dir, 64 << 20)).unwrap();
        for n in ["one", "two", "three", "four"] {
            append(&s, &spans(&[n])).unwrap();
        }
    }
    let path = &segments(&dir)[0];
    let mut bytes = std::fs::read(path).unwrap();
    let record = bytes.len() / 4;
    // A flipped byte in the second record's body; the last record cut.
    bytes[record + record / 2 + 5] ^= 0xff;
    bytes.truncate(bytes.len() - 3);
    std::fs::write(path, &bytes).unwrap();
    let (s, got) = replay(&dir);
    assert_eq!(got, [vec!["one"], vec!["three"]]);
    assert_eq!(s.stats.damaged.load(Ordering::Relaxed), 1);
    assert_eq!(s.stats.truncated.load(Ordering::Relaxed), 1);
    drop(s);
    std::fs::remove_dir_all(&dir).unwrap();
}
