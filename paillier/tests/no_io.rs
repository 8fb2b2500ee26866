//! A cheap guard for the maths-crate invariant: this crate does no I/O. Its
//! sources name no sockets, files, processes, environment or terminal, and
//! it depends on no crate outside a vetted list (none of which does I/O,
//! except `rand`'s seeding from the operating system's entropy source).

use std::path::{Path, PathBuf};

const FORBIDDEN: &[&str] = &[
    "std::net",
    "std::fs",
    "std::io",
    "std::process",
    "std::env",
    "rustls",
    "TcpStream",
    "print!",
    "println!",
    "eprint!",
    "eprintln!",
    "dbg!",
    "stdout",
    "stderr",
];

const ALLOWED_DEPENDENCIES: &[&str] = &[
    "num-bigint",
    "num-integer",
    "num-traits",
    "rand",
    "rayon",
    "serde_json",
    "subtle",
    "thiserror",
    "zeroize",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn sources_do_no_io() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    assert!(files.len() >= 10, "found only {files:?}");
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (line_no, line) in text.lines().enumerate() {
            for word in FORBIDDEN {
                if line.contains(word) {
                    found.push(format!("{}:{}: {word}", file.display(), line_no + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "I/O in a maths crate:\n{}",
        found.join("\n")
    );
}

#[test]
fn dependencies_are_vetted() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let mut section = "";
    let mut deps = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[dependencies]" && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['.', '=', ' ']).next().unwrap();
            deps.push(name.to_string());
        }
    }
    assert!(deps.iter().any(|d| d == "num-bigint"), "parsed {deps:?}");
    let unvetted: Vec<&String> = deps
        .iter()
        .filter(|d| !ALLOWED_DEPENDENCIES.contains(&d.as_str()))
        .collect();
    assert!(
        unvetted.is_empty(),
        "new dependencies of a maths crate (check they do no I/O, then list them here): {unvetted:?}"
    );
}
