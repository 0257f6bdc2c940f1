//! Example app: on every `temperature` sample, keep the last N readings in KV, emit their mean to
//! stream `means`, and when the mean crosses the threshold upward emit an alert to stream
//! `alerts` and queue an MQTT publish to `alerts/temperature`.
//!
//! KV namespace `window`: `samples` holds the readings as little-endian `f64`s, oldest first;
//! `state` is `above` or `below` (the mean's side of the threshold after the last sample).
//! Config: `window_size` (default 10), `threshold` (default 24.0).
#![no_std]

use outpost_sdk::prelude::*;

const NS: &str = "window";

/// Config variable `name` parsed, or `default` when it is unset.
fn setting<T: core::str::FromStr>(name: &str, default: T) -> Result<T> {
    match config::get(name)? {
        Some(text) => text.trim().parse().map_err(|_| {
            log!(error, "config variable {name} has an invalid value: {text}");
            Error::Other("bad config value")
        }),
        None => Ok(default),
    }
}

fn on_sample() -> Result<()> {
    let sample = trigger::sensor().ok_or(Error::Other("needs a sensor trigger"))?;
    let size = setting("window_size", 10usize)?.clamp(1, 1000);
    let threshold = setting("threshold", 24.0f64)?;

    let stored = kv::get(NS, "samples")?.unwrap_or_default();
    let mut window: Vec<f64> = stored
        .chunks_exact(8)
        .filter_map(|bytes| bytes.try_into().ok().map(f64::from_le_bytes))
        .collect();
    if sample.value.is_finite() {
        window.push(sample.value);
    }
    let excess = window.len().saturating_sub(size);
    window.drain(..excess);
    let encoded: Vec<u8> = window.iter().flat_map(|v| v.to_le_bytes()).collect();
    kv::set(NS, "samples", &encoded)?;
    if window.is_empty() {
        return Ok(());
    }

    let n = window.len();
    let mean = window.iter().sum::<f64>() / n as f64;
    stream::emit(
        "means",
        format!(r#"{{"mean":{mean:.3},"samples":{n}}}"#).as_bytes(),
    )?;

    let above = mean > threshold;
    let was_above = kv::get_string(NS, "state")?.as_deref() == Some("above");
    if above != was_above {
        kv::set_string(NS, "state", if above { "above" } else { "below" })?;
    }
    if above && !was_above {
        let alert = format!(
            r#"{{"alert":"mean above threshold","mean":{mean:.3},"threshold":{threshold},"window":{n}}}"#
        );
        stream::emit("alerts", alert.as_bytes())?;
        mqtt::publish(
            "alerts/temperature",
            alert.as_bytes(),
            Qos::AtLeastOnce,
            false,
        )?;
        log!(warn, "temperature mean {mean:.2} crossed {threshold}");
    }
    Ok(())
}

outpost_sdk::handler!(on_sample);
