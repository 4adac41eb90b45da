//! The documentation stays true to the repository: every relative link in README.md,
//! CONTRIBUTING.md and docs/ reaches a file (and a heading, when it names one); every
//! `docs/...` page the code cites exists and has the section (`§3.6`) or invariant it cites; and
//! docs/configuration.md holds the configuration reference as the clap definitions render it.
//! No database, broker or network is needed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use vod_ingest::config_reference;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Files under `dir` (recursively) whose name ends with one of `exts`, skipping build output
/// and installed packages.
fn files(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(
                name.as_str(),
                "target" | "node_modules" | ".git" | "corpus" | "artifacts"
            ) {
                files(&path, exts, out);
            }
        } else if exts.iter().any(|e| name.ends_with(e)) {
            out.push(path);
        }
    }
}

fn markdown_pages() -> Vec<PathBuf> {
    let root = repo();
    let mut pages: Vec<PathBuf> = ["README.md", "CONTRIBUTING.md"]
        .iter()
        .map(|p| root.join(p))
        .filter(|p| p.exists())
        .collect();
    files(&root.join("docs"), &[".md"], &mut pages);
    pages.sort();
    pages
}

fn rel(path: &Path) -> String {
    path.strip_prefix(repo())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The lines of a markdown page outside fenced code blocks, with their numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            lines.push((i + 1, line));
        }
    }
    lines
}

fn headings(text: &str) -> Vec<String> {
    prose_lines(text)
        .into_iter()
        .filter_map(|(_, l)| {
            let t = l.trim_start_matches('#');
            (l.starts_with('#') && t.starts_with(' ')).then(|| t.trim().to_owned())
        })
        .collect()
}

fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    for heading in headings(text) {
        let base = slug(&heading);
        let mut anchor = base.clone();
        let mut n = 0;
        while !seen.insert(anchor.clone()) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
    }
    seen
}

/// The section numbers a page has: "## 3. Signature" has `3`, "### 3.6 Vectors" has `3.6`.
fn sections(text: &str) -> HashSet<String> {
    headings(text)
        .into_iter()
        .filter_map(|h| {
            let number: String = h
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let number = number.trim_end_matches('.');
            (!number.is_empty()).then(|| number.to_owned())
        })
        .collect()
}

/// `[text](target)` links of a line, inline code spans left out.
fn links(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    let bytes: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            '`' => in_code = !in_code,
            ']' if !in_code && bytes.get(i + 1) == Some(&'(') => {
                let start = i + 2;
                if let Some(len) = bytes[start..].iter().position(|&c| c == ')') {
                    out.push(bytes[start..start + len].iter().collect());
                    i = start + len;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let mut dead = Vec::new();
    for page in markdown_pages() {
        let text = read(&page);
        for (n, line) in prose_lines(&text) {
            for target in links(line) {
                let target = target.split_whitespace().next().unwrap_or("").to_owned();
                if target.is_empty()
                    || target.contains("://")
                    || target.starts_with("mailto:")
                    || target.starts_with('<')
                {
                    continue;
                }
                let (file, anchor) = match target.split_once('#') {
                    Some((f, a)) => (f, Some(a)),
                    None => (target.as_str(), None),
                };
                let resolved = if file.is_empty() {
                    page.clone()
                } else {
                    page.parent().unwrap().join(file)
                };
                if !resolved.exists() {
                    dead.push(format!("{}:{n}: {target}: no such file", rel(&page)));
                    continue;
                }
                if let Some(anchor) = anchor {
                    if resolved.extension().is_some_and(|e| e == "md")
                        && !anchors(&read(&resolved)).contains(anchor)
                    {
                        dead.push(format!(
                            "{}:{n}: {target}: {} has no heading with that anchor",
                            rel(&page),
                            rel(&resolved)
                        ));
                    }
                }
            }
        }
    }
    assert!(dead.is_empty(), "dead links:\n{}", dead.join("\n"));
}

/// A citation found in a file: which page, which section (if any), where.
struct Citation {
    at: String,
    page: String,
    section: Option<String>,
}

/// `docs/....md` paths, `§N.N` (and `§N.N–N.N`) sections, and "invariant N" in `text`. A section
/// belongs to the page cited last before it: on the same line in markdown (else the page
/// itself), anywhere earlier in the file in code (comments continue over lines).
fn citations(file: &Path, text: &str) -> Vec<Citation> {
    let is_markdown = file.extension().is_some_and(|e| e == "md");
    let own = rel(file);
    let mut out = Vec::new();
    let mut last: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let at = format!("{own}:{}", n + 1);
        if is_markdown {
            last = Some(own.clone());
        }
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let rest: String = chars[i..].iter().collect();
            if rest.starts_with("docs/") && (i == 0 || !chars[i - 1].is_alphanumeric()) {
                let path: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '-' | '_'))
                    .collect();
                let path = path.trim_end_matches('.');
                if path.ends_with(".md") {
                    out.push(Citation {
                        at: at.clone(),
                        page: path.to_owned(),
                        section: None,
                    });
                    last = Some(path.to_owned());
                }
                i += path.chars().count().max(1);
                continue;
            }
            if chars[i] == '§' {
                let spec: String = chars[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | '–' | '-'))
                    .collect();
                for number in spec.split(['–', '-']) {
                    let number = number.trim_end_matches('.');
                    if number.is_empty() {
                        continue;
                    }
                    out.push(Citation {
                        at: at.clone(),
                        page: last.clone().unwrap_or_default(),
                        section: Some(number.to_owned()),
                    });
                }
            }
            let lower = rest.to_lowercase();
            if lower.starts_with("invariant ") {
                let number: String = rest["invariant ".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                if !number.is_empty() {
                    out.push(Citation {
                        at: at.clone(),
                        page: "docs/design.md".into(),
                        section: Some(format!("invariant {number}")),
                    });
                }
            }
            i += 1;
        }
    }
    out
}

#[test]
fn every_cited_page_section_and_invariant_exists() {
    let root = repo();
    let mut sources = Vec::new();
    for dir in ["src", "tests", "scripts", "web", "examples"] {
        files(
            &root.join(dir),
            &[
                ".rs", ".sh", ".py", ".mjs", ".js", ".json", ".toml", ".html",
            ],
            &mut sources,
        );
    }
    sources.extend(markdown_pages());
    let this_file = root.join("tests/docs.rs");
    // design.md names its former file name once, for the migrations that still cite it.
    let design = root.join("docs/design.md");
    // The names the references had before they were written for this repository.
    let retired = [
        ["DESIGN", ".md"].concat(),
        ["vod_api", ".md"].concat(),
        ["client_uploads", ".md"].concat(),
        ["signature_v3", ".md"].concat(),
        ["client_sdks", ".md"].concat(),
        ["anchors", ".md"].concat(),
    ];
    let mut wrong = Vec::new();
    let mut checked = 0;
    for file in sources.iter().filter(|f| **f != this_file) {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for name in retired.iter().filter(|_| *file != design) {
            if let Some(n) = text.lines().position(|l| l.contains(name.as_str())) {
                wrong.push(format!(
                    "{}:{}: cites {name}, which is not in this repository (see docs/README.md)",
                    rel(file),
                    n + 1
                ));
            }
        }
        for c in citations(file, &text) {
            checked += 1;
            if c.page.is_empty() {
                wrong.push(format!("{}: a § with no docs/ page cited before it", c.at));
                continue;
            }
            let path = root.join(&c.page);
            if !path.exists() {
                wrong.push(format!("{}: {} does not exist", c.at, c.page));
                continue;
            }
            let page = read(&path);
            let Some(section) = c.section.as_deref() else {
                continue;
            };
            let found = match section.strip_prefix("invariant ") {
                Some(number) => page
                    .lines()
                    .any(|l| l.starts_with(&format!("{number}. **"))),
                None => sections(&page).contains(section),
            };
            if !found {
                let shown = if section.starts_with("invariant ") {
                    section.to_owned()
                } else {
                    format!("§{section}")
                };
                wrong.push(format!("{}: {} has no {shown}", c.at, c.page));
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} citations found: is the scan broken?"
    );
    assert!(
        wrong.is_empty(),
        "citations that do not land:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_configuration_reference_matches_the_clap_definitions() {
    let path = repo().join("docs/configuration.md");
    let doc = read(&path);
    let rendered = config_reference::render();
    let expected = config_reference::replace_block(&doc, &rendered)
        .unwrap_or_else(|e| panic!("docs/configuration.md: {e}"));
    if doc == expected {
        return;
    }
    if std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, expected).expect("write docs/configuration.md");
        return;
    }
    panic!(
        "docs/configuration.md is out of date with the clap definitions: run `UPDATE_DOCS=1 cargo test --test docs`"
    );
}
