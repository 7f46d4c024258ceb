//! git's pre-push stdin: parsing never panics.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = deepspark::hook::parse_input(&String::from_utf8_lossy(data));
});
