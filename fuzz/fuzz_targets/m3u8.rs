//! M3U8 playlists (src/worker/m3u8.rs): the parser, and the upload plan for a local playlist
//! and for one at a URL.
//!
//! Properties: at most one reference per line, so the segment count is bounded by the lines;
//! every planned file has a usable, unique object name (no `/`, `\`, control character, `.` or
//! `..`); local files stay under the roots; the rewritten playlist keeps the line structure;
//! and the rewritten playlist, planned again from the same place, names the same files (it is
//! what players will read next to those files).
#![no_main]

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use vod_ingest::fuzzing::{m3u8_parse, m3u8_plan_local, m3u8_plan_remote, PlaylistPlan, RefKind};

fn check_plan(text: &str, plan: &PlaylistPlan, refs: usize, roots: &[PathBuf]) {
    assert!(plan.files.len() <= refs);
    let mut names = BTreeSet::new();
    for f in &plan.files {
        assert!(names.insert(f.name.as_str()), "{:?} planned twice", f.name);
        assert!(
            !f.name.is_empty()
                && f.name != "."
                && f.name != ".."
                && !f.name.contains(['/', '\\'])
                && !f.name.chars().any(char::is_control),
            "{:?}",
            f.name
        );
        assert!(f.local.is_some() != f.remote.is_some());
        if let Some(path) = &f.local {
            assert!(roots.iter().any(|r| path.starts_with(r)), "{path:?}");
            assert!(
                !path.components().any(|c| c == Component::ParentDir),
                "{path:?}"
            );
        }
    }
    assert!(plan.playlist.ends_with('\n'));
    let before = text
        .strip_prefix('\u{feff}')
        .unwrap_or(text)
        .split('\n')
        .count();
    let after = plan.playlist.split('\n').count();
    assert!(
        after == before || after == before + 1,
        "{before} lines became {after}"
    );
}

fn names(plan: &PlaylistPlan) -> BTreeSet<(String, bool)> {
    plan.files
        .iter()
        .map(|f| (f.name.clone(), f.kind == RefKind::Segment))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok((lines, refs)) = m3u8_parse(text) else {
        return;
    };
    let media_lines = lines
        .iter()
        .filter(|l| !l.trim().is_empty() && !l.trim().starts_with('#'))
        .count();
    let segments = refs.iter().filter(|r| r.kind == RefKind::Segment).count();
    assert!(segments >= 1 && segments <= media_lines);
    assert!(refs.len() <= lines.len());
    assert!(
        refs.windows(2).all(|w| w[0].line < w[1].line),
        "two references on one line"
    );
    assert!(refs.iter().all(|r| r.line < lines.len()));

    let roots = vec![PathBuf::from("/srv/media")];
    let dir = Path::new("/srv/media/show");
    if let Ok(plan) = m3u8_plan_local(text, dir, &roots) {
        check_plan(text, &plan, refs.len(), &roots);
        let again = m3u8_plan_local(&plan.playlist, dir, &roots).unwrap_or_else(|e| {
            panic!(
                "the rewritten playlist does not plan: {e}\n{}",
                plan.playlist
            )
        });
        assert_eq!(names(&again), names(&plan), "{}", plan.playlist);
        assert!(again
            .files
            .iter()
            .all(|f| f.local.as_deref().is_some_and(|p| p.parent() == Some(dir))));
    }
    let url = url::Url::parse("https://media.example.com/show/index.m3u8").unwrap();
    if let Ok(plan) = m3u8_plan_remote(text, &url) {
        check_plan(text, &plan, refs.len(), &[]);
        let again = m3u8_plan_remote(&plan.playlist, &url).unwrap_or_else(|e| {
            panic!(
                "the rewritten playlist does not plan: {e}\n{}",
                plan.playlist
            )
        });
        assert_eq!(names(&again), names(&plan), "{}", plan.playlist);
    }
});
