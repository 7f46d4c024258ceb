//! The terminal sanitiser: no ESC or other control character survives except tab; idempotent.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let once = deepspark::render::sanitize::clean(&text).into_owned();
    assert!(
        !once
            .chars()
            .any(|c| (c.is_control() && c != '\t') || deepspark::chars::is_bidi(c))
    );
    assert_eq!(deepspark::render::sanitize::clean(&once), once);
});
