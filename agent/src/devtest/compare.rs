//! Expected against actual, as a list of readable mismatches (pure).

use serde::Serialize;

use super::spec::{EventExpect, GpioExpect, OutcomeKind, PublishExpect, Value};

/// One expectation not met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// The step (1-based), or `None` for the whole run's `[expect]`.
    pub step: Option<usize>,
    /// What was checked: `events`, `kv window/state`, `outcome (firing 2 of 3)`.
    pub what: String,
    /// What the file expects, one item per line.
    pub expected: String,
    /// What happened, one item per line.
    pub actual: String,
}

impl Mismatch {
    /// The mismatch for people: where, what, then a line diff (`-` expected, `+` actual).
    pub fn render(&self) -> String {
        let place = match self.step {
            Some(step) => format!("step {step}"),
            None => "[expect]".to_owned(),
        };
        let mut out = format!("  {place}: {}\n", self.what);
        let expected: Vec<&str> = self.expected.lines().collect();
        let actual: Vec<&str> = self.actual.lines().collect();
        for line in diff(&expected, &actual) {
            out.push_str("    ");
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

/// A line diff of two short lists (LCS): common lines with two spaces, `-` expected only,
/// `+` actual only; `(none)` marks an empty side.
fn diff(expected: &[&str], actual: &[&str]) -> Vec<String> {
    let (n, m) = (expected.len(), actual.len());
    // lcs[i][j]: the longest common subsequence of expected[i..] and actual[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if expected[i] == actual[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && expected[i] == actual[j] {
            out.push(format!("  {}", expected[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("- {}", expected[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", actual[j]));
            j += 1;
        }
    }
    if n == 0 {
        out.insert(0, "- (none)".to_owned());
    }
    if m == 0 {
        out.push("+ (none)".to_owned());
    }
    out
}

/// Bytes as text when they are UTF-8 without control characters, else `hex:…`.
pub fn show_bytes(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.chars().any(char::is_control) => text.to_owned(),
        _ => format!("hex:{}", hex(bytes)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An event that happened.
#[derive(Debug, Clone, PartialEq)]
pub struct ActualEvent {
    /// Its stream.
    pub stream: String,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// A publish that happened.
#[derive(Debug, Clone, PartialEq)]
pub struct ActualPublish {
    /// Its topic.
    pub topic: String,
    /// Its body.
    pub payload: Vec<u8>,
    /// 0 or 1.
    pub qos: u8,
    /// Retain flag.
    pub retain: bool,
}

/// How one invocation ended: `None` for success, else its error message.
pub type ActualOutcome = Option<String>;

/// Compares lists item by item with `matches`; on any difference, one mismatch showing both
/// lists in full, rendered with `show_expected`/`show_actual` (an item that matches is
/// rendered the same on both sides, so the diff shows only real differences).
fn lists<E, A>(
    step: Option<usize>,
    what: &str,
    expected: &[E],
    actual: &[A],
    matches: impl Fn(&E, &A) -> bool,
    show_expected: impl Fn(&E) -> String,
    show_actual: impl Fn(&A) -> String,
) -> Option<Mismatch> {
    let same =
        expected.len() == actual.len() && expected.iter().zip(actual).all(|(e, a)| matches(e, a));
    if same {
        return None;
    }
    // Items that match the expectation at the same position print as the expectation does.
    let actual_lines: Vec<String> = actual
        .iter()
        .enumerate()
        .map(|(index, item)| match expected.get(index) {
            Some(e) if matches(e, item) => show_expected(e),
            _ => show_actual(item),
        })
        .collect();
    Some(Mismatch {
        step,
        what: format!(
            "{what} ({} expected, {} happened)",
            expected.len(),
            actual.len()
        ),
        expected: expected
            .iter()
            .map(show_expected)
            .collect::<Vec<_>>()
            .join("\n"),
        actual: actual_lines.join("\n"),
    })
}

/// Checks events.
pub fn events(
    step: Option<usize>,
    expected: &[EventExpect],
    actual: &[ActualEvent],
) -> Option<Mismatch> {
    lists(
        step,
        "events",
        expected,
        actual,
        event_matches,
        |e| {
            let data = match (&e.data, &e.data_hex, &e.json) {
                (Some(text), _, _) => text.clone(),
                (_, Some(hex), _) => super::spec::decode_hex(hex)
                    .map(|bytes| show_bytes(&bytes))
                    .unwrap_or_default(),
                (_, _, Some(json)) => serde_json::to_string(json).unwrap_or_default(),
                _ => String::new(),
            };
            format!("{}: {data}", e.stream)
        },
        |a| format!("{}: {}", a.stream, show_bytes(&a.data)),
    )
}

fn event_matches(expected: &EventExpect, actual: &ActualEvent) -> bool {
    if expected.stream != actual.stream {
        return false;
    }
    match (&expected.data, &expected.data_hex, &expected.json) {
        (Some(text), _, _) => text.as_bytes() == actual.data.as_slice(),
        (_, Some(hex), _) => super::spec::decode_hex(hex).is_ok_and(|bytes| bytes == actual.data),
        (_, _, Some(json)) => {
            let want = serde_json::to_value(json).ok();
            let got = serde_json::from_slice::<serde_json::Value>(&actual.data).ok();
            want.is_some() && want == got
        }
        _ => false,
    }
}

/// Checks publishes.
pub fn publishes(
    step: Option<usize>,
    expected: &[PublishExpect],
    actual: &[ActualPublish],
) -> Option<Mismatch> {
    lists(
        step,
        "publishes",
        expected,
        actual,
        |e, a| {
            let payload = match (&e.payload, &e.payload_hex) {
                (Some(text), _) => Some(text.as_bytes().to_vec()),
                (_, Some(hex)) => super::spec::decode_hex(hex).ok(),
                _ => None,
            };
            e.topic == a.topic
                && payload.is_none_or(|p| p == a.payload)
                && e.qos.is_none_or(|q| q == a.qos)
                && e.retain.is_none_or(|r| r == a.retain)
        },
        |e| {
            let payload = match (&e.payload, &e.payload_hex) {
                (Some(text), _) => text.clone(),
                (_, Some(hex)) => super::spec::decode_hex(hex)
                    .map(|bytes| show_bytes(&bytes))
                    .unwrap_or_default(),
                _ => "(any payload)".to_owned(),
            };
            let mut line = format!("{}: {payload}", e.topic);
            if let Some(qos) = e.qos {
                line.push_str(&format!(" qos={qos}"));
            }
            if let Some(retain) = e.retain {
                line.push_str(&format!(" retain={retain}"));
            }
            line
        },
        |a| {
            format!(
                "{}: {} qos={} retain={}",
                a.topic,
                show_bytes(&a.payload),
                a.qos,
                a.retain
            )
        },
    )
}

/// Checks GPIO writes.
pub fn gpio(
    step: Option<usize>,
    expected: &[GpioExpect],
    actual: &[GpioExpect],
) -> Option<Mismatch> {
    let show = |g: &GpioExpect| format!("{} = {}", g.line, if g.value { "high" } else { "low" });
    lists(
        step,
        "gpio writes",
        expected,
        actual,
        |e, a| e == a,
        show,
        show,
    )
}

/// Checks each invocation's outcome.
pub fn outcomes(
    step: usize,
    kind: OutcomeKind,
    error: Option<&str>,
    actual: &[ActualOutcome],
) -> Vec<Mismatch> {
    let total = actual.len();
    let mut out = Vec::new();
    for (index, outcome) in actual.iter().enumerate() {
        let what = if total == 1 {
            "outcome".to_owned()
        } else {
            format!("outcome (firing {} of {total})", index + 1)
        };
        let shown = match outcome {
            None => "ok".to_owned(),
            Some(message) => format!("error: {message}"),
        };
        let expected = match (kind, outcome) {
            (OutcomeKind::Any, _) => continue,
            (OutcomeKind::Ok, None) => continue,
            (OutcomeKind::Ok, Some(_)) => "ok".to_owned(),
            (OutcomeKind::Error, Some(message)) => match error {
                Some(text) if !message.contains(text) => format!("error containing: {text}"),
                _ => continue,
            },
            (OutcomeKind::Error, None) => match error {
                Some(text) => format!("error containing: {text}"),
                None => "error".to_owned(),
            },
        };
        out.push(Mismatch {
            step: Some(step),
            what,
            expected,
            actual: shown,
        });
    }
    out
}

/// Checks one key's committed value.
pub fn kv(
    step: Option<usize>,
    ns: &str,
    key: &str,
    expected: &Value,
    actual: Option<&[u8]>,
) -> Option<Mismatch> {
    let show = |value: Option<&[u8]>| match value {
        Some(bytes) => show_bytes(bytes),
        None => "(absent)".to_owned(),
    };
    let want = match expected {
        Value::Bytes(bytes) => Some(bytes.as_slice()),
        Value::Absent => None,
    };
    (want != actual).then(|| Mismatch {
        step,
        what: format!("kv {ns}/{key}"),
        expected: show(want),
        actual: show(actual),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_marks_only_what_differs() {
        let lines = diff(&["a", "b", "c"], &["a", "x", "c"]);
        assert_eq!(lines, vec!["  a", "- b", "+ x", "  c"]);
        assert_eq!(diff(&[], &["a"]), vec!["- (none)", "+ a"]);
    }

    #[test]
    fn events_match_by_text_hex_or_json() {
        let actual = [ActualEvent {
            stream: "s".into(),
            data: br#"{"b":1,"a":2.5}"#.to_vec(),
        }];
        let json: toml::Value = toml::from_str("a = 2.5\nb = 1").expect("toml");
        let by_json = EventExpect {
            stream: "s".into(),
            data: None,
            data_hex: None,
            json: Some(json),
        };
        assert_eq!(events(None, &[by_json], &actual), None);
        let wrong = EventExpect {
            stream: "s".into(),
            data: Some("{}".into()),
            data_hex: None,
            json: None,
        };
        let mismatch = events(Some(2), &[wrong], &actual).expect("differs");
        let text = mismatch.render();
        assert!(text.contains("step 2: events"), "{text}");
        assert!(text.contains("- s: {}"), "{text}");
        assert!(text.contains(r#"+ s: {"b":1,"a":2.5}"#), "{text}");
    }

    #[test]
    fn outcomes_name_the_expected_error() {
        let actual = [None, Some("deadline 1s exceeded".to_owned())];
        assert!(outcomes(1, OutcomeKind::Error, Some("deadline"), &actual[1..]).is_empty());
        let found = outcomes(1, OutcomeKind::Ok, None, &actual);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].what, "outcome (firing 2 of 2)");
    }
}
