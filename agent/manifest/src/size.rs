//! Byte sizes in the manifest: an integer byte count, or a string such as `"4 MiB"`, `"64 KiB"`,
//! `"1MiB"` or `"512k"`.
//!
//! Every unit is 1024-based. The SI spellings `kB`/`MB`/`GB` are refused rather than guessed,
//! because "4 MB" means 4,000,000 to some readers and 4 MiB to others, and a memory cap that is
//! off by 5% is a confusing failure on a small board.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A byte count as written in the manifest; range checks happen in `convert`, where the error
/// can name the component and the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteSize(pub u64);

/// Parses a size string. Whitespace between number and unit is optional; units are
/// case-insensitive.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    if number.is_empty() {
        return Err(format!(
            "invalid size {text:?}: expected a whole number of bytes, optionally with a unit, \
             like \"4 MiB\""
        ));
    }
    let unit = unit.trim_start();
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" | "mb" | "gb" => {
            return Err(format!(
                "invalid size {text:?}: `{unit}` is ambiguous; write `{}iB` (1024-based)",
                &unit[..1].to_ascii_uppercase()
            ));
        }
        _ if unit.starts_with('.') || unit.starts_with(',') => {
            return Err(format!(
                "invalid size {text:?}: use a whole number (e.g. \"1536 KiB\")"
            ));
        }
        _ => {
            return Err(format!(
                "invalid size {text:?}: unknown unit `{unit}` (use B, KiB, MiB, GiB, or k, m, g)"
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| format!("invalid size {text:?}: too large"))
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ByteSizeVisitor)
    }
}

struct ByteSizeVisitor;

impl Visitor<'_> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte count or a size string like \"4 MiB\"")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<ByteSize, E> {
        u64::try_from(value)
            .map(ByteSize)
            .map_err(|_| E::custom(format!("invalid size {value}: must not be negative")))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<ByteSize, E> {
        parse_size(value).map(ByteSize).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;

    #[test]
    fn accepted_spellings() {
        let cases = [
            ("4 MiB", 4 * MIB),
            ("64 KiB", 64 * KIB),
            ("1MiB", MIB),
            ("512k", 512 * KIB),
            ("512K", 512 * KIB),
            ("2 m", 2 * MIB),
            ("1 GiB", GIB),
            ("4 gib", 4 * GIB),
            ("100", 100),
            ("100 B", 100),
            ("  7 KiB  ", 7 * KIB),
            ("0", 0),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_size(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn rejected_spellings_say_why() {
        let cases = [
            ("", "expected a whole number"),
            ("MiB", "expected a whole number"),
            ("-4 MiB", "expected a whole number"),
            ("4 MB", "`MB` is ambiguous; write `MiB`"),
            ("4kb", "`kb` is ambiguous; write `KiB`"),
            ("1.5 MiB", "use a whole number"),
            ("4 parsecs", "unknown unit `parsecs`"),
            ("99999999999999999999", "too large"),
            ("17179869184 GiB", "too large"),
        ];
        for (text, expected) in cases {
            let error = parse_size(text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[derive(Debug, serde::Deserialize)]
    struct Holder {
        size: ByteSize,
    }

    #[test]
    fn deserializes_from_integers_and_strings() {
        let parse = |text: &str| toml::from_str::<Holder>(text).map(|h| h.size.0);
        assert_eq!(parse("size = 4096").ok(), Some(4096));
        assert_eq!(parse("size = \"4 KiB\"").ok(), Some(4096));
        let negative = parse("size = -1").expect_err("negative");
        assert!(
            negative.message().contains("must not be negative"),
            "{negative}"
        );
        let float = parse("size = 1.5").expect_err("float");
        assert!(
            float.message().contains("a byte count or a size string"),
            "{float}"
        );
    }
}
