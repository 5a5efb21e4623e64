//! The core does no I/O and has no clock, randomness or locks: its sources never name them
//! (`Arc` aside, see `ALLOWED`), and its manifest depends on `bytes` alone.

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "std::time",
    "Instant",
    "SystemTime",
    "rand",
    "std::thread",
    "std::net",
    "std::fs",
    "tokio",
    "std::sync",
    "std::env",
    "std::process",
];

/// Named although under a forbidden path: `Arc` is shared ownership of an immutable value (a
/// slot's batch, shared by the log, the write, the accepts and the executor), as `Bytes` is;
/// it neither blocks, schedules nor reads the outside world. Anything else of `std::sync` (a
/// lock, a channel, an atomic) stays out.
const ALLOWED: &[&str] = &["std::sync::Arc"];

fn sources(dir: &Path, found: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push((path.display().to_string(), std::fs::read_to_string(&path).expect("read")));
        }
    }
}

/// Words of the source, so that "rand" matches the crate and not "operand".
fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).collect()
}

/// Every forbidden name the text uses.
fn violations(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for word in words(text).into_iter().filter(|w| !ALLOWED.contains(w)) {
        for bad in FORBIDDEN {
            let hit = word == *bad
                || word.starts_with(&format!("{bad}::"))
                || word.contains(&format!("::{bad}"));
            if hit {
                found.push(format!("`{bad}` in `{word}`"));
            }
        }
    }
    found
}

#[test]
fn the_scan_finds_what_it_forbids() {
    assert_eq!(violations("use std::time::Instant;").len(), 2);
    assert_eq!(violations("let r = rand::random();").len(), 1);
    assert!(violations("let operand = brand_new; // std::timeout").is_empty());
    assert!(violations("use std::sync::Arc;").is_empty());
    assert_eq!(violations("use std::sync::Mutex;").len(), 1);
    assert_eq!(violations("use std::sync::{Arc, Mutex};").len(), 1);
    assert_eq!(violations("use std::sync::atomic::AtomicU64;").len(), 1);
}

#[test]
fn the_core_names_no_clock_randomness_thread_socket_or_file() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() >= 5, "sources not found");
    for (path, text) in &files {
        let found = violations(text);
        assert!(found.is_empty(), "{path}: {found:?}");
    }
}

#[test]
fn the_core_depends_on_bytes_alone() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .expect("read Cargo.toml");
    let deps = manifest.split("[dependencies]").nth(1).expect("a [dependencies] table");
    let deps = deps.split("\n[").next().unwrap_or("");
    let names: Vec<&str> = deps
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(['=', '.', ' ']).next().unwrap_or(""))
        .collect();
    assert_eq!(names, vec!["bytes"], "the core's dependencies");
}
