//! Patch text (`git diff` / `git show` output, and the patches suggestions are parsed from): never panics;
//! every parsed hunk is consistent.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for f in deepspark::diff::parse_patch(&text) {
        for h in &f.hunks {
            assert!(h.added() + h.removed() <= h.lines.len());
        }
    }
});
