//! ARCHITECTURE.md's table of crate dependencies is checked against the manifests: a new edge
//! between workspace crates (or one removed) must show in the document a newcomer reads first,
//! or this test fails. The table is the truth the diagram above it draws in layers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Edges = BTreeMap<String, BTreeSet<String>>;

/// The workspace crates each crate's `[dependencies]` section names (dev- and
/// build-dependencies are left out: they do not shape the design).
fn manifest_edges(crates: &Path) -> Edges {
    let mut names = BTreeSet::new();
    let mut manifests = Vec::new();
    for dir in std::fs::read_dir(crates).expect("list crates").flatten() {
        let manifest = dir.path().join("Cargo.toml");
        if manifest.exists() {
            names.insert(dir.file_name().to_string_lossy().to_string());
            manifests.push((dir.file_name().to_string_lossy().to_string(), manifest));
        }
    }
    let mut edges = Edges::new();
    for (name, manifest) in manifests {
        let text = std::fs::read_to_string(&manifest).expect("read manifest");
        edges.insert(name.clone(), dependencies_named(&text, &names));
    }
    edges
}

/// The keys of the `[dependencies]` section that are among `names`.
fn dependencies_named(manifest: &str, names: &BTreeSet<String>) -> BTreeSet<String> {
    let mut in_section = false;
    let mut found = BTreeSet::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == "[dependencies]";
            continue;
        }
        if !in_section || line.starts_with('#') {
            continue;
        }
        let key: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if names.contains(&key) {
            found.insert(key);
        }
    }
    found
}

/// The rows of the `| crate | depends on |` table of a markdown document.
fn documented_edges(doc: &str) -> Edges {
    let mut edges = Edges::new();
    let mut in_table = false;
    for line in doc.lines() {
        if line.starts_with("| crate | depends on |") {
            in_table = true;
            continue;
        }
        if !in_table || line.starts_with("| ---") {
            continue;
        }
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let unquote = |s: &str| s.trim_matches('`').to_string();
        let deps = cells[2]
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty() && *d != "(none)")
            .map(unquote)
            .collect();
        edges.insert(unquote(cells[1]), deps);
    }
    edges
}

/// Every disagreement between the document's table and the manifests, one per line.
fn disagreements(documented: &Edges, actual: &Edges) -> Vec<String> {
    let mut out = Vec::new();
    for (krate, deps) in actual {
        match documented.get(krate) {
            None => out.push(format!("{krate} is not in the table")),
            Some(doc) => {
                for d in deps.difference(doc) {
                    out.push(format!("{krate} depends on {d}, which the table does not say"));
                }
                for d in doc.difference(deps) {
                    out.push(format!("the table says {krate} depends on {d}; it does not"));
                }
            }
        }
    }
    for krate in documented.keys().filter(|k| !actual.contains_key(*k)) {
        out.push(format!("the table lists {krate}, which is not a workspace crate"));
    }
    out
}

fn workspace() -> (Edges, Edges) {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("crates folder");
    let doc = std::fs::read_to_string(crates.parent().expect("root").join("ARCHITECTURE.md"))
        .expect("read ARCHITECTURE.md");
    (documented_edges(&doc), manifest_edges(crates))
}

#[test]
fn architecture_md_lists_every_dependency_between_crates() {
    let (documented, actual) = workspace();
    assert!(actual.len() >= 10, "found only {} crates: is the layout new?", actual.len());
    let found = disagreements(&documented, &actual);
    assert!(
        found.is_empty(),
        "ARCHITECTURE.md's crate table is out of date:\n{}",
        found.join("\n")
    );
}

/// The check can fail: a table that misses an edge, claims one that is not there, or misses
/// a crate is reported.
#[test]
fn a_stale_table_is_found() {
    let (mut documented, actual) = workspace();
    documented.get_mut("rsl-kv").expect("rsl-kv row").remove("rsl-net");
    documented.get_mut("rsl-core").expect("rsl-core row").insert("rsl-net".into());
    documented.remove("rsl-bench");
    let found = disagreements(&documented, &actual);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found.iter().any(|f| f.contains("rsl-kv depends on rsl-net")), "{found:?}");
    assert!(found.iter().any(|f| f.contains("rsl-core depends on rsl-net; it does not")));
    assert!(found.iter().any(|f| f.contains("rsl-bench is not in the table")));
}
