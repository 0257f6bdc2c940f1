//! The wire format of events sent to the broker (documented in docs/WIRE.md).
//!
//! JSON by default, so any consumer (Node-RED, Telegraf, a five-line script) can read it: one
//! event is an object, a batch is an array of objects. Every object carries `device`,
//! `incarnation`, `stream`, `seq` and `time`, so a consumer can drop duplicates by
//! `(device, incarnation, stream, seq)` and spot gaps. Thin links can choose postcard instead: a
//! versioned envelope, about a third of the size.
//!
//! Version 2 bounds every event's size: bytes that are JSON are embedded as they are, text goes
//! as a JSON string only when escaping does not make it larger than base64, and anything else
//! goes as `data_b64`. So an event's encoding is at most about 4/3 of its bytes plus framing,
//! which [`max_event_len`] computes exactly at commit time.
//!
//! Version 3 says where each event's time comes from ([`TimeSource`]): the synchronised wall
//! clock (no field in JSON, as before), a wall time computed from the event's time since boot
//! once the clock synchronised (`"time_source":"anchored"`), or a clock that was never
//! synchronised (`"time_source":"unsynced"`: `time` is not to be trusted).

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Version of the event objects (`"v"` in JSON, the envelope tag in postcard).
pub const WIRE_VERSION: u8 = 3;

/// How events are encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WireFormat {
    /// JSON objects / arrays (the default).
    #[default]
    Json,
    /// postcard-encoded [`WireBatch`].
    Postcard,
}

impl std::str::FromStr for WireFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "json" => Ok(WireFormat::Json),
            "postcard" => Ok(WireFormat::Postcard),
            other => Err(format!(
                "unknown wire format '{other}' (expected json or postcard)"
            )),
        }
    }
}

/// Where an event's `time` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeSource {
    /// The wall clock, synchronised when the event was committed (or an agent before
    /// version 3, which did not know).
    #[default]
    Clock,
    /// Committed before the clock synchronised, in the same boot as a later sync: the time is
    /// the sync's wall time minus the time since boot between them (as exact as the sync).
    Anchored,
    /// Committed while the clock was not synchronised, and it could not be anchored (sent
    /// before any sync, or from an earlier boot that never synced): `time` is the unsynchronised
    /// clock's reading (often near 1970) and only orders events of that boot.
    Unsynced,
}

impl TimeSource {
    /// Whether the time is the synchronised clock's (the JSON field is left out then).
    pub fn is_clock(&self) -> bool {
        *self == TimeSource::Clock
    }
}

/// One event as it leaves the device (version 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEvent<'a> {
    /// Sequence number, unique per device and increasing.
    pub seq: u64,
    /// When the invocation that emitted it finished, ms since the Unix epoch.
    pub time: i64,
    /// Where `time` comes from.
    pub time_source: TimeSource,
    /// App that emitted it.
    #[serde(borrow)]
    pub app: &'a str,
    /// Component that emitted it.
    pub component: &'a str,
    /// The component's bytes.
    pub data: &'a [u8],
}

/// One event of versions 1 and 2 (no time source), as older devices sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEventV2<'a> {
    /// Sequence number.
    pub seq: u64,
    /// Device time, ms since the Unix epoch.
    pub time: i64,
    /// App that emitted it.
    #[serde(borrow)]
    pub app: &'a str,
    /// Component that emitted it.
    pub component: &'a str,
    /// The component's bytes.
    pub data: &'a [u8],
}

/// The postcard envelope: a batch of one stream's events from one device. The variant index
/// is the version; devices send the newest, consumers decode every one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireBatch<'a> {
    /// Version 1 (no incarnation: duplicates are dropped by `(device, stream, seq)`).
    V1 {
        /// Device id.
        device: &'a str,
        /// Stream name.
        stream: &'a str,
        /// The events, in sequence order.
        #[serde(borrow)]
        events: Vec<WireEventV2<'a>>,
    },
    /// Version 2: adds the store's incarnation, so sequence numbers that restart with a fresh
    /// store are never mistaken for duplicates.
    V2 {
        /// Device id.
        device: &'a str,
        /// The incarnation of the store that numbered the events (empty if unknown).
        incarnation: &'a str,
        /// Stream name.
        stream: &'a str,
        /// The events, in sequence order.
        #[serde(borrow)]
        events: Vec<WireEventV2<'a>>,
    },
    /// Version 3: each event says where its time comes from.
    V3 {
        /// Device id.
        device: &'a str,
        /// The incarnation of the store that numbered the events (empty if unknown).
        incarnation: &'a str,
        /// Stream name.
        stream: &'a str,
        /// The events, in sequence order.
        #[serde(borrow)]
        events: Vec<WireEvent<'a>>,
    },
}

/// The JSON shape of one event.
#[derive(Serialize)]
struct JsonEvent<'a> {
    v: u8,
    device: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    incarnation: &'a str,
    stream: &'a str,
    seq: u64,
    time: i64,
    #[serde(skip_serializing_if = "TimeSource::is_clock")]
    time_source: TimeSource,
    app: &'a str,
    component: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<JsonData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_b64: Option<String>,
}

/// Event bytes that are JSON are embedded as JSON; other UTF-8 text as a string (when that is
/// not larger than base64).
#[derive(Serialize)]
#[serde(untagged)]
enum JsonData<'a> {
    Json(&'a RawValue),
    Text(&'a str),
}

/// Where one event's identity is: the device and the store incarnation that numbered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    /// Device id.
    pub device: &'a str,
    /// Store incarnation (empty if unknown).
    pub incarnation: &'a str,
}

fn json_event<'a>(origin: Origin<'a>, stream: &'a str, event: &WireEvent<'a>) -> JsonEvent<'a> {
    let base64 = || {
        (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(event.data)),
        )
    };
    let (data, data_b64) = match serde_json::from_slice::<&RawValue>(event.data) {
        Ok(raw) => (Some(JsonData::Json(raw)), None),
        Err(_) => match std::str::from_utf8(event.data) {
            // Control characters escape to six bytes each: such "text" (binary that happens to
            // be valid UTF-8) would grow up to 6x, so it goes as base64 (4/3) instead.
            Ok(text) if escaped_len(text) <= base64_len(event.data.len()) => {
                (Some(JsonData::Text(text)), None)
            }
            _ => base64(),
        },
    };
    JsonEvent {
        v: WIRE_VERSION,
        device: origin.device,
        incarnation: origin.incarnation,
        stream,
        seq: event.seq,
        time: event.time,
        time_source: event.time_source,
        app: event.app,
        component: event.component,
        data,
        data_b64,
    }
}

/// Bytes of `text` as the body of a JSON string, as serde_json escapes it.
fn escaped_len(text: &str) -> usize {
    text.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..0x20 => 6,
            _ => 1,
        })
        .sum()
}

/// Bytes of `len` bytes in padded standard base64.
fn base64_len(len: usize) -> usize {
    len.div_ceil(3) * 4
}

/// The largest encoding one event can have on the wire, whatever sequence number and time it
/// gets at commit: an upper bound the outbox checks at commit time, so that a committed event
/// always fits a message under the packet limit.
pub fn max_event_len(
    format: WireFormat,
    origin: Origin<'_>,
    stream: &str,
    app: &str,
    component: &str,
    data: &[u8],
) -> usize {
    let widest = WireEvent {
        // The widest numbers in either format (20 decimal digits; 10-byte varints).
        seq: u64::MAX,
        time: i64::MIN,
        // The longest name in JSON ("anchored" is as long).
        time_source: TimeSource::Unsynced,
        app,
        component,
        data,
    };
    encode(format, origin, stream, std::slice::from_ref(&widest)).len()
}

/// Encodes one stream's events (one or more) for the wire.
pub fn encode(
    format: WireFormat,
    origin: Origin<'_>,
    stream: &str,
    events: &[WireEvent<'_>],
) -> Vec<u8> {
    match format {
        WireFormat::Json => {
            let objects: Vec<JsonEvent<'_>> = events
                .iter()
                .map(|e| json_event(origin, stream, e))
                .collect();
            let encoded = match objects.as_slice() {
                [single] => serde_json::to_vec(single),
                many => serde_json::to_vec(many),
            };
            // Serialising plain structs of strings and numbers cannot fail.
            encoded.unwrap_or_default()
        }
        WireFormat::Postcard => postcard::to_stdvec(&WireBatch::V3 {
            device: origin.device,
            incarnation: origin.incarnation,
            stream,
            events: events.to_vec(),
        })
        .unwrap_or_default(),
    }
}

/// One event as a consumer decodes it, from any version and either format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Device id.
    pub device: String,
    /// Store incarnation (empty from version 1 or a device that has none).
    pub incarnation: String,
    /// Stream name.
    pub stream: String,
    /// Sequence number.
    pub seq: u64,
    /// Device time, ms since the Unix epoch.
    pub time: i64,
    /// Where `time` comes from (`Clock` for versions 1 and 2).
    pub time_source: TimeSource,
    /// The event's bytes (`data` as sent: JSON text, a string's bytes, or `data_b64` decoded).
    pub data: Vec<u8>,
}

impl Decoded {
    /// The key that identifies an event across re-sends: `(device, incarnation, stream)` and
    /// then `seq`.
    pub fn stream_key(&self) -> (String, String, String) {
        (
            self.device.clone(),
            self.incarnation.clone(),
            self.stream.clone(),
        )
    }
}

/// Version 1 and 2 events as version 3 ones: their time is the clock's.
fn upgrade(events: Vec<WireEventV2<'_>>) -> Vec<WireEvent<'_>> {
    events
        .into_iter()
        .map(|e| WireEvent {
            seq: e.seq,
            time: e.time,
            time_source: TimeSource::Clock,
            app: e.app,
            component: e.component,
            data: e.data,
        })
        .collect()
}

/// Decodes a message body: a JSON object or array (versions 1 to 3), or a postcard batch.
/// Objects that are not events are skipped; an undecodable body gives nothing.
pub fn decode(payload: &[u8]) -> Vec<Decoded> {
    use serde_json::Value;
    let from_json = |v: &Value| -> Option<Decoded> {
        let data = match (v.get("data"), v.get("data_b64")) {
            (_, Some(Value::String(b64))) => {
                base64::engine::general_purpose::STANDARD.decode(b64).ok()?
            }
            (Some(Value::String(text)), _) => text.clone().into_bytes(),
            (Some(json), _) => json.to_string().into_bytes(),
            (None, _) => Vec::new(),
        };
        Some(Decoded {
            device: v.get("device")?.as_str()?.to_string(),
            incarnation: v
                .get("incarnation")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            stream: v.get("stream")?.as_str()?.to_string(),
            seq: v.get("seq")?.as_u64()?,
            time: v.get("time")?.as_i64()?,
            time_source: match v.get("time_source").and_then(Value::as_str) {
                Some("anchored") => TimeSource::Anchored,
                Some("unsynced") => TimeSource::Unsynced,
                _ => TimeSource::Clock,
            },
            data,
        })
    };
    if let Ok(value) = serde_json::from_slice::<Value>(payload) {
        return match value {
            Value::Array(items) => items.iter().filter_map(from_json).collect(),
            value => from_json(&value).into_iter().collect(),
        };
    }
    let (device, incarnation, stream, events) = match postcard::from_bytes::<WireBatch<'_>>(payload)
    {
        Ok(WireBatch::V1 {
            device,
            stream,
            events,
        }) => (device, "", stream, upgrade(events)),
        Ok(WireBatch::V2 {
            device,
            incarnation,
            stream,
            events,
        }) => (device, incarnation, stream, upgrade(events)),
        Ok(WireBatch::V3 {
            device,
            incarnation,
            stream,
            events,
        }) => (device, incarnation, stream, events),
        Err(_) => return Vec::new(),
    };
    events
        .into_iter()
        .map(|e| Decoded {
            device: device.to_string(),
            incarnation: incarnation.to_string(),
            stream: stream.to_string(),
            seq: e.seq,
            time: e.time,
            time_source: e.time_source,
            data: e.data.to_vec(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: Origin<'static> = Origin {
        device: "d1",
        incarnation: "0f3c",
    };

    fn event(seq: u64, data: &'static [u8]) -> WireEvent<'static> {
        WireEvent {
            seq,
            time: 1_000,
            time_source: TimeSource::Clock,
            app: "a",
            component: "c",
            data,
        }
    }

    #[test]
    fn one_event_is_an_object_and_json_data_is_embedded() {
        let bytes = encode(WireFormat::Json, D1, "s", &[event(7, br#"{"t":21.5}"#)]);
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(value["device"], "d1");
        assert_eq!(value["incarnation"], "0f3c");
        assert_eq!(value["stream"], "s");
        assert_eq!(value["seq"], 7);
        assert_eq!(value["time"], 1_000);
        assert_eq!(value["v"], 3);
        assert_eq!(value["data"]["t"], 21.5);
        assert!(
            value.get("time_source").is_none(),
            "a synced time adds nothing"
        );
    }

    #[test]
    fn a_batch_is_an_array_with_text_and_binary_data() {
        let bytes = encode(
            WireFormat::Json,
            D1,
            "s",
            &[event(1, b"plain text"), event(2, &[0xff, 0])],
        );
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(value[0]["data"], "plain text");
        assert_eq!(value[1]["data_b64"], "/wA=");
        assert!(value[1].get("data").is_none());
    }

    #[test]
    fn binary_that_is_valid_utf8_goes_as_base64_not_escaped_text() {
        // Control bytes are valid UTF-8 but escape to six bytes each as a JSON string.
        static CONTROL: [u8; 3000] = [1; 3000];
        let bytes = encode(WireFormat::Json, D1, "s", &[event(1, &CONTROL)]);
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert!(value.get("data").is_none());
        let back = base64::engine::general_purpose::STANDARD
            .decode(value["data_b64"].as_str().expect("b64"))
            .expect("decodes");
        assert_eq!(back, CONTROL);
        assert!(bytes.len() < 3000 * 4 / 3 + 200, "{} bytes", bytes.len());
        // Text with a few escapes stays readable text.
        let bytes = encode(WireFormat::Json, D1, "s", &[event(1, b"line\nnext \"q\"")]);
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(value["data"], "line\nnext \"q\"");
    }

    #[test]
    fn the_largest_event_is_bounded_by_base64_of_its_bytes() {
        for data in [vec![0u8; 65_536], vec![0xffu8; 65_536], vec![b'"'; 65_536]] {
            for format in [WireFormat::Json, WireFormat::Postcard] {
                let bound = max_event_len(format, D1, "s", "a", "c", &data);
                assert!(bound <= base64_len(data.len()) + 256, "{format:?}: {bound}");
                let real = WireEvent {
                    seq: 123,
                    time: 1_795_463_238_000,
                    time_source: TimeSource::Anchored,
                    app: "a",
                    component: "c",
                    data: &data,
                };
                assert!(encode(format, D1, "s", &[real]).len() <= bound);
            }
        }
    }

    #[test]
    fn postcard_round_trips_and_is_smaller() {
        let events = [event(1, b"21.5"), event(2, b"21.6")];
        let compact = encode(WireFormat::Postcard, D1, "s", &events);
        let WireBatch::V3 {
            device,
            incarnation,
            events: back,
            ..
        } = postcard::from_bytes(&compact).expect("decodes")
        else {
            panic!("devices send version 3");
        };
        assert_eq!((device, incarnation), ("d1", "0f3c"));
        assert_eq!(back, events);
        assert!(compact.len() * 3 < encode(WireFormat::Json, D1, "s", &events).len());
    }

    #[test]
    fn consumers_decode_every_version_and_format_back_to_the_bytes() {
        let binary: Vec<u8> = (0..=255u8).collect();
        let events = [
            event(1, br#"{"t":1}"#),
            event(2, b"text"),
            WireEvent {
                data: &binary,
                ..event(3, b"")
            },
        ];
        for format in [WireFormat::Json, WireFormat::Postcard] {
            let decoded = decode(&encode(format, D1, "s", &events));
            assert_eq!(decoded.len(), 3, "{format:?}");
            assert_eq!(decoded[0].data, br#"{"t":1}"#);
            assert_eq!(decoded[1].data, b"text");
            assert_eq!(decoded[2].data, binary);
            assert!(
                decoded
                    .iter()
                    .all(|d| d.incarnation == "0f3c" && d.device == "d1")
            );
        }
        let v1 = br#"{"v":1,"device":"d","stream":"s","seq":4,"time":0,"app":"a","component":"c","data":7}"#;
        let old = decode(v1);
        assert_eq!((old[0].seq, old[0].incarnation.as_str()), (4, ""));
        let v1_postcard = postcard::to_stdvec(&WireBatch::V1 {
            device: "d",
            stream: "s",
            events: vec![WireEventV2 {
                seq: 9,
                time: 0,
                app: "a",
                component: "c",
                data: b"x",
            }],
        })
        .expect("encodes");
        assert_eq!(decode(&v1_postcard)[0].seq, 9);
        assert_eq!(decode(&v1_postcard)[0].time_source, TimeSource::Clock);
    }

    #[test]
    fn times_that_are_not_the_synced_clock_say_so_in_both_formats() {
        let events = [
            WireEvent {
                time_source: TimeSource::Anchored,
                ..event(1, b"1")
            },
            WireEvent {
                time_source: TimeSource::Unsynced,
                ..event(2, b"2")
            },
            event(3, b"3"),
        ];
        let json: serde_json::Value =
            serde_json::from_slice(&encode(WireFormat::Json, D1, "s", &events)).expect("json");
        assert_eq!(json[0]["time_source"], "anchored");
        assert_eq!(json[1]["time_source"], "unsynced");
        assert!(json[2].get("time_source").is_none());
        for format in [WireFormat::Json, WireFormat::Postcard] {
            let sources: Vec<TimeSource> = decode(&encode(format, D1, "s", &events))
                .iter()
                .map(|d| d.time_source)
                .collect();
            assert_eq!(
                sources,
                [
                    TimeSource::Anchored,
                    TimeSource::Unsynced,
                    TimeSource::Clock
                ],
                "{format:?}"
            );
        }
    }
}
