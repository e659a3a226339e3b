//! Which characters a name may hold.
//!
//! Names end up where people read them: certificate subjects and SANs in
//! `openssl x509 -text`, Nebula names and groups in firewall rules,
//! workspace names in file listings and Vault paths. A control character
//! (NUL truncates in C, a newline forges a log line) or a Unicode
//! bidirectional control (U+202E makes `exe.txt` display as `txt.exe`)
//! lets a name read as something it is not, so both are refused wherever
//! a name is accepted.

/// Why a name is refused, or `Ok` when it is fine.
pub(crate) fn check(name: &str) -> Result<(), &'static str> {
    if name.chars().any(char::is_control) {
        return Err("contains a control character");
    }
    if name.chars().any(is_bidi_control) {
        return Err("contains a Unicode bidirectional control character, which makes text display differently from what it is");
    }
    Ok(())
}

/// The bidirectional formatting characters of Unicode's UAX #9: the
/// embeddings and overrides U+202A–U+202E, the isolates U+2066–U+2069, and
/// the marks U+200E, U+200F and U+061C.
pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_controls_and_bidi() {
        for good in [
            "pidgeon-1",
            "Ünïcödé 日本語",
            "a b",
            "db.local",
            "spiffe://x/y",
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        for bad in ["a\0b", "a\nb", "a\rb", "\u{7f}", "\u{85}", "\u{1b}[31m"] {
            assert_eq!(check(bad), Err("contains a control character"), "{bad:?}");
        }
        for bad in [
            "\u{202e}gpj.exe",
            "a\u{202a}",
            "\u{2066}x\u{2069}",
            "\u{200e}",
            "\u{200f}",
            "\u{061c}",
        ] {
            assert!(check(bad).unwrap_err().contains("bidirectional"), "{bad:?}");
        }
    }
}
