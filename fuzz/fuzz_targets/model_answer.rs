//! A language model's answer is untrusted: no answer makes deepspark's parsers panic, and
//! no text they return carries a control or bidirectional-override character.
#![no_main]
use deepspark::assist::parse;
use deepspark::diff::Hunk;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(answer) = std::str::from_utf8(data) else { return };
    let hunk = Hunk::parse("@@ -1,3 +1,4 @@", " a\n-b\n+c\n+d\n e").expect("a fixed hunk parses");
    if let Ok(c) = parse::comment(answer, &hunk) {
        assert!(!c.text.chars().any(deepspark::chars::is_hidden));
    }
    if let Ok(t) = parse::sentences(answer, 3, 100) {
        assert!(!t.chars().any(deepspark::chars::is_hidden));
    }
    if let Some(block) = parse::fenced_block(answer) {
        if let Ok(edits) = parse::rewrite_edits(&hunk, &block) {
            assert!(edits.iter().all(|e| hunk.lines[e.line].kind == deepspark::diff::LineKind::Added));
        }
    }
    let _ = parse::whole_file(answer, "a.py", "a\nc\nd\ne\n");
    if let Ok(blocks) = parse::search_replace(answer, &["a.py", "b.py"]) {
        let refs: Vec<&parse::SearchReplace> = blocks.iter().filter(|b| b.path == "a.py").collect();
        let _ = parse::apply_search_replace("a\nc\nd\ne\n", "a.py", &refs);
    }
});
