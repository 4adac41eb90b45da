//! The house rules of `CONTRIBUTING.md` that a machine can check: SQL and transactions appear
//! only in the store rooms, and the rooms of `src/` (its top-level modules) import each other
//! one way, without circles. Reads the source as text; no database or network.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The rooms that own SQL and transactions.
const STORE_ROOMS: &[&str] = &["jobs", "ratelimit", "keys"];

/// What only a store room may write: statements, transactions, listeners.
const SQL_MARKERS: &[&str] = &[
    "sqlx::query",
    "query_as(",
    "query_scalar(",
    ".begin()",
    "PgListener",
    "QueryBuilder",
];

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The room a file belongs to: `src/jobs/store.rs` and `src/jobs.rs` are both `jobs`.
fn room_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The file's lines without comments (doc links are not imports), numbered from 1, up to its
/// unit tests (a test module may use anything).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, l)| l.trim() != "#[cfg(test)]")
        .map(|(i, l)| (i + 1, l.split("//").next().unwrap_or("")))
}

fn files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    files
}

#[test]
fn sql_lives_only_in_the_store_rooms() {
    let mut wrong = Vec::new();
    for file in files() {
        if STORE_ROOMS.contains(&room_of(&file).as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in code_lines(&text) {
            if let Some(marker) = SQL_MARKERS.iter().find(|m| line.contains(*m)) {
                wrong.push(format!(
                    "src/{}:{n}: `{marker}` outside the store rooms",
                    file.strip_prefix(src()).unwrap().display()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "SQL and transactions belong in src/{{{}}}/ (CONTRIBUTING.md): move these into a store \
         function and call it:\n{}",
        STORE_ROOMS.join(","),
        wrong.join("\n")
    );
}

#[test]
fn the_rooms_import_each_other_without_circles() {
    let files = files();
    let rooms: BTreeSet<String> = files.iter().map(|f| room_of(f)).collect();
    // room -> room it imports -> where (the first place seen).
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in &files {
        let from = room_of(file);
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in code_lines(&text) {
            for (i, _) in line.match_indices("crate::") {
                let to: String = line[i + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    !to.is_empty(),
                    "src/{}:{n}: `crate::{{...}}` groups several rooms in one `use`; write one \
                     `use crate::room::...` per room so this check can read it",
                    file.strip_prefix(src()).unwrap().display()
                );
                if to != from && rooms.contains(&to) {
                    let at = format!("src/{}:{n}", file.strip_prefix(src()).unwrap().display());
                    edges
                        .entry(from.clone())
                        .or_default()
                        .entry(to)
                        .or_insert(at);
                }
            }
        }
    }
    assert!(
        edges.values().map(BTreeMap::len).sum::<usize>() > 10,
        "the import scan found almost nothing: {edges:?}"
    );
    // Depth-first search for a path back to where it started.
    fn find_circle(
        edges: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        let here = path.last().unwrap().clone();
        for next in edges.get(&here).into_iter().flat_map(|e| e.keys()) {
            if let Some(start) = path.iter().position(|r| r == next) {
                let mut circle = path[start..].to_vec();
                circle.push(next.clone());
                return Some(circle);
            }
            if done.contains(next) {
                continue;
            }
            path.push(next.clone());
            if let Some(c) = find_circle(edges, path, done) {
                return Some(c);
            }
            path.pop();
        }
        done.insert(here);
        None
    }
    let mut done = BTreeSet::new();
    for room in &rooms {
        if done.contains(room) {
            continue;
        }
        if let Some(circle) = find_circle(&edges, &mut vec![room.clone()], &mut done) {
            let steps: Vec<String> = circle
                .windows(2)
                .map(|w| format!("  {} -> {} ({})", w[0], w[1], edges[&w[0]][&w[1]]))
                .collect();
            panic!(
                "the rooms of src/ import each other in a circle (CONTRIBUTING.md): move what \
                 the lower room needs down into it, or into a room below both:\n{}",
                steps.join("\n")
            );
        }
    }
}
