//! Example app (Rust): watches the temperature sensor. Each sample counts in KV `state`/`count`,
//! is emitted to `readings` as `{"n":N,"centi":C}` (C = the sample in hundredths, rounded half
//! away from zero), and an upward crossing of the `threshold_centi` variable also goes to
//! `alerts` as `{"n":N,"centi":C,"threshold":T}`. The C, Zig and AssemblyScript watchers
//! (`examples/watcher-*`) do exactly the same; the tests check they emit the same events.
#![no_std]

use outpost_sdk::prelude::*;

/// The sample in hundredths, rounded half away from zero (written out, not `f64::round`, so
/// every language's watcher computes it the same way).
fn centi(value: f64) -> i64 {
    let scaled = value * 100.0;
    (scaled + if scaled < 0.0 { -0.5 } else { 0.5 }) as i64
}

fn watch() -> Result<()> {
    // The payload is read whatever the trigger kind, so `outpost invoke --payload` can replay
    // samples.
    let payload = SensorPayload::decode(&trigger::payload())
        .filter(|p| p.value.is_finite())
        .ok_or(Error::Other(
            "expected a sensor payload with a finite sample",
        ))?;
    let threshold: i64 = match config::get("threshold_centi")? {
        Some(text) => text
            .parse()
            .map_err(|_| Error::Other("threshold_centi is not an integer"))?,
        None => 2500,
    };
    let count = kv::get_string("state", "count")?
        .and_then(|text| text.parse::<i64>().ok())
        .unwrap_or(0)
        + 1;
    kv::set_string("state", "count", &format!("{count}"))?;

    let now = centi(payload.value);
    stream::emit(
        "readings",
        format!(r#"{{"n":{count},"centi":{now}}}"#).as_bytes(),
    )?;
    if !payload.previous.is_nan() && centi(payload.previous) < threshold && now >= threshold {
        let alert = format!(r#"{{"n":{count},"centi":{now},"threshold":{threshold}}}"#);
        stream::emit("alerts", alert.as_bytes())?;
        log::warn("temperature crossed the threshold");
    }
    Ok(())
}

outpost_sdk::handler!(watch);
