//! The syntax stage on arbitrary old and new texts of a file in each grammar's language:
//! never panics or hangs, one kind and one context per hunk, and a context's lines in order;
//! and the check a suggestion passes (`syntax::outline` of both sides, `syntax::breaks`)
//! never panics either, nor calls a file that is its own edit broken.
#![no_main]
use deepspark::diff::{FileDiff, FileStatus, Hunk, OldNew};

const PATHS: [&str; 10] = ["a.rs", "a.py", "A.java", "a.js", "a.ts", "a.tsx", "a.go", "a.c", "a.cpp", "a.d.ts"];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let (old, new) = text.split_once('\u{0}').unwrap_or((&text, ""));
    let path = PATHS[pick as usize % PATHS.len()];
    // One hunk that replaces the first line of each side, whatever the texts hold.
    let first = |s: &str| s.lines().next().unwrap_or("").to_string();
    let body = format!("-{}\n+{}", first(old), first(new));
    let Ok(hunk) = Hunk::parse("@@ -1,1 +1,1 @@", &body) else { return };
    let file = FileDiff {
        path: OldNew { old: Some(path.into()), new: Some(path.into()) },
        status: FileStatus::Modified,
        mode: OldNew::default(),
        language: deepspark::diff::language_of(path),
        hunks: vec![hunk],
        skip: None,
    };
    let texts = OldNew { old: Some(old.to_string()), new: Some(new.to_string()) };
    let read = deepspark::syntax::read(std::slice::from_ref(&file), &[texts]);
    assert_eq!(read[0].hunks.len(), 1);
    assert_eq!(read[0].contexts.len(), 1);
    if let Some(c) = &read[0].contexts[0] {
        assert!(c.start <= c.end);
    }
    let language = deepspark::diff::language_of(path);
    if let (Some(a), Some(b)) = (
        deepspark::syntax::outline(path, language, old),
        deepspark::syntax::outline(path, language, new),
    ) {
        let _ = deepspark::syntax::breaks(&a, &b);
        assert_eq!(deepspark::syntax::breaks(&a, &a), None, "an unchanged file is not broken");
    }
});
