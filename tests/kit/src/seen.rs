//! What an independent subscriber recorded: every event the agent delivered, in arrival order
//! (a batch contributes one arrival per element), the latest status per device, every other
//! message, and wire-format problems. Pure bookkeeping; the client is in [`crate::subscriber`].

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// One event as it arrived (a batch contributes one per element, in order).
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    /// `device` of the event object.
    pub device: String,
    /// `stream` of the event object.
    pub stream: String,
    /// `seq` of the event object.
    pub seq: u64,
    /// `time` of the event object (ms since the epoch).
    pub time: i64,
    /// The whole event object.
    pub event: Value,
}

/// A message on a topic that is not an events topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Its topic.
    pub topic: String,
    /// Its body.
    pub payload: Vec<u8>,
    /// Whether it came with the retain flag (a retained message replayed on subscribe).
    pub retain: bool,
}

/// Everything a [`Subscriber`] has seen so far.
#[derive(Debug, Default)]
pub struct Seen {
    /// Every event, in arrival order, duplicates included.
    pub events: Vec<Arrival>,
    /// MQTT messages received on events topics (a batch is one message).
    pub event_messages: usize,
    /// Every message on other topics (status included), in arrival order.
    pub messages: Vec<Message>,
    /// The latest status document per device (from `{prefix}/{device}/status`).
    pub statuses: HashMap<String, Value>,
    /// Wire-format violations: unparsable payloads, missing keys, topic/payload mismatches.
    pub problems: Vec<String>,
    /// Sessions established (ConnAcks).
    pub connects: usize,
    /// Distinct `(stream, seq)` seen per device.
    unique: HashMap<String, HashSet<(String, u64)>>,
    /// Whether the subscriptions are in place (SubAck received on the current session).
    pub(crate) subscribed: bool,
}

impl Seen {
    /// How many distinct `(stream, seq)` of `device` arrived.
    pub fn unique(&self, device: &str) -> usize {
        self.unique.get(device).map_or(0, HashSet::len)
    }

    /// Whether `(stream, seq)` of `device` arrived at least once.
    pub fn has(&self, device: &str, stream: &str, seq: u64) -> bool {
        self.unique
            .get(device)
            .is_some_and(|set| set.contains(&(stream.to_string(), seq)))
    }

    /// The latest status of `device`, if one arrived.
    pub fn status(&self, device: &str) -> Option<&Value> {
        self.statuses.get(device)
    }

    /// Events of `device`, in arrival order.
    pub fn events_of<'a>(&'a self, device: &'a str) -> impl Iterator<Item = &'a Arrival> + 'a {
        self.events.iter().filter(move |a| a.device == device)
    }

    /// Update reports of `device` (`outpost/{device}/updates`) seen so far, in order.
    pub fn reports(&self, device: &str) -> Vec<Value> {
        let topic = format!("outpost/{device}/updates");
        self.messages
            .iter()
            .filter(|m| m.topic == topic)
            .filter_map(|m| serde_json::from_slice(&m.payload).ok())
            .collect()
    }

    /// Records one message as it arrived.
    pub(crate) fn record(&mut self, topic: &str, payload: &[u8], retain: bool) {
        let parts: Vec<&str> = topic.split('/').collect();
        match parts.as_slice() {
            [_prefix, device, "events", stream @ ..] if !stream.is_empty() => {
                self.event_messages += 1;
                self.record_events(topic, device, &stream.join("/"), payload);
            }
            [_prefix, device, "status"] => {
                match serde_json::from_slice::<Value>(payload) {
                    Ok(status) => {
                        self.statuses.insert((*device).to_string(), status);
                    }
                    Err(e) => self
                        .problems
                        .push(format!("{topic}: status is not JSON: {e}")),
                }
                self.messages.push(Message {
                    topic: topic.to_string(),
                    payload: payload.to_vec(),
                    retain,
                });
            }
            _ => self.messages.push(Message {
                topic: topic.to_string(),
                payload: payload.to_vec(),
                retain,
            }),
        }
    }

    fn record_events(&mut self, topic: &str, device: &str, stream: &str, payload: &[u8]) {
        let objects = match serde_json::from_slice::<Value>(payload) {
            Ok(Value::Array(items)) => items,
            Ok(object @ Value::Object(_)) => vec![object],
            Ok(other) => {
                self.problems.push(format!(
                    "{topic}: payload is neither object nor array: {other}"
                ));
                return;
            }
            Err(e) => {
                self.problems
                    .push(format!("{topic}: payload is not JSON: {e}"));
                return;
            }
        };
        for event in objects {
            match parse_event(&event) {
                Ok((d, s, seq, time)) => {
                    if d != device || s != stream {
                        self.problems.push(format!(
                            "{topic}: event says device {d:?} stream {s:?} (seq {seq})"
                        ));
                    }
                    self.unique
                        .entry(d.clone())
                        .or_default()
                        .insert((s.clone(), seq));
                    self.events.push(Arrival {
                        device: d,
                        stream: s,
                        seq,
                        time,
                        event,
                    });
                }
                Err(problem) => self.problems.push(format!("{topic}: {problem}: {event}")),
            }
        }
    }
}

/// `(device, stream, seq, time)` of one event object; each key must be there with its type,
/// and so must `data` (or `data_b64`).
fn parse_event(event: &Value) -> Result<(String, String, u64, i64), String> {
    let text = |key: &str| {
        event[key]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no string {key:?}"))
    };
    let device = text("device")?;
    let stream = text("stream")?;
    let seq = event["seq"].as_u64().ok_or("no integer \"seq\"")?;
    let time = event["time"].as_i64().ok_or("no integer \"time\"")?;
    if event.get("data").is_none() && event.get("data_b64").is_none() {
        return Err("no \"data\" nor \"data_b64\"".into());
    }
    Ok((device, stream, seq, time))
}
