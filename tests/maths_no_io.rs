//! The maths-crate invariant, checked in one place for every crate it
//! covers: their sources (outside `#[cfg(test)]` modules) name no sockets,
//! files, processes, environment or terminal, and they depend on no crate
//! outside a vetted list (none of which does I/O, except `rand`'s seeding
//! from the operating system's entropy source). `wire` is here too: it
//! parses the bytes it is handed and reads none itself.
//!
//! A cheap guard, not a proof: it reads text. Adding a maths crate means
//! adding a line to `CRATES`.

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

/// Each maths crate and the dependencies vetted for it.
const CRATES: &[(&str, &[&str])] = &[
    (
        "sharing",
        &[
            "aes",
            "ctr",
            "plan",
            "rand",
            "rand_chacha",
            "rayon",
            "serde",
            "thiserror",
            "zeroize",
        ],
    ),
    (
        "paillier",
        &[
            "num-bigint",
            "num-integer",
            "num-traits",
            "rand",
            "rayon",
            "serde_json",
            "subtle",
            "thiserror",
            "zeroize",
        ],
    ),
    ("wire", &["num-bigint", "sharing", "thiserror"]),
    // Not maths, but pure in the same way: the importer reads the bytes and
    // external data it is handed (`cli` reads the files).
    ("onnx", &["compiler", "grammar", "plan", "prost"]),
    (
        "ot",
        &[
            "aes",
            "curve25519-dalek",
            "rand",
            "sha2",
            "subtle",
            "thiserror",
            "zeroize",
        ],
    ),
    (
        "rlwe",
        &[
            "thiserror",
            "rand",
            "aes",
            "ctr",
            "zeroize",
            "num-bigint",
            "num-traits",
        ],
    ),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

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

/// The I/O names in `text` before its first `#[cfg(test)]` (test modules
/// sit at the end of a file and may print why they skip).
fn io_in(text: &str) -> Vec<(usize, &'static str)> {
    text.lines()
        .take_while(|l| !l.trim_start().starts_with("#[cfg(test)]"))
        .enumerate()
        .flat_map(|(n, line)| {
            FORBIDDEN
                .iter()
                .filter(move |w| line.contains(**w))
                .map(move |w| (n + 1, *w))
        })
        .collect()
}

#[test]
fn the_guard_sees_io_and_skips_test_modules() {
    assert_eq!(io_in("use std::fs;\nfn f() {}\n"), vec![(1, "std::fs")]);
    assert!(io_in("fn f() {}\n#[cfg(test)]\nmod tests { fn g() { println!(); } }\n").is_empty());
}

#[test]
fn maths_crates_do_no_io() {
    let mut found = Vec::new();
    for (name, _) in CRATES {
        let mut files = Vec::new();
        sources(&workspace().join(name).join("src"), &mut files);
        assert!(!files.is_empty(), "no sources found for {name}");
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            for (line, word) in io_in(&text) {
                found.push(format!("{}:{line}: {word}", file.display()));
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
fn maths_crates_depend_only_on_vetted_crates() {
    for (name, allowed) in CRATES {
        let manifest = std::fs::read_to_string(workspace().join(name).join("Cargo.toml")).unwrap();
        let mut section = "";
        let mut deps = Vec::new();
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line;
            } else if section == "[dependencies]" && !line.is_empty() && !line.starts_with('#') {
                deps.push(line.split(['.', '=', ' ']).next().unwrap().to_string());
            }
        }
        assert!(!deps.is_empty(), "parsed no dependencies of {name}");
        let unvetted: Vec<&String> = deps
            .iter()
            .filter(|d| !allowed.contains(&d.as_str()))
            .collect();
        assert!(
            unvetted.is_empty(),
            "new dependencies of the maths crate {name} (check they do no I/O, then list them here): {unvetted:?}"
        );
    }
}
