//! Makes untrusted text safe for a terminal: no escape sequences, no control bytes, no
//! invisible bidirectional overrides. Each such character is shown as a visible escape
//! (`\x1b`, `\u{202e}`), so what is hidden becomes visible. Tab is kept; newline is
//! kept only where the caller allows it (never inside a path). Idempotent.

use crate::chars::is_hidden;
use std::borrow::Cow;

fn needs_escape(c: char, keep_newline: bool) -> bool {
    is_hidden(c) && !(keep_newline && c == '\n')
}

pub fn clean(s: &str) -> Cow<'_, str> {
    clean_with(s, false)
}

pub fn clean_with(s: &str, keep_newline: bool) -> Cow<'_, str> {
    if !s.chars().any(|c| needs_escape(c, keep_newline)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c, keep_newline) {
            let v = c as u32;
            if v < 0x80 {
                out.push_str(&format!("\\x{v:02x}"));
            } else {
                out.push_str(&format!("\\u{{{v:x}}}"));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_are_made_visible() {
        assert_eq!(clean("a\x1b[31mred"), "a\\x1b[31mred");
        assert_eq!(clean("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(clean("tab\tok"), "tab\tok");
        assert_eq!(clean("a\nb"), "a\\x0ab");
        assert_eq!(clean_with("a\nb", true), "a\nb");
        assert_eq!(clean("\u{9b}"), "\\u{9b}");
    }

    proptest! {
        #[test]
        fn no_control_survives_and_cleaning_is_idempotent(s in any::<String>()) {
            let once = clean(&s).into_owned();
            prop_assert!(!once.chars().any(|c| (c.is_control() && c != '\t') || crate::chars::is_bidi(c)));
            prop_assert_eq!(clean(&once).into_owned(), once);
        }
    }
}
