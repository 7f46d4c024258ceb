//! Character classes that more than one stage tests for, defined once: the characters that
//! hide what text says (bidirectional formatting, control characters). Stages import this
//! module instead of each other (`review` finds bidi overrides, `suggest` and the generator
//! refuse to write hidden characters, `render::sanitize` makes them visible). It holds no
//! policy of its own: what to do with such a character is each caller's choice.

/// Bidirectional formatting characters: embeddings and overrides (U+202A..U+202E), isolates
/// (U+2066..U+2069) and the directional marks (LRM, RLM, ALM). In source code they can make
/// text read differently from how it compiles ("Trojan Source", CVE-2021-42574).
pub fn is_bidi(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// A character that hides or changes what a line of text shows: any control character but
/// tab (escape sequences, carriage return, newline, C1 controls), or a bidirectional one.
pub fn is_hidden(c: char) -> bool {
    (c.is_control() && c != '\t') || is_bidi(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_characters_are_controls_but_tab_and_bidi() {
        for c in [
            '\x1b', '\r', '\n', '\0', '\u{7f}', '\u{9b}', '\u{202e}', '\u{2066}', '\u{200f}', '\u{061c}',
        ] {
            assert!(is_hidden(c), "{c:?}");
        }
        for c in ['\t', ' ', 'a', 'é', '\u{200b}', '\u{2028}'] {
            assert!(!is_hidden(c), "{c:?}");
        }
        assert!(is_bidi('\u{202a}') && !is_bidi('\x1b'));
    }
}
