//! Single values that need more than a TOML type to read: durations and cron expressions.
//!
//! They are parsed while deserializing, so a malformed one is reported with its line and column,
//! the same way as a wrong type. (Rules that need context, like "interval must be at least 1ms",
//! live in `convert`.)

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A humantime duration: `"500ms"`, `"5s"`, `"1m 30s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HumanDuration(pub Duration);

/// A cron expression that the `cron` crate accepts, kept as written: the scheduler parses it
/// again with the same crate, so the model stays free of that crate's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CronExpr(pub String);

/// Checks a cron expression: 6 fields (seconds first) or 7 (plus year), or a shorthand such as
/// `@daily` that the `cron` crate understands.
pub(crate) fn check_cron(expr: &str) -> Result<(), String> {
    let fields = expr.split_whitespace().count();
    let shorthand = expr.trim_start().starts_with('@');
    if !shorthand && !(6..=7).contains(&fields) {
        // Five fields is the classic Unix crontab; say so, since it is the likeliest mistake.
        let hint = if fields == 5 {
            "; add a seconds field first, e.g. \"0 */5 * * * *\" for every 5 minutes"
        } else {
            ""
        };
        return Err(format!(
            "invalid cron expression {expr:?}: {fields} fields, expected 6 (sec min hour \
             day-of-month month day-of-week) or 7 (plus year){hint}"
        ));
    }
    cron::Schedule::from_str(expr).map(drop).map_err(|error| {
        format!(
            "invalid cron expression {expr:?}: {}",
            describe_cron_error(&error.to_string())
        )
    })
}

/// The `cron` crate reports errors in three lines: the expression, a caret under the problem,
/// and the reason (sometimes empty). Our errors are one line, so the caret becomes a position.
fn describe_cron_error(text: &str) -> String {
    let mut lines = text.lines().skip(1);
    let Some(column) = lines.next().and_then(|caret| caret.find('^')) else {
        return crate::error::one_line(text);
    };
    let reason = crate::error::one_line(&lines.collect::<Vec<_>>().join("\n"));
    let reason = if reason.is_empty() {
        "not understood"
    } else {
        reason.as_str()
    };
    format!(
        "{} (at character {})",
        reason.trim_end_matches('.'),
        column + 1
    )
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(DurationVisitor)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = HumanDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration string like \"500ms\", \"5s\" or \"1m 30s\"")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<HumanDuration, E> {
        humantime::parse_duration(value)
            .map(HumanDuration)
            .map_err(|error| {
                E::custom(format!(
                    "invalid duration {value:?}: {error} (write e.g. \"500ms\", \"5s\", \"1m 30s\")"
                ))
            })
    }
}

impl<'de> Deserialize<'de> for CronExpr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(CronVisitor)
    }
}

struct CronVisitor;

impl Visitor<'_> for CronVisitor {
    type Value = CronExpr;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a cron expression like \"*/10 * * * * *\"")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<CronExpr, E> {
        check_cron(value).map_err(E::custom)?;
        Ok(CronExpr(value.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_accepts_six_and_seven_fields_and_shorthands() {
        for expr in [
            "*/10 * * * * *",
            "0 0 6 * * Mon-Fri",
            "0 30 9 1 Jan * 2030",
            "@daily",
        ] {
            assert_eq!(check_cron(expr), Ok(()), "{expr}");
        }
    }

    #[test]
    fn cron_rejections_say_why() {
        let cases = [
            ("*/5 * * * *", "5 fields, expected 6"),
            ("*/5 * * * *", "add a seconds field first"),
            ("* *", "2 fields"),
            ("", "0 fields"),
            (
                "*/0 * * * * *",
                "range step cannot be zero (at character 1)",
            ),
            ("0 0 25 * * *", "('25' specified.) (at character 5)"),
            (
                "* * * * * Blursday",
                "'Blursday' is not a valid day of the week (at character 11)",
            ),
            (
                "* * * * * * * *",
                "invalid cron expression \"* * * * * * * *\": 8 fields",
            ),
        ];
        for (expr, expected) in cases {
            let error = check_cron(expr).expect_err(expr);
            assert!(error.contains(expected), "{expr}: {error}");
        }
    }

    #[derive(Debug, serde::Deserialize)]
    struct Holder {
        every: HumanDuration,
    }

    #[test]
    fn durations_parse_or_explain() {
        let parse = |text: &str| toml::from_str::<Holder>(text).map(|h| h.every.0);
        let cases = [
            ("every = \"500ms\"", Duration::from_millis(500)),
            ("every = \"5s\"", Duration::from_secs(5)),
            ("every = \"1m 30s\"", Duration::from_secs(90)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text).ok(), Some(expected), "{text}");
        }
        let bad = parse("every = \"5 parsecs\"").expect_err("unknown unit");
        assert!(
            bad.message().contains("invalid duration \"5 parsecs\""),
            "{bad}"
        );
        let number = parse("every = 5").expect_err("bare number");
        assert!(number.message().contains("a duration string"), "{number}");
    }
}
