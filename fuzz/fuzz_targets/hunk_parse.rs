//! Diff text from the training data or any other source: never panics; parsed hunks are consistent.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (header, body) = text.split_once('\n').unwrap_or((&text, ""));
    if let Ok(h) = deepspark::diff::Hunk::parse(header, body) {
        assert!(h.added() + h.removed() <= h.lines.len());
    }
});
