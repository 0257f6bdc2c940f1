//! Human-readable durations (`"500ms"`, `"60s"`, `"1m 30s"`) as sensor specs write them.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Deserializes a humantime string into a [`Duration`]; for `#[serde(deserialize_with)]`.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    deserializer.deserialize_str(HumanVisitor)
}

/// A [`Duration`] written as a humantime string. Lets `Option<_>` fields deserialize without a
/// second `deserialize_with` helper.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HumanDuration(pub(crate) Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize(deserializer).map(HumanDuration)
    }
}

/// Parses strings only: a bare number would leave the unit to guesswork.
struct HumanVisitor;

impl Visitor<'_> for HumanVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration string such as \"500ms\", \"60s\" or \"1m 30s\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        humantime::parse_duration(text).map_err(|error| {
            E::custom(format_args!(
                "invalid duration \"{text}\": {error}; write e.g. \"500ms\", \"60s\" or \"1m 30s\""
            ))
        })
    }
}

/// Formats a duration the way a spec would write it, for messages.
pub(crate) fn display(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// `t` modulo `period`, in whole nanoseconds so long uptimes lose no precision.
/// A zero `period` returns `t` unchanged (validation rejects zero periods anyway).
pub(crate) fn wrap(t: Duration, period: Duration) -> Duration {
    let period = period.as_nanos();
    if period == 0 {
        return t;
    }
    // The remainder is below `period`, which came from a Duration, so it fits unless the period
    // itself exceeds ~584 years; then `t` is necessarily inside the first period.
    u64::try_from(t.as_nanos() % period).map_or(t, Duration::from_nanos)
}
