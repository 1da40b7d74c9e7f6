//! The rooms of `receiver/src` import one another in one direction only:
//! each room may use the rooms after it in `ORDER`, never one before it, so
//! no import cycle can form. ARCHITECTURE.md names the same order.

use std::{collections::BTreeSet, fs, path::Path};

const ORDER: &[&str] = &[
    "cli",
    "session",
    "features",
    "pipeline",
    "config",
    "linkage",
    "export",
    "dump",
    "telemetry",
    "bpf",
    "target",
];

/// The rooms a source file names through `crate::`: `crate::room::...` paths
/// and the top-level items of `use crate::{...}` groups.
fn rooms_used(source: &str) -> BTreeSet<String> {
    // Test modules may reach anywhere.
    let source = source.split("#[cfg(test)]").next().unwrap_or(source);
    let mut used = BTreeSet::new();
    let mut rest = source;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group, up to its closing brace.
            let (mut depth, mut item_start) = (0usize, true);
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        rest = &group[k..];
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_ascii_alphabetic() || c == '_') => {
                        let name: String = group[k..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        used.insert(name);
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            used.insert(name);
        }
    }
    used
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn rooms_import_only_the_rooms_after_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut rooms: Vec<String> = fs::read_dir(&src)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            p.is_dir().then(|| p.file_name().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    rooms.sort();
    let mut listed: Vec<String> = ORDER.iter().map(|r| (*r).to_owned()).collect();
    listed.sort();
    assert_eq!(rooms, listed, "a room of receiver/src is missing from ORDER (and ARCHITECTURE.md)");
    let mut wrong = Vec::new();
    for (rank, room) in ORDER.iter().enumerate() {
        let mut sources = Vec::new();
        files(&src.join(room), &mut sources);
        for file in sources {
            for used in rooms_used(&fs::read_to_string(&file).unwrap()) {
                match ORDER.iter().position(|r| *r == used) {
                    Some(r) if r < rank => wrong.push(format!("{} uses {used}", file.display())),
                    _ => {}
                }
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the room order: {wrong:#?}");
}

#[test]
fn the_checker_sees_grouped_and_plain_paths() {
    let used = rooms_used(
        "use crate::{\n    bpf::{Probes, probes::Site},\n    export,\n};\nfn f() { crate::target::x(); }",
    );
    assert_eq!(used, ["bpf", "export", "target"].into_iter().map(String::from).collect());
}
