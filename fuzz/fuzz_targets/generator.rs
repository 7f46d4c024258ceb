//! The suggestion generator's files (generator.json + generator.safetensors) from an untrusted
//! model directory: any bytes give an error or a valid generator, never a panic; a generator
//! that loads proposes only edits of the hunk's added lines. The first byte picks which file
//! is fuzzed; the other is the embedded default's, so each parser is reached past the first.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    use deepspark::model::{EditModel, Generator};
    let Some((config, weights)) = EditModel::embedded_bytes() else {
        return;
    };
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let loaded = if mode % 2 == 0 {
        EditModel::from_bytes(rest, weights, "fuzz")
    } else {
        EditModel::from_bytes(config, rest, "fuzz")
    };
    if let Ok(g) = loaded {
        let h = deepspark::diff::Hunk::parse("@@ -1,1 +1,2 @@", " a < b\n+if (x < n) y();\n").expect("fixed hunk");
        for c in g.propose(&h, 5).unwrap_or_default() {
            assert!(c.edits.iter().all(|e| e.line == 1));
        }
    }
});
