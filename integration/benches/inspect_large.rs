//! Time and peak memory of a full `gort inspect` (release build) on a large
//! real-world Go binary, cold (page cache dropped, when root) and warm,
//! unstripped and stripped. Peak RSS comes from GNU time.
//!
//! `cargo bench -p gort-integration --bench inspect_large`

use std::{path::Path, process::Command};

use gort_integration::{large_go_binary, workspace_root};

fn release_gort() -> std::path::PathBuf {
    let status = Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        .args(["build", "--release", "-q", "-p", "gort", "--bin", "gort"])
        .status()
        .unwrap();
    assert!(status.success());
    workspace_root().join("target/release/gort")
}

fn drop_page_cache() -> bool {
    Command::new("sync").status().is_ok_and(|s| s.success())
        && std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

/// (seconds, peak RSS in MB) of one run.
fn measure(gort: &Path, binary: &Path) -> (f64, f64) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%e %M"])
        .arg(gort)
        .args(["inspect", "--json"])
        .arg(binary)
        .output()
        .expect("/usr/bin/time (GNU time; scripts/setup installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stderr);
    let mut f = text.split_whitespace();
    let secs: f64 = f.next().unwrap().parse().unwrap();
    let kb: f64 = f.next().unwrap().parse().unwrap();
    (secs, kb / 1024.0)
}

fn main() {
    let gort = release_gort();
    let (binary, stripped) = large_go_binary();
    println!("inspect_large: gort inspect --json, release build, 3 runs each (median)");
    println!("{:<34} {:>9} {:>8} {:>10} {:>12}", "binary", "size MB", "cache", "seconds", "peak RSS MB");
    for path in [&binary, &stripped] {
        let size = std::fs::metadata(path).unwrap().len() as f64 / 1048576.0;
        for cold in [true, false] {
            let mut runs: Vec<(f64, f64)> = (0..3)
                .map(|_| {
                    if cold && !drop_page_cache() {
                        eprintln!("cannot drop the page cache (not root?): 'cold' runs are warm");
                    }
                    measure(&gort, path)
                })
                .collect();
            runs.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (secs, rss) = runs[1];
            let name = path.file_name().unwrap().to_string_lossy();
            let cache = if cold { "cold" } else { "warm" };
            println!("{name:<34} {size:>9.1} {cache:>8} {secs:>10.2} {rss:>12.1}");
        }
    }
}
