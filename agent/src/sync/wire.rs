//! The wire format of events sent to the broker (documented in docs/WIRE.md).
//!
//! JSON by default, so any consumer (Node-RED, Telegraf, a five-line script) can read it: one
//! event is an object, a batch is an array of objects. Every object carries `device`, `stream`,
//! `seq` and `time`, so a consumer can drop duplicates by `(device, stream, seq)` and spot gaps.
//! Thin links can choose postcard instead: a versioned envelope, about a third of the size.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Version of the event objects (`"v"` in JSON, the envelope tag in postcard).
pub const WIRE_VERSION: u8 = 1;

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

/// One event as it leaves the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEvent<'a> {
    /// Sequence number, unique per device and increasing.
    pub seq: u64,
    /// When the invocation that emitted it finished, ms since the Unix epoch.
    pub time: i64,
    /// App that emitted it.
    #[serde(borrow)]
    pub app: &'a str,
    /// Component that emitted it.
    pub component: &'a str,
    /// The component's bytes.
    pub data: &'a [u8],
}

/// The postcard envelope: a batch of one stream's events from one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireBatch<'a> {
    /// Version 1.
    V1 {
        /// Device id.
        device: &'a str,
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
    stream: &'a str,
    seq: u64,
    time: i64,
    app: &'a str,
    component: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<JsonData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_b64: Option<String>,
}

/// Event bytes that are JSON are embedded as JSON; other UTF-8 text as a string.
#[derive(Serialize)]
#[serde(untagged)]
enum JsonData<'a> {
    Json(&'a RawValue),
    Text(&'a str),
}

fn json_event<'a>(device: &'a str, stream: &'a str, event: &WireEvent<'a>) -> JsonEvent<'a> {
    let (data, data_b64) = match serde_json::from_slice::<&RawValue>(event.data) {
        Ok(raw) => (Some(JsonData::Json(raw)), None),
        Err(_) => match std::str::from_utf8(event.data) {
            Ok(text) => (Some(JsonData::Text(text)), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(event.data)),
            ),
        },
    };
    JsonEvent {
        v: WIRE_VERSION,
        device,
        stream,
        seq: event.seq,
        time: event.time,
        app: event.app,
        component: event.component,
        data,
        data_b64,
    }
}

/// Encodes one stream's events (one or more) for the wire.
pub fn encode(format: WireFormat, device: &str, stream: &str, events: &[WireEvent<'_>]) -> Vec<u8> {
    match format {
        WireFormat::Json => {
            let objects: Vec<JsonEvent<'_>> = events
                .iter()
                .map(|e| json_event(device, stream, e))
                .collect();
            let encoded = match objects.as_slice() {
                [single] => serde_json::to_vec(single),
                many => serde_json::to_vec(many),
            };
            // Serialising plain structs of strings and numbers cannot fail.
            encoded.unwrap_or_default()
        }
        WireFormat::Postcard => postcard::to_stdvec(&WireBatch::V1 {
            device,
            stream,
            events: events.to_vec(),
        })
        .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, data: &'static [u8]) -> WireEvent<'static> {
        WireEvent {
            seq,
            time: 1_000,
            app: "a",
            component: "c",
            data,
        }
    }

    #[test]
    fn one_event_is_an_object_and_json_data_is_embedded() {
        let bytes = encode(WireFormat::Json, "d1", "s", &[event(7, br#"{"t":21.5}"#)]);
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(value["device"], "d1");
        assert_eq!(value["stream"], "s");
        assert_eq!(value["seq"], 7);
        assert_eq!(value["time"], 1_000);
        assert_eq!(value["v"], 1);
        assert_eq!(value["data"]["t"], 21.5);
    }

    #[test]
    fn a_batch_is_an_array_with_text_and_binary_data() {
        let bytes = encode(
            WireFormat::Json,
            "d1",
            "s",
            &[event(1, b"plain text"), event(2, &[0xff, 0])],
        );
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(value[0]["data"], "plain text");
        assert_eq!(value[1]["data_b64"], "/wA=");
        assert!(value[1].get("data").is_none());
    }

    #[test]
    fn postcard_round_trips_and_is_smaller() {
        let events = [event(1, b"21.5"), event(2, b"21.6")];
        let compact = encode(WireFormat::Postcard, "d1", "s", &events);
        let WireBatch::V1 {
            device,
            events: back,
            ..
        } = postcard::from_bytes(&compact).expect("decodes");
        assert_eq!(device, "d1");
        assert_eq!(back, events);
        assert!(compact.len() * 3 < encode(WireFormat::Json, "d1", "s", &events).len());
    }
}
