//! `outpost fleet tail`: events as they arrive, decoded and de-duplicated; one line per event
//! for people, or one JSON object per line (`--json`) for scripts.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use outpost::sync::wire::{self, Decoded};
use outpost_hal::mqtt::{Acknowledge, Client, Connection, Event, EventPayload, QoS, Transport};
use serde_json::{Value, json};

use super::Broker;

/// Prints the events under `filter` until `count` distinct ones were printed (or for ever).
pub async fn tail(
    broker: &Broker,
    filter: &str,
    count: Option<u64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut transport = super::transport(broker)?;
    // Highest seq printed per (device, incarnation, stream): devices re-send after
    // reconnects, and first arrivals per stream only grow, so anything at or below it is a
    // duplicate. A store that was reset starts a new incarnation, whose seqs start again.
    let mut highest: HashMap<(String, String, String), u64> = HashMap::new();
    let mut printed = 0u64;
    // The first session must open: wrong credentials or a wrong CA do not get better by
    // waiting. Later ones are retried, as the link comes and goes.
    let mut session = Some(super::connect(&mut transport, broker).await?);
    loop {
        let (mut client, mut connection) = match session.take() {
            Some(pair) => pair,
            None => match transport.connect().await {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!("fleet tail: {}; retrying", super::hint(&error));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .map_err(|e| anyhow::anyhow!("subscribe to {filter}: {e:?}"))?;
        loop {
            let (id, payload) = match connection.next().await {
                Ok(event) => match event.payload() {
                    EventPayload::Received { id, data, .. } => (id, data.to_vec()),
                    EventPayload::Disconnected => break,
                    _ => continue,
                },
                Err(_) => break,
            };
            let _ = client.ack(id).await;
            for seen in wire::decode(&payload) {
                let key = seen.stream_key();
                if highest.get(&key).is_some_and(|h| *h >= seen.seq) {
                    continue;
                }
                highest.insert(key, seen.seq);
                println!(
                    "{}",
                    if json {
                        json_line(&seen)
                    } else {
                        text_line(&seen)
                    }
                );
                printed += 1;
                if count.is_some_and(|c| printed >= c) {
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
        tracing::info!("fleet tail: disconnected from {broker}; reconnecting");
    }
}

/// `12:00:01.250 pi-07 readings #42 {"value":21.5}`.
fn text_line(seen: &Decoded) -> String {
    format!(
        "{} {} {} #{} {}",
        outpost::report::clock_time(seen.time),
        seen.device,
        seen.stream,
        seen.seq,
        outpost::report::preview(&seen.data)
    )
}

/// `{"device":..,"incarnation":..,"stream":..,"seq":..,"time_ms":..,"data":..}`: `data` is the
/// event's JSON if it is JSON, else its text, else `data_b64` holds it in base64.
fn json_line(seen: &Decoded) -> String {
    let mut line = json!({
        "device": seen.device,
        "incarnation": seen.incarnation,
        "stream": seen.stream,
        "seq": seen.seq,
        "time_ms": seen.time,
    });
    let data = match serde_json::from_slice::<Value>(&seen.data) {
        Ok(value) => ("data", value),
        Err(_) => match std::str::from_utf8(&seen.data) {
            Ok(text) => ("data", Value::String(text.to_owned())),
            Err(_) => {
                use base64::Engine as _;
                let b64 = base64::engine::general_purpose::STANDARD.encode(&seen.data);
                ("data_b64", Value::String(b64))
            }
        },
    };
    line[data.0] = data.1;
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &[u8]) -> Decoded {
        Decoded {
            device: "pi-07".into(),
            incarnation: "i1".into(),
            stream: "readings".into(),
            seq: 42,
            time: 1_700_000_000_000,
            data: data.to_vec(),
            time_source: Default::default(),
        }
    }

    #[test]
    fn json_lines_carry_json_data_as_json_and_binary_as_base64() {
        let line: Value = serde_json::from_str(&json_line(&event(br#"{"value":21.5}"#)))
            .expect("one JSON object");
        assert_eq!(line["data"]["value"], 21.5);
        assert_eq!(line["seq"], 42);
        assert_eq!(line["device"], "pi-07");
        let text: Value = serde_json::from_str(&json_line(&event(b"hello"))).expect("JSON");
        assert_eq!(text["data"], "hello");
        let binary: Value = serde_json::from_str(&json_line(&event(&[0xff, 0]))).expect("JSON");
        assert_eq!(binary["data_b64"], "/wA=");
        assert!(binary.get("data").is_none());
    }
}
