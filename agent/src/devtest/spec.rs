//! The component-test file format (`tests/*.toml` next to an app's `outpost.toml`): one
//! scenario per file — the world before the first step, the steps, and what each step and the
//! whole run must produce. Parsing and checking only; `docs/TESTING.md` is its page.
//!
//! Every table denies unknown keys, so a misspelt expectation is an error, never a check that
//! silently passes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use outpost_hal::sim::SensorSpec;
use serde::Deserialize;

/// The wall clock at the first step when a file does not say (`start`): 2026-01-01T00:00:00Z.
pub const DEFAULT_START_MS: i64 = 1_767_225_600_000;

/// The device id a test runs as when a file does not say (`device`).
pub const DEFAULT_DEVICE: &str = "test-device";

/// Why a test file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecFileError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML does not parse or does not fit the format (the message names the line).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, as the TOML parser says it.
        message: String,
    },
    /// The TOML fits the format but says something impossible.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// One test file: a scenario run against a fresh, in-memory device.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// What the scenario shows, for people (printed with failures).
    #[serde(default)]
    pub description: Option<String>,
    /// Wall clock at the start, RFC 3339 (`2026-01-01T00:00:00Z`); default [`DEFAULT_START_MS`].
    #[serde(default, deserialize_with = "de_start")]
    pub start: Option<i64>,
    /// The device id (`{device}`, `{commands}`, `device_id`); default [`DEFAULT_DEVICE`].
    #[serde(default)]
    pub device: Option<String>,
    /// The device's groups (`{commands}` expands to their command topics too).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Config variables replacing the manifest's `[variables]`; each must be declared there.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Committed key-value data before the first step, by namespace then key.
    #[serde(default)]
    pub kv: BTreeMap<String, BTreeMap<String, Value>>,
    /// Simulated sensors replacing the manifest's `[[simulator.sensor]]` of the same name (or
    /// added), in the same format.
    #[serde(default)]
    pub sensor: Vec<SensorSpec>,
    /// How long reading a sensor takes, by name (a slow bus); the test clock moves on by it.
    #[serde(default)]
    pub sensor_latency: BTreeMap<String, Dur>,
    /// GPIO input levels before the first step, by line name as grants spell it.
    #[serde(default)]
    pub gpio: BTreeMap<String, bool>,
    /// The steps, run in order.
    #[serde(default)]
    pub step: Vec<Step>,
    /// What the whole run must produce (all steps together).
    #[serde(default)]
    pub expect: Option<Expect>,
}

/// A duration written as humantime text (`"2s"`, `"1500ms"`, `"1m 30s"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Dur(#[serde(with = "humantime_serde")] pub Duration);

/// One step: set the world, then fire a trigger (or invoke a component) once or `repeat` times.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Test time of the (first) firing, since the start; never earlier than the previous
    /// step's last firing. Default: where the previous step left the clock.
    #[serde(default)]
    pub at: Option<Dur>,
    /// The manifest trigger to fire, as the device would: cron, interval and on-start triggers
    /// run with the current time as their scheduled time; a sensor trigger samples its sensor
    /// and runs only if its `fire` rule says so; an `mqtt` trigger gets `topic` and `payload`.
    #[serde(default)]
    pub trigger: Option<String>,
    /// Instead of a trigger: invoke this component by hand (kind `manual`) with `payload`.
    #[serde(default)]
    pub component: Option<String>,
    /// Fire this many times (default 1), the clock moving on by `every` between firings.
    #[serde(default)]
    pub repeat: Option<u32>,
    /// Time between repeated firings; required when `repeat` > 1.
    #[serde(default)]
    pub every: Option<Dur>,
    /// Sensor values from this step on (held until changed; over any profile).
    #[serde(default)]
    pub sensors: BTreeMap<String, f64>,
    /// GPIO input levels from this step on.
    #[serde(default)]
    pub gpio: BTreeMap<String, bool>,
    /// An `mqtt` trigger's message topic; default: the trigger's filter if it has no wildcard.
    #[serde(default)]
    pub topic: Option<String>,
    /// The message (`mqtt`) or manual payload, as UTF-8 text.
    #[serde(default)]
    pub payload: Option<String>,
    /// The same as hex, for binary payloads.
    #[serde(default)]
    pub payload_hex: Option<String>,
    /// What this step must produce.
    #[serde(default)]
    pub expect: Option<Expect>,
}

/// Expectations: each one given is checked, the ones left out are not.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Every invocation's outcome (steps only; default `ok`).
    #[serde(default)]
    pub outcome: Option<OutcomeKind>,
    /// Every failed invocation's message contains this text (implies `outcome = "error"`).
    #[serde(default)]
    pub error: Option<String>,
    /// How many firings ran the component (a sensor rule may not fire; steps only).
    #[serde(default)]
    pub fired: Option<u32>,
    /// Exactly these events, in order.
    #[serde(default)]
    pub events: Option<Vec<EventExpect>>,
    /// Exactly these MQTT publishes, in order.
    #[serde(default)]
    pub publishes: Option<Vec<PublishExpect>>,
    /// Exactly these GPIO writes, in order.
    #[serde(default)]
    pub gpio: Option<Vec<GpioExpect>>,
    /// Committed key-value data afterwards, by namespace then key (keys not named are not
    /// checked).
    #[serde(default)]
    pub kv: BTreeMap<String, BTreeMap<String, Value>>,
}

/// What every invocation of a step must end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeKind {
    /// Succeeded and committed.
    Ok,
    /// Failed (trap, non-zero return, a limit or deadline): nothing committed.
    Error,
    /// Not checked.
    Any,
}

/// An expected event. Give exactly one of `data`, `data_hex`, `json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventExpect {
    /// Its stream.
    pub stream: String,
    /// Its bytes as UTF-8 text, compared exactly.
    #[serde(default)]
    pub data: Option<String>,
    /// Its bytes as hex.
    #[serde(default)]
    pub data_hex: Option<String>,
    /// Its bytes parsed as JSON equal this (key order and spacing do not matter; `1` and `1.0`
    /// differ).
    #[serde(default)]
    pub json: Option<toml::Value>,
}

/// An expected MQTT publish. `payload` or `payload_hex`; `qos` and `retain` when given.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishExpect {
    /// Its topic.
    pub topic: String,
    /// Its body as UTF-8 text.
    #[serde(default)]
    pub payload: Option<String>,
    /// Its body as hex.
    #[serde(default)]
    pub payload_hex: Option<String>,
    /// 0 or 1.
    #[serde(default)]
    pub qos: Option<u8>,
    /// The retain flag.
    #[serde(default)]
    pub retain: Option<bool>,
}

/// An expected GPIO write (line as the grant spells it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioExpect {
    /// The line.
    pub line: String,
    /// The level driven.
    pub value: bool,
}

/// A key-value value: UTF-8 text, `{ hex = "…" }`, or `{ absent = true }` (expectations only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// These bytes.
    Bytes(Vec<u8>),
    /// No such key.
    Absent,
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// The table form; a plain string is the text form.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            #[serde(default)]
            hex: Option<String>,
            #[serde(default)]
            absent: Option<bool>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Table(Table),
        }
        match Raw::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "a key-value value is a string, { hex = \"…\" } or { absent = true }",
            )
        })? {
            Raw::Text(text) => Ok(Value::Bytes(text.into_bytes())),
            Raw::Table(Table {
                hex: Some(hex),
                absent: None,
            }) => decode_hex(&hex)
                .map(Value::Bytes)
                .map_err(serde::de::Error::custom),
            Raw::Table(Table {
                hex: None,
                absent: Some(true),
            }) => Ok(Value::Absent),
            Raw::Table(_) => Err(serde::de::Error::custom(
                "give exactly one of `hex = \"…\"` or `absent = true`",
            )),
        }
    }
}

/// Parses hex text (`"00ff"`, spaces allowed between bytes).
pub fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("hex `{text}` has an odd number of digits"));
    }
    digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("`{text}` is not hex"))
        })
        .collect()
}

fn de_start<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    let text = String::deserialize(deserializer)?;
    chrono::DateTime::parse_from_rfc3339(&text)
        .map(|time| Some(time.timestamp_millis()))
        .map_err(|error| {
            serde::de::Error::custom(format!(
                "start `{text}` is not an RFC 3339 time such as 2026-01-01T00:00:00Z: {error}"
            ))
        })
}

impl TestSpec {
    /// Reads and checks one test file.
    pub fn load(path: &Path) -> Result<TestSpec, SpecFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        TestSpec::parse(&text).map_err(|error| match error {
            SpecFileError::Parse { message, .. } => SpecFileError::Parse {
                path: path.display().to_string(),
                message,
            },
            SpecFileError::Invalid { message, .. } => SpecFileError::Invalid {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses and checks a test file's text (the path in errors is left empty).
    pub fn parse(text: &str) -> Result<TestSpec, SpecFileError> {
        let spec: TestSpec = toml::from_str(text).map_err(|error| SpecFileError::Parse {
            path: String::new(),
            message: error.to_string(),
        })?;
        spec.check().map_err(|message| SpecFileError::Invalid {
            path: String::new(),
            message,
        })?;
        Ok(spec)
    }

    /// The start instant, ms since the epoch.
    pub fn start_ms(&self) -> i64 {
        self.start.unwrap_or(DEFAULT_START_MS)
    }

    /// The device id.
    pub fn device(&self) -> &str {
        self.device.as_deref().unwrap_or(DEFAULT_DEVICE)
    }

    /// Checks what the types cannot: one action per step, repeat with every, one payload form,
    /// expectations that can be met. Names are checked against the manifest by the runner.
    fn check(&self) -> Result<(), String> {
        if self.step.is_empty() {
            return Err("no [[step]]: a test fires at least one trigger".into());
        }
        for (index, step) in self.step.iter().enumerate() {
            let at = |message: String| format!("step {}: {message}", index + 1);
            step.check().map_err(at)?;
        }
        if let Some(expect) = &self.expect {
            if expect.outcome.is_some() || expect.error.is_some() || expect.fired.is_some() {
                return Err(
                    "[expect] (the whole run) takes events, publishes, gpio and kv; outcome, \
                     error and fired belong to a step's [step.expect]"
                        .into(),
                );
            }
            expect
                .check()
                .map_err(|message| format!("[expect]: {message}"))?;
        }
        for values in self.kv.values() {
            if values.values().any(|value| *value == Value::Absent) {
                return Err("[kv] (the data before the first step) cannot hold `absent`".into());
            }
        }
        Ok(())
    }
}

impl Step {
    /// How many times the step fires.
    pub fn times(&self) -> u32 {
        self.repeat.unwrap_or(1)
    }

    /// The payload given, as bytes.
    pub fn payload_bytes(&self) -> Vec<u8> {
        match (&self.payload, &self.payload_hex) {
            (Some(text), _) => text.as_bytes().to_vec(),
            (None, Some(hex)) => decode_hex(hex).unwrap_or_default(),
            (None, None) => Vec::new(),
        }
    }

    fn check(&self) -> Result<(), String> {
        match (&self.trigger, &self.component) {
            (Some(_), Some(_)) => return Err("give `trigger` or `component`, not both".into()),
            (None, None) => return Err("give the `trigger` to fire (or a `component`)".into()),
            _ => {}
        }
        match (self.repeat, self.every) {
            (Some(0), _) => return Err("`repeat` is at least 1".into()),
            (Some(n), None) if n > 1 => {
                return Err("`repeat` above 1 needs `every` (the time between firings)".into());
            }
            _ => {}
        }
        if self.payload.is_some() && self.payload_hex.is_some() {
            return Err("give `payload` or `payload_hex`, not both".into());
        }
        if let Some(hex) = &self.payload_hex {
            decode_hex(hex)?;
        }
        if self.component.is_some() && self.topic.is_some() {
            return Err("`topic` is for an mqtt trigger, not a manual invocation".into());
        }
        if let Some(expect) = &self.expect {
            expect.check()?;
        }
        Ok(())
    }
}

impl Expect {
    /// The outcome every invocation must have: `error` implies `error`, else `ok` by default.
    pub fn outcome(&self) -> OutcomeKind {
        match (self.outcome, &self.error) {
            (Some(kind), _) => kind,
            (None, Some(_)) => OutcomeKind::Error,
            (None, None) => OutcomeKind::Ok,
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.error.is_some() && self.outcome == Some(OutcomeKind::Ok) {
            return Err("`error` expects a failure; `outcome = \"ok\"` contradicts it".into());
        }
        for event in self.events.iter().flatten() {
            let forms = [
                event.data.is_some(),
                event.data_hex.is_some(),
                event.json.is_some(),
            ];
            if forms.iter().filter(|given| **given).count() != 1 {
                return Err(format!(
                    "event on stream `{}`: give exactly one of data, data_hex, json",
                    event.stream
                ));
            }
            if let Some(hex) = &event.data_hex {
                decode_hex(hex)?;
            }
        }
        for publish in self.publishes.iter().flatten() {
            if publish.payload.is_some() && publish.payload_hex.is_some() {
                return Err(format!(
                    "publish to `{}`: give payload or payload_hex, not both",
                    publish.topic
                ));
            }
            if let Some(hex) = &publish.payload_hex {
                decode_hex(hex)?;
            }
            if publish.qos.is_some_and(|qos| qos > 1) {
                return Err(format!("publish to `{}`: qos is 0 or 1", publish.topic));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
description = "the mean crosses the threshold"
start = "2026-03-01T12:00:00Z"
device = "pi-7"
groups = ["north"]

[variables]
threshold = "20.0"

[kv.window]
state = "below"
samples = { hex = "0000000000003440" }

[[sensor]]
name = "temperature"
profile = "step"
steps = [{ at = "0s", value = 18.0 }, { at = "5s", value = 26.0 }]

[sensor_latency]
temperature = "20ms"

[gpio]
button = true

[[step]]
at = "1s"
trigger = "each-sample"
repeat = 3
every = "1s"
sensors = { temperature = 25.5 }

[step.expect]
fired = 3
events = [
  { stream = "means", data = '{"mean":25.500,"samples":1}' },
  { stream = "means", json = { mean = 25.5, samples = 2 } },
  { stream = "means", data_hex = "7b7d" },
]
publishes = [{ topic = "alerts/temperature", payload = "hot", qos = 1, retain = false }]
gpio = [{ line = "led", value = true }]
kv = { window = { state = "above", gone = { absent = true } } }

[[step]]
component = "aggregator"
payload_hex = "00 01"
expect = { error = "deadline" }

[expect]
kv = { window = { state = "above" } }
"#;

    #[test]
    fn a_full_file_parses() {
        let spec = TestSpec::parse(FULL).expect("parses");
        assert_eq!(spec.start_ms(), 1_772_366_400_000);
        assert_eq!(spec.device(), "pi-7");
        assert_eq!(spec.sensor.len(), 1);
        assert_eq!(
            spec.sensor_latency["temperature"].0,
            Duration::from_millis(20)
        );
        assert_eq!(
            spec.kv["window"]["samples"],
            Value::Bytes(20.0f64.to_le_bytes().to_vec())
        );
        let first = &spec.step[0];
        assert_eq!(first.times(), 3);
        assert_eq!(first.at, Some(Dur(Duration::from_secs(1))));
        let expect = first.expect.as_ref().expect("expect");
        assert_eq!(expect.outcome(), OutcomeKind::Ok);
        assert_eq!(expect.events.as_ref().map(Vec::len), Some(3));
        assert_eq!(expect.kv["window"]["gone"], Value::Absent);
        let second = &spec.step[1];
        assert_eq!(second.payload_bytes(), vec![0, 1]);
        assert_eq!(
            second.expect.as_ref().map(Expect::outcome),
            Some(OutcomeKind::Error)
        );
    }

    #[test]
    fn defaults_are_documented_values() {
        let spec = TestSpec::parse("[[step]]\ntrigger = \"t\"\n").expect("parses");
        assert_eq!(spec.start_ms(), DEFAULT_START_MS);
        assert_eq!(spec.device(), DEFAULT_DEVICE);
        assert_eq!(spec.step[0].times(), 1);
    }

    fn error_of(text: &str) -> String {
        TestSpec::parse(text).expect_err("refused").to_string()
    }

    #[test]
    fn mistakes_are_named() {
        assert!(error_of("[[step]]\ntrigger = \"t\"\nexpetc = {}\n").contains("expetc"));
        assert!(error_of("").contains("no [[step]]"));
        assert!(error_of("[[step]]\n").contains("trigger"));
        assert!(error_of("[[step]]\ntrigger = \"t\"\nrepeat = 3\n").contains("every"));
        assert!(
            error_of("[[step]]\ntrigger = \"t\"\n[step.expect]\nevents = [{ stream = \"s\" }]\n")
                .contains("exactly one of data")
        );
        assert!(
            error_of("start = \"yesterday\"\n[[step]]\ntrigger = \"t\"\n").contains("RFC 3339")
        );
        assert!(
            error_of("[[step]]\ntrigger = \"t\"\n[expect]\nfired = 1\n")
                .contains("belong to a step")
        );
        assert!(
            error_of(
                "[[step]]\ntrigger = \"t\"\n[step.expect]\nkv = { a = { b = { hex = \"0\" } } }\n"
            )
            .contains("odd number")
        );
    }
}
