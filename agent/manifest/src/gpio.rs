//! The `gpio` grant: a list of `"<direction>:<line>"` entries such as `"in:door"` or
//! `"out:relay1"`.
//!
//! Each entry is checked while deserializing, so a bad direction, an empty or malformed line
//! name, or a line listed twice is reported at its own `file:line:column`, like a malformed size
//! or cron expression. Only the first `:` separates direction and line, because a line may be
//! named `<chip>:<offset>` (`"out:gpiochip0:17"`).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, SeqAccess, Visitor};

use crate::convert::rules::check_name;
use crate::model::{GpioAccess, GpioGrant};

/// The whole `gpio = [...]` list, every entry valid and every line named once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct GpioList(pub Vec<GpioGrant>);

/// Parses one entry, `"in:<line>"` or `"out:<line>"`.
pub(crate) fn parse_entry(entry: &str) -> Result<GpioGrant, String> {
    let Some((direction, line)) = entry.split_once(':') else {
        return Err(format!(
            "invalid GPIO grant {entry:?}: expected \"in:<line>\" (may read) or \"out:<line>\" \
             (may write and read back)"
        ));
    };
    let access = match direction {
        "in" => GpioAccess::In,
        "out" => GpioAccess::Out,
        other => {
            return Err(format!(
                "invalid GPIO grant {entry:?}: direction {other:?} is neither `in` (may read) \
                 nor `out` (may write and read back)"
            ));
        }
    };
    if line.is_empty() {
        return Err(format!(
            "invalid GPIO grant {entry:?}: the line name is empty (write e.g. \"{direction}:GPIO17\")"
        ));
    }
    if line.trim() != line {
        return Err(format!(
            "invalid GPIO grant {entry:?}: the line name {line:?} starts or ends with whitespace"
        ));
    }
    check_name("GPIO line name", line).map_err(|e| format!("invalid GPIO grant {entry:?}: {e}"))?;
    Ok(GpioGrant {
        line: line.to_owned(),
        access,
    })
}

impl<'de> Deserialize<'de> for GpioList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(ListVisitor)
    }
}

struct ListVisitor;

impl<'de> Visitor<'de> for ListVisitor {
    type Value = GpioList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of GPIO grants like [\"in:door\", \"out:relay1\"]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<GpioList, A::Error> {
        // Line → the entry that granted it, so a repeat can name both spellings.
        let mut seen = BTreeMap::new();
        let mut grants = Vec::new();
        while let Some(grant) = seq.next_element_seed(EntrySeed { seen: &mut seen })? {
            grants.push(grant);
        }
        Ok(GpioList(grants))
    }
}

/// Deserializes one entry and checks it against the entries before it, so a repeated line is
/// reported at the repeat's own position.
struct EntrySeed<'a> {
    seen: &'a mut BTreeMap<String, String>,
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = GpioGrant;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<GpioGrant, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for EntrySeed<'_> {
    type Value = GpioGrant;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a GPIO grant string like \"in:door\" or \"out:relay1\"")
    }

    fn visit_str<E: de::Error>(self, entry: &str) -> Result<GpioGrant, E> {
        let grant = parse_entry(entry).map_err(E::custom)?;
        if let Some(first) = self.seen.insert(grant.line.clone(), entry.to_owned()) {
            return Err(E::custom(format!(
                "GPIO line {:?} is granted twice ({first:?} and {entry:?}); list each line once \
                 (`out:` also allows reading)",
                grant.line
            )));
        }
        Ok(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_into_direction_and_line() {
        let cases = [
            ("in:door", "door", GpioAccess::In),
            ("out:relay1", "relay1", GpioAccess::Out),
            ("in:GPIO17", "GPIO17", GpioAccess::In),
            // Only the first colon separates; chip-qualified names keep theirs.
            ("out:gpiochip0:17", "gpiochip0:17", GpioAccess::Out),
            ("in:line with spaces", "line with spaces", GpioAccess::In),
        ];
        for (entry, line, access) in cases {
            assert_eq!(
                parse_entry(entry),
                Ok(GpioGrant {
                    line: line.into(),
                    access
                }),
                "{entry}"
            );
        }
    }

    #[test]
    fn bad_entries_say_why() {
        let long = format!("in:{}", "x".repeat(129));
        let cases = [
            ("door", "expected \"in:<line>\""),
            ("", "expected \"in:<line>\""),
            ("inout:door", "direction \"inout\" is neither `in`"),
            ("IN:door", "direction \"IN\" is neither"),
            (":door", "direction \"\" is neither"),
            ("out:", "the line name is empty (write e.g. \"out:GPIO17\")"),
            ("in: door", "starts or ends with whitespace"),
            ("in:a\tb", "contains a control character"),
            (long.as_str(), "the limit is 128"),
        ];
        for (entry, expected) in cases {
            let error = parse_entry(entry).expect_err(entry);
            assert!(error.contains(expected), "{entry:?}: {error}");
        }
    }

    #[derive(Debug, serde::Deserialize)]
    struct Holder {
        gpio: GpioList,
    }

    #[test]
    fn lists_refuse_repeated_lines_and_wrong_types() {
        let parse = |text: &str| toml::from_str::<Holder>(text).map(|h| h.gpio);
        let list = parse("gpio = [\"in:door\", \"out:relay1\"]").expect("valid list");
        assert_eq!(
            list.0,
            [
                GpioGrant {
                    line: "door".into(),
                    access: GpioAccess::In
                },
                GpioGrant {
                    line: "relay1".into(),
                    access: GpioAccess::Out
                },
            ]
        );
        assert_eq!(parse("gpio = []").expect("empty list").0, []);

        let twice = parse("gpio = [\"in:door\", \"out:door\"]").expect_err("repeated line");
        assert!(
            twice
                .message()
                .contains("GPIO line \"door\" is granted twice (\"in:door\" and \"out:door\")"),
            "{twice}"
        );
        let not_a_list = parse("gpio = \"in:door\"").expect_err("a string");
        assert!(
            not_a_list.message().contains("a list of GPIO grants"),
            "{not_a_list}"
        );
        let number = parse("gpio = [1]").expect_err("a number");
        assert!(number.message().contains("a GPIO grant string"), "{number}");
    }
}
