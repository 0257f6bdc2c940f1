//! MQTT topic filters for `publish` grants, with the matching rules of MQTT 3.1.1 §4.7.
//!
//! A filter is split into levels at `/`. `+` matches exactly one level (which may be empty), `#`
//! matches the parent level and everything below it, and must be the last level. Topics that
//! start with `$` (broker-internal, like `$SYS/...`) are never matched by a filter that starts
//! with a wildcard, so a grant of `#` cannot reach them by accident.

use std::fmt;
use std::str::FromStr;

use outpost_abi::limits::MAX_TOPIC_LEN;
use thiserror::Error;

/// A validated MQTT topic filter, e.g. `alerts/#` or `site/+/temperature`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicFilter(String);

/// Why a string is not a valid topic filter.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid MQTT topic filter {filter:?}: {reason}")]
pub struct TopicFilterError {
    filter: String,
    reason: &'static str,
}

impl TopicFilter {
    /// Validates `filter`: 1 to 256 bytes, no NUL, `+` and `#` only as whole levels, `#` last.
    pub fn new(filter: &str) -> Result<TopicFilter, TopicFilterError> {
        let fail = |reason| {
            Err(TopicFilterError {
                filter: filter.to_owned(),
                reason,
            })
        };
        if filter.is_empty() {
            return fail("it is empty");
        }
        if filter.len() > MAX_TOPIC_LEN {
            return fail("it is longer than 256 bytes");
        }
        if filter.contains('\0') {
            return fail("it contains a NUL character");
        }
        let levels: Vec<&str> = filter.split('/').collect();
        for (index, level) in levels.iter().enumerate() {
            if level.contains('#') && (*level != "#" || index + 1 != levels.len()) {
                return fail("`#` must be a whole level and the last one, as in `alerts/#`");
            }
            if level.contains('+') && *level != "+" {
                return fail("`+` must be a whole level, as in `site/+/temperature`");
            }
        }
        Ok(TopicFilter(filter.to_owned()))
    }

    /// The filter as written in the manifest.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a concrete topic (no wildcards) matches this filter. An invalid topic name
    /// matches nothing, so callers can use this as the whole publish check.
    pub fn matches(&self, topic: &str) -> bool {
        if !is_valid_topic_name(topic) {
            return false;
        }
        if topic.starts_with('$') && self.0.starts_with(['+', '#']) {
            return false;
        }
        let mut topic_levels = topic.split('/');
        for level in self.0.split('/') {
            match level {
                "#" => return true,
                "+" => {
                    if topic_levels.next().is_none() {
                        return false;
                    }
                }
                literal => {
                    if topic_levels.next() != Some(literal) {
                        return false;
                    }
                }
            }
        }
        topic_levels.next().is_none()
    }
}

/// Whether `topic` may be published to: 1 to 256 bytes, no wildcards, no NUL.
pub fn is_valid_topic_name(topic: &str) -> bool {
    !topic.is_empty() && topic.len() <= MAX_TOPIC_LEN && !topic.contains(['+', '#', '\0'])
}

impl FromStr for TopicFilter {
    type Err = TopicFilterError;

    fn from_str(filter: &str) -> Result<TopicFilter, TopicFilterError> {
        TopicFilter::new(filter)
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_follows_mqtt_3_1_1() {
        // (filter, topic, matches): mostly the examples of MQTT 3.1.1 §4.7.1 and §4.7.2.
        let cases = [
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/ranking",
                true,
            ),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/score/wimbledon",
                true,
            ),
            ("sport/tennis/player1/#", "sport/tennis/player2", false),
            ("sport/#", "sport", true),
            ("#", "anything/at/all", true),
            ("#", "/leading/slash", true),
            ("sport/tennis/+", "sport/tennis/player1", true),
            ("sport/tennis/+", "sport/tennis/player1/ranking", false),
            ("sport/tennis/+", "sport/tennis", false),
            ("sport/+", "sport/", true),
            ("sport/+", "sport", false),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+", "/finance", false),
            ("+", "finance", true),
            ("+/tennis/#", "sport/tennis/player1", true),
            ("alerts/#", "alerts/high", true),
            ("alerts/#", "alert/high", false),
            ("alerts", "alerts", true),
            ("alerts", "alerts/", false),
            ("alerts", "Alerts", false),
            ("a//b", "a//b", true),
            // `$` topics are out of reach of leading wildcards, but not of literal filters.
            ("#", "$SYS/uptime", false),
            ("+/monitor/Clients", "$SYS/monitor/Clients", false),
            ("$SYS/#", "$SYS/monitor/Clients", true),
            ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
            // Topic names with wildcards, or empty, are not publishable at all.
            ("#", "alerts/+", false),
            ("#", "alerts/#", false),
            ("#", "", false),
        ];
        for (filter, topic, expected) in cases {
            let parsed = TopicFilter::new(filter).expect(filter);
            assert_eq!(parsed.matches(topic), expected, "{filter} vs {topic}");
        }
    }

    #[test]
    fn invalid_filters_are_refused_with_a_reason() {
        let long = "a".repeat(MAX_TOPIC_LEN + 1);
        let cases = [
            ("", "empty"),
            (
                "alerts/#/more",
                "`#` must be a whole level and the last one",
            ),
            ("alerts#", "`#` must be a whole level"),
            ("alerts/a#", "`#` must be a whole level"),
            ("sport+", "`+` must be a whole level"),
            ("sport/+tennis", "`+` must be a whole level"),
            ("a\0b", "NUL"),
            (long.as_str(), "longer than 256 bytes"),
        ];
        for (filter, expected) in cases {
            let error = TopicFilter::new(filter).expect_err(filter).to_string();
            assert!(error.contains(expected), "{filter:?}: {error}");
        }
    }

    #[test]
    fn valid_filters_round_trip() {
        for filter in ["#", "+", "alerts/#", "+/+/x", "/", "a//b", "$SYS/#"] {
            let parsed: TopicFilter = filter.parse().expect(filter);
            assert_eq!(parsed.as_str(), filter);
            assert_eq!(parsed.to_string(), filter);
        }
    }
}
