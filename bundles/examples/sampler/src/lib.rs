//! Example app: every two seconds (cron), read the `temperature` sensor, keep the latest reading
//! in KV `readings` / `temperature/latest` as a decimal string, and emit it to stream `readings`
//! as `{"sensor":"temperature","value":21.37,"unit":"C","at":<scheduled ms>}`.
#![no_std]

use outpost_sdk::prelude::*;

const SENSOR: &str = "temperature";
const NAMESPACE: &str = "readings";
const LATEST_KEY: &str = "temperature/latest";
const STREAM: &str = "readings";

fn sample() -> Result<()> {
    let celsius = sensor::read(SENSOR)?;
    if !celsius.is_finite() {
        // JSON has no NaN or infinity; a sensor that reports one is faulty.
        return Err(Error::Other("temperature reading is not a finite number"));
    }
    // The time the run was scheduled for, so delayed runs still line up on the 2 s grid.
    let at = trigger::scheduled_ms().unwrap_or_else(clock::wall_ms);
    let value = format!("{celsius:.2}");

    kv::set_string(NAMESPACE, LATEST_KEY, &value)?;
    let event = format!(r#"{{"sensor":"{SENSOR}","value":{value},"unit":"C","at":{at}}}"#);
    stream::emit(STREAM, event.as_bytes())
}

outpost_sdk::handler!(sample);
