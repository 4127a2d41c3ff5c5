//! SASLprep (RFC 4013, the "SASLprep" profile of stringprep, RFC 3454) for STUN passwords.
//!
//! What is implemented, in RFC 4013 §2's order:
//! 1. **Map** (§2.1): non-ASCII space characters (RFC 3454 table C.1.2) to U+0020, and the
//!    "commonly mapped to nothing" characters (table B.1, e.g. U+00AD SOFT HYPHEN) to nothing.
//! 2. **Normalize** (§2.2): Unicode NFKC (so U+00AA `ª` becomes `a` and U+2168 `Ⅸ` becomes
//!    `IX`, as RFC 5769 §2.4 needs).
//! 3. **Prohibit** (§2.3): ASCII and non-ASCII control characters (C.2.1, C.2.2), private use
//!    (C.3), non-character code points (C.4), surrogates (C.5, impossible in `str`),
//!    inappropriate for plain text (C.6), inappropriate for canonical representation (C.7),
//!    change display properties / deprecated (C.8) and tagging characters (C.9).
//!
//! Not implemented: the bidirectional check (§2.4 / RFC 3454 §6, which needs the full
//! RandALCat / LCat tables) and the unassigned-code-point check for stored strings (§2.5,
//! RFC 3454 table A.1). NFKC uses the Unicode version of the `unicode-normalization` crate,
//! not Unicode 3.2 as stringprep specifies; the two differ only for characters assigned later.
//! Printable ASCII passwords (the common case) pass through unchanged and unallocated.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;

use crate::error::StunError;

/// Applies SASLprep (see the module docs for the subset) to `input`.
/// `Err(ProhibitedCharacter)` if the result contains a prohibited character.
pub fn saslprep(input: &str) -> Result<Cow<'_, str>, StunError> {
    // Printable ASCII maps, normalizes and checks to itself.
    if input.bytes().all(|b| (0x20..0x7F).contains(&b)) {
        return Ok(Cow::Borrowed(input));
    }
    let mapped: String = input
        .chars()
        .filter(|&c| !mapped_to_nothing(c))
        .map(|c| if non_ascii_space(c) { ' ' } else { c })
        .collect();
    let normalized: String = mapped.nfkc().collect();
    if normalized.chars().any(prohibited) {
        return Err(StunError::ProhibitedCharacter);
    }
    Ok(Cow::Owned(normalized))
}

/// RFC 3454 table B.1, "Commonly mapped to nothing".
fn mapped_to_nothing(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD | 0x034F | 0x1806 | 0x180B..=0x180D | 0x200B..=0x200D | 0x2060 | 0xFE00..=0xFE0F | 0xFEFF
    )
}

/// RFC 3454 table C.1.2, "Non-ASCII space characters".
fn non_ascii_space(c: char) -> bool {
    matches!(
        c as u32,
        0x00A0 | 0x1680 | 0x2000..=0x200B | 0x202F | 0x205F | 0x3000
    )
}

/// RFC 4013 §2.3 prohibited output: RFC 3454 tables C.1.2 and C.2.1 through C.9.
fn prohibited(c: char) -> bool {
    let u = c as u32;
    non_ascii_space(c)
        // C.2.1 ASCII control characters.
        || u <= 0x1F
        || u == 0x7F
        // C.2.2 Non-ASCII control characters.
        || matches!(
            u,
            0x0080..=0x009F
                | 0x06DD
                | 0x070F
                | 0x180E
                | 0x200C
                | 0x200D
                | 0x2028
                | 0x2029
                | 0x2060..=0x2063
                | 0x206A..=0x206F
                | 0xFEFF
                | 0xFFF9..=0xFFFC
                | 0x1D173..=0x1D17A
        )
        // C.3 Private use.
        || matches!(u, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD)
        // C.4 Non-character code points.
        || matches!(u, 0xFDD0..=0xFDEF)
        || (u & 0xFFFE) == 0xFFFE
        // C.6 Inappropriate for plain text.
        || matches!(u, 0xFFF9..=0xFFFD)
        // C.7 Inappropriate for canonical representation.
        || matches!(u, 0x2FF0..=0x2FFB)
        // C.8 Change display properties or are deprecated.
        || matches!(u, 0x0340 | 0x0341 | 0x200E | 0x200F | 0x202A..=0x202E | 0x206A..=0x206F)
        // C.9 Tagging characters.
        || matches!(u, 0xE0001 | 0xE0020..=0xE007F)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5769_password_maps_to_thematrix() {
        // RFC 5769 §2.4: "Password: "The<U+00AD>M<U+00AA>tr<U+2168>" and "TheMatrIX" (without
        // quotes) respectively before and after SASLprep processing".
        assert_eq!(
            saslprep("The\u{00AD}M\u{00AA}tr\u{2168}").unwrap(),
            "TheMatrIX"
        );
    }

    #[test]
    fn rfc4013_examples() {
        // RFC 4013 §3 examples.
        assert_eq!(saslprep("I\u{00AD}X").unwrap(), "IX"); // SOFT HYPHEN mapped to nothing
        assert_eq!(saslprep("user").unwrap(), "user"); // no transformation
        assert_eq!(saslprep("USER").unwrap(), "USER"); // case preserved
        assert_eq!(saslprep("\u{00AA}").unwrap(), "a"); // output is NFKC
        assert_eq!(saslprep("\u{2168}").unwrap(), "IX"); // output is NFKC
        assert_eq!(saslprep("\u{0007}"), Err(StunError::ProhibitedCharacter)); // prohibited
    }

    #[test]
    fn spaces_nothing_and_prohibited() {
        assert_eq!(saslprep("a\u{00A0}b\u{3000}c").unwrap(), "a b c");
        assert_eq!(saslprep("a\u{200B}b\u{FEFF}c").unwrap(), "abc");
        assert!(matches!(saslprep("plain ascii"), Ok(Cow::Borrowed(_))));
        for bad in [
            "a\u{0000}",
            "a\u{007F}",
            "a\u{0085}",
            "\u{E000}",
            "\u{FFFF}",
            "\u{E0041}",
            "\u{200E}",
            "\u{2028}",
        ] {
            assert_eq!(
                saslprep(bad),
                Err(StunError::ProhibitedCharacter),
                "{bad:?}"
            );
        }
        // Fullwidth letters normalize to ASCII.
        assert_eq!(saslprep("\u{FF21}\u{FF22}").unwrap(), "AB");
    }
}
