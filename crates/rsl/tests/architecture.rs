//! The architecture's import rule, checked on every crate of the workspace: the modules of a
//! crate import each other in one direction, never in a circle. A module that imports its
//! caller back is a sign the boundary is in the wrong place (ARCHITECTURE.md, "Invariants").
//!
//! The check reads the sources, not the compiler: for every top-level module of a crate root
//! (`lib.rs`, `main.rs`, `src/bin/*.rs`) it collects the modules its files name through
//! `crate::` (in `use` lines, groups included, and in paths in code) or `super::` from the
//! top level, resolving names the root re-exports (`pub use module::Item`) to the module that
//! defines them, and fails on any strongly connected set of two or more modules. Unit tests
//! are left out: a test may use a sibling module as a fixture without shaping the design.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Import circles known to exist in crates other teams are fixing, as sets of module names.
/// An entry that no longer matches a circle fails the test too, so the list only shrinks.
const KNOWN_CIRCLES: &[(&str, &[&str])] = &[];

/// A directed graph of a crate root's top-level modules, with the place each edge was seen.
#[derive(Debug, Default)]
struct Graph {
    edges: BTreeMap<String, BTreeMap<String, String>>,
}

impl Graph {
    fn add(&mut self, from: &str, to: &str, place: String) {
        if from != to {
            self.edges.entry(from.into()).or_default().entry(to.into()).or_insert(place);
        }
        self.edges.entry(to.into()).or_default();
    }

    /// Strongly connected sets of two or more modules (Tarjan's algorithm).
    fn circles(&self) -> Vec<BTreeSet<String>> {
        struct Walk<'a> {
            graph: &'a Graph,
            index: BTreeMap<&'a str, usize>,
            low: BTreeMap<&'a str, usize>,
            stack: Vec<&'a str>,
            on_stack: BTreeSet<&'a str>,
            found: Vec<BTreeSet<String>>,
        }
        impl<'a> Walk<'a> {
            fn visit(&mut self, v: &'a str) {
                let i = self.index.len();
                self.index.insert(v, i);
                self.low.insert(v, i);
                self.stack.push(v);
                self.on_stack.insert(v);
                for w in self.graph.edges[v].keys() {
                    let w = w.as_str();
                    if !self.index.contains_key(w) {
                        self.visit(w);
                        let low = self.low[v].min(self.low[w]);
                        self.low.insert(v, low);
                    } else if self.on_stack.contains(w) {
                        let low = self.low[v].min(self.index[w]);
                        self.low.insert(v, low);
                    }
                }
                if self.low[v] == self.index[v] {
                    let mut set = BTreeSet::new();
                    loop {
                        let w = self.stack.pop().expect("v is on the stack");
                        self.on_stack.remove(w);
                        set.insert(w.to_string());
                        if w == v {
                            break;
                        }
                    }
                    if set.len() > 1 {
                        self.found.push(set);
                    }
                }
            }
        }
        let mut walk = Walk {
            graph: self,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            found: Vec::new(),
        };
        for v in self.edges.keys() {
            if !walk.index.contains_key(v.as_str()) {
                walk.visit(v);
            }
        }
        walk.found
    }

    /// The edges inside `set`, with where each was seen, for the failure message.
    fn explain(&self, set: &BTreeSet<String>) -> String {
        let mut out = String::new();
        for from in set {
            for (to, place) in &self.edges[from] {
                if set.contains(to) {
                    out.push_str(&format!("    {from} -> {to}  ({place})\n"));
                }
            }
        }
        out
    }
}

/// Source text with `//` comments removed (doc comments name modules without importing them)
/// and without its unit tests (an inline `#[cfg(test)] mod` runs to the end of the file by
/// the project's convention): a test may use a sibling module as a fixture.
fn code_of(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let tests = lines.windows(2).position(|w| {
        w[0].trim() == "#[cfg(test)]" && w[1].trim_start().starts_with("mod ") && w[1].contains('{')
    });
    lines[..tests.unwrap_or(lines.len())]
        .iter()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The first path segment of every item in a `{...}` group starting at `s[0] == '{'`.
fn group_heads(s: &str) -> Vec<&str> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut start = 1;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    heads.push(s[start..i].trim());
                    break;
                }
            }
            ',' if depth == 1 => {
                heads.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    heads.into_iter().map(ident_at).filter(|h| !h.is_empty()).collect()
}

/// Names of the crate level that `code` refers to, each with its line, for a file `depth`
/// modules below the root (`super::` that many times reaches the root).
fn crate_names(code: &str, depth: usize) -> Vec<(String, usize)> {
    let mut names = Vec::new();
    let up = "super::".repeat(depth);
    for (n, line) in code.lines().enumerate() {
        for prefix in ["crate::", up.as_str()] {
            let mut rest = line;
            while let Some(at) = rest.find(prefix) {
                let before = rest[..at].chars().next_back();
                let after = &rest[at + prefix.len()..];
                rest = after;
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == ':') {
                    continue;
                }
                if prefix != "crate::" && after.starts_with("super::") {
                    continue;
                }
                if after.starts_with('{') {
                    names.extend(group_heads(after).into_iter().map(|h| (h.to_string(), n + 1)));
                } else {
                    let head = ident_at(after);
                    if !head.is_empty() {
                        names.push((head.to_string(), n + 1));
                    }
                }
            }
        }
    }
    names
}

/// Modules a root file declares (`mod x;`, `pub mod x;`, `pub(crate) mod x;`, with or without
/// attributes), and what it re-exports (`pub use x::Item` and groups): item -> module.
fn root_layout(root: &str) -> (BTreeSet<String>, BTreeMap<String, String>) {
    let code = code_of(root);
    let mut modules = BTreeSet::new();
    let mut reexports = BTreeMap::new();
    for statement in code.split(';') {
        let s = statement.split(']').next_back().unwrap_or(statement).trim();
        let s = s.trim_start_matches("pub(crate)").trim_start_matches("pub").trim();
        if let Some(name) = s.strip_prefix("mod ") {
            let name = ident_at(name.trim());
            if !name.is_empty() && !s.contains('{') {
                modules.insert(name.to_string());
            }
        } else if let Some(path) = s.strip_prefix("use ") {
            let path = path.trim().trim_start_matches("crate::").trim_start_matches("self::");
            let module = ident_at(path);
            let rest = &path[module.len()..];
            let Some(rest) = rest.strip_prefix("::") else { continue };
            if rest.starts_with('{') {
                for item in group_items(rest) {
                    reexports.insert(item, module.to_string());
                }
            } else {
                let last = rest.rsplit("::").next().unwrap_or(rest);
                let last = last.rsplit(" as ").next().unwrap_or(last).trim();
                reexports.insert(ident_at(last).to_string(), module.to_string());
            }
        }
    }
    (modules, reexports)
}

/// The names a `{...}` group brings into scope (the last segment of each item, or its alias).
fn group_items(s: &str) -> Vec<String> {
    let inner = &s[1..s.rfind('}').unwrap_or(s.len())];
    let mut items = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    items.push(current);
    let mut names = Vec::new();
    for item in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
        if let Some(at) = item.find('{') {
            names.extend(group_items(&item[at..]));
            continue;
        }
        let last = item.rsplit("::").next().unwrap_or(item);
        let last = last.rsplit(" as ").next().unwrap_or(last).trim();
        names.push(ident_at(last).to_string());
    }
    names
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module graph of one crate root (`src/lib.rs`, `src/main.rs` or `src/bin/x.rs`).
fn root_graph(src: &Path, root: &Path) -> Graph {
    let (modules, reexports) = root_layout(&std::fs::read_to_string(root).expect("read root"));
    let mut graph = Graph::default();
    // A binary under src/bin/ keeps its modules beside it, in src/bin/.
    let base = root.parent().expect("root has a parent");
    for module in &modules {
        let mut files = Vec::new();
        for file in [base.join(format!("{module}.rs")), base.join(module).join("mod.rs")] {
            if file.exists() {
                files.push(file);
            }
        }
        rust_files(&base.join(module), &mut files);
        // Unit tests in files of their own (`#[cfg(test)] mod tests;`) are test code too.
        files.retain(|f| f.file_name().is_none_or(|n| n != "tests.rs"));
        files.sort();
        files.dedup();
        graph.add(module, module, String::new());
        for file in files {
            let rel = file.strip_prefix(base).expect("under the root's folder");
            let segments = rel.components().count();
            let is_mod_rs = rel.file_name().is_some_and(|f| f == "mod.rs");
            let depth = segments - usize::from(is_mod_rs);
            let text = std::fs::read_to_string(&file).expect("read source");
            for (name, line) in crate_names(&code_of(&text), depth) {
                let target = if modules.contains(&name) {
                    Some(name.clone())
                } else {
                    reexports.get(&name).filter(|m| modules.contains(*m)).cloned()
                };
                if let Some(target) = target {
                    let place = format!(
                        "{}:{line} names {name}",
                        file.strip_prefix(src.parent().unwrap_or(src)).unwrap_or(&file).display()
                    );
                    graph.add(module, &target, place);
                }
            }
        }
    }
    graph
}

/// Every crate root of the workspace: (label, src folder, root file).
fn workspace_roots() -> Vec<(String, PathBuf, PathBuf)> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("crates folder");
    let mut roots = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(crates).expect("list crates").flatten().collect();
    dirs.sort_by_key(|d| d.path());
    for dir in dirs {
        let src = dir.path().join("src");
        let name = dir.file_name().to_string_lossy().to_string();
        for root in ["lib.rs", "main.rs"] {
            if src.join(root).exists() {
                roots.push((format!("{name} ({root})"), src.clone(), src.join(root)));
            }
        }
        let mut bins = Vec::new();
        rust_files(&src.join("bin"), &mut bins);
        bins.sort();
        for bin in bins.into_iter().filter(|b| b.parent() == Some(&src.join("bin"))) {
            let label = format!("{name} (bin/{})", bin.file_name().unwrap().to_string_lossy());
            roots.push((label, src.clone(), bin));
        }
    }
    roots
}

#[test]
fn no_crate_has_an_import_circle_between_its_modules() {
    let roots = workspace_roots();
    assert!(
        roots.len() >= 9,
        "found only {} crate roots: is the workspace layout new?",
        roots.len()
    );
    let mut failures = String::new();
    let mut seen_known = BTreeSet::new();
    for (label, src, root) in &roots {
        let graph = root_graph(src, root);
        for circle in graph.circles() {
            let crate_name = label.split(' ').next().unwrap_or(label);
            let known = KNOWN_CIRCLES.iter().position(|(c, set)| {
                *c == crate_name
                    && set.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>() == circle
            });
            if let Some(i) = known {
                seen_known.insert(i);
                eprintln!("known import circle in {label}: {circle:?} (being fixed elsewhere)");
                continue;
            }
            failures.push_str(&format!(
                "{label}: modules {circle:?} import each other:\n{}",
                graph.explain(&circle)
            ));
        }
    }
    for (i, (c, set)) in KNOWN_CIRCLES.iter().enumerate() {
        if !seen_known.contains(&i) {
            failures.push_str(&format!(
                "{c}: the known circle {set:?} is gone: remove it from KNOWN_CIRCLES\n"
            ));
        }
    }
    assert!(failures.is_empty(), "import circles:\n{failures}");
}

/// The checker itself finds a planted circle, through every way a module can be named.
#[test]
fn the_checker_finds_a_planted_circle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    let files = [
        ("lib.rs", "mod a;\npub mod b;\n#[cfg(test)]\npub(crate) mod c;\nmod d;\nmod e;\npub use c::Thing;\npub use e::{Other, nested::Deep as Alias};\n"),
        // a -> b through a group, b -> c through a re-exported item, c -> a through a path
        // in code: a circle of three.
        ("a.rs", "//! a names crate::e only in a comment\nuse crate::{b::B, d};\n"),
        ("b.rs", "use crate::Thing;\npub struct B;\n"),
        ("c.rs", "pub struct Thing;\nfn f() { let _ = crate::a::X; }\n#[cfg(test)]\nmod tests {\n    use crate::e::Other;\n}\n"),
        // d/inner.rs reaches e through super::super, e reaches nothing back: no circle.
        ("d/mod.rs", "mod inner;\n"),
        ("d/inner.rs", "use super::super::Alias;\n"),
        ("e.rs", "pub struct Other;\npub mod nested { pub struct Deep; }\n"),
    ];
    for (name, text) in files {
        std::fs::write(src.join(name), text).unwrap();
    }
    let graph = root_graph(&src, &src.join("lib.rs"));
    let circles = graph.circles();
    let expected: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    assert_eq!(circles, vec![expected], "{graph:?}");
    assert!(graph.edges["d"].contains_key("e"), "super::super:: resolves a re-export: {graph:?}");
    assert!(!graph.edges["a"].contains_key("e"), "comments import nothing: {graph:?}");
    assert!(!graph.edges["c"].contains_key("e"), "unit tests import nothing: {graph:?}");
}

/// The longest source file a reader is asked to hold (STYLE.md, issue 13): a file that grows
/// past it is split by concern.
const SOURCE_LINES_MAX: usize = 800;

/// Source files of every crate (src, tests, benches, examples, fuzz targets) longer than
/// `max` lines, with their lengths. Build output and fuzz corpora are not sources.
fn long_files(crates: &Path, max: usize) -> Vec<(PathBuf, usize)> {
    let mut files = Vec::new();
    let Ok(dirs) = std::fs::read_dir(crates) else { return Vec::new() };
    for dir in dirs.flatten() {
        for sub in ["src", "tests", "benches", "examples", "fuzz/fuzz_targets"] {
            rust_files(&dir.path().join(sub), &mut files);
        }
    }
    files.sort();
    files
        .into_iter()
        .filter(|f| !f.components().any(|c| c.as_os_str() == "target"))
        .filter_map(|f| {
            let lines = std::fs::read_to_string(&f).ok()?.lines().count();
            (lines > max).then_some((f, lines))
        })
        .collect()
}

#[test]
fn no_source_file_is_longer_than_800_lines() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("crates folder");
    let long = long_files(crates, SOURCE_LINES_MAX);
    assert!(long.is_empty(), "split these files by concern: {long:?}");
}

#[test]
fn the_length_check_finds_a_long_file() {
    // Planted: a crate with one file of max + 1 lines and one of exactly max.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("planted").join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("long.rs"), "//\n".repeat(SOURCE_LINES_MAX + 1)).unwrap();
    std::fs::write(src.join("edge.rs"), "//\n".repeat(SOURCE_LINES_MAX)).unwrap();
    let long = long_files(dir.path(), SOURCE_LINES_MAX);
    assert_eq!(long, vec![(src.join("long.rs"), SOURCE_LINES_MAX + 1)]);
}

/// What a loop over a collection looks like in source: a "cheap" invariant must not contain one.
const WALKS: &[&str] = &[
    "for ",
    "while ",
    "loop ",
    ".iter(",
    ".into_iter(",
    ".all(",
    ".any(",
    ".sum",
    ".count(",
    ".range(",
    ".keys(",
    ".values(",
    ".fold(",
    ".find(",
    ".position(",
];

/// The body (from its opening brace to the matching close) of every function in `code` whose
/// name ends in `_cheap`, by name.
fn cheap_bodies(code: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("fn ") {
        let name = ident_at(&rest[at + 3..]).to_string();
        rest = &rest[at + 3..];
        if !name.ends_with("_cheap") {
            continue;
        }
        let Some(open) = rest.find('{') else { break };
        let mut depth = 0;
        let mut end = rest.len();
        for (i, c) in rest[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.push((name, rest[open..end].to_string()));
        rest = &rest[end..];
    }
    out
}

/// What in the `_cheap` functions of `code` walks a collection or calls a method of the
/// replica that is not itself `_cheap`: (function, what).
fn walks_in_cheap(code: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (name, body) in cheap_bodies(code) {
        for w in WALKS.iter().filter(|w| body.contains(**w)) {
            found.push((name.clone(), w.to_string()));
        }
        let mut rest = body.as_str();
        while let Some(at) = rest.find("self.") {
            rest = &rest[at + 5..];
            let called = ident_at(rest);
            if rest[called.len()..].starts_with('(') && !called.ends_with("_cheap") {
                found.push((name.clone(), format!("self.{called}()")));
            }
        }
    }
    found
}

/// The runtime runs the replica's `_cheap` invariants after every step in release builds
/// (ARCHITECTURE.md, invariant 5), so they must cost a few comparisons whatever the size of
/// the log, the queue or the reads: a walk over the proposal queue there once took a third of
/// the primary's consensus thread under load (docs/benchmarks.md). Walks belong in
/// `invariants_walks`, which runs in debug builds and the simulator.
#[test]
fn the_cheap_invariants_walk_nothing() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rsl-core/src/invariants.rs");
    let code = code_of(&std::fs::read_to_string(&file).expect("invariants.rs"));
    assert!(cheap_bodies(&code).len() >= 2, "the cheap invariants were not found in {file:?}");
    let found = walks_in_cheap(&code);
    assert!(found.is_empty(), "move these to invariants_walks: {found:?}");
}

#[test]
fn the_cheap_check_finds_a_planted_walk() {
    let planted = "impl R {\n    fn a_cheap(&self) {\n        invariant!(self.x <= self.y, \"x\");\n        \
                   if let Some(l) = &self.p { invariant!(l.q.iter().map(|q| q.len()).sum::<usize>() == l.n, \"n\"); }\n        \
                   self.b_cheap();\n        self.walk();\n    }\n    fn b_cheap(&self) { for s in &self.v { let _ = s; } }\n    \
                   fn walk(&self) { self.v.iter().count(); }\n}\n";
    let found = walks_in_cheap(planted);
    let pairs: Vec<(&str, &str)> = found.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(
        pairs,
        vec![
            ("a_cheap", ".iter("),
            ("a_cheap", ".sum"),
            ("a_cheap", "self.walk()"),
            ("b_cheap", "for ")
        ]
    );
}
