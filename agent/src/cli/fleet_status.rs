//! `outpost fleet status [DEVICE]`: every device's retained status as a table (or a JSON
//! array), or one device's status with the update reports that arrive while it listens (or one
//! JSON object). The reports are not retained on the broker (each is a QoS 1 message through
//! the device's outbox); the status carries each app's last report line, which is shown too.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::ensure;
use outpost::fleet::topics;
use outpost_hal::mqtt::{Acknowledge, Client, Connection, Event, EventPayload, QoS};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::BrokerArgs;
use crate::cli::style::{self, Colour};

/// A quiet spell this long after the last message ends the listening: retained messages arrive
/// right after the subscription.
const QUIET: Duration = Duration::from_millis(700);

/// Arguments of `outpost fleet status`.
#[derive(clap::Args)]
pub struct StatusArgs {
    /// One device: its status, apps and update reports.
    device: Option<String>,
    #[command(flatten)]
    broker: BrokerArgs,
    /// JSON for scripts: an array of statuses, or for DEVICE one object
    /// `{"device", "status", "updates"}`.
    #[arg(long)]
    json: bool,
    /// Listen this long (e.g. `30s`) instead of until the retained messages stopped coming,
    /// to catch update reports as they happen.
    #[arg(long, value_parser = humantime::parse_duration)]
    wait: Option<Duration>,
}

/// Messages received while listening, by topic, in arrival order.
type Received = Vec<(String, Value)>;

/// Runs `outpost fleet status`.
pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let broker = args.broker.resolve("status")?;
    let prefix = &broker.prefix;
    let filters = match &args.device {
        Some(device) => {
            ensure!(
                !device.is_empty() && !device.contains(['/', '+', '#']),
                "device '{device}' must be one topic level, without wildcards"
            );
            vec![
                format!("{prefix}/{device}/status"),
                topics::reports(prefix, device),
            ]
        }
        None => vec![format!("{prefix}/+/status")],
    };
    let received = listen(&broker, &filters, args.wait).await?;
    let colours = !args.json && style::enabled(false);
    match &args.device {
        Some(device) => one_device(device, &filters, &received, args.json, colours),
        None => {
            let mut devices: BTreeMap<String, Value> = BTreeMap::new();
            for (_, value) in received {
                if let Some(device) = value.get("device").and_then(Value::as_str) {
                    devices.insert(device.to_owned(), value);
                }
            }
            if args.json {
                let all: Vec<&Value> = devices.values().collect();
                println!("{}", serde_json::to_string(&all)?);
            } else {
                print!("{}", table(&devices, colours));
                if devices.is_empty() {
                    println!("(no device has published a status under {})", filters[0]);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Subscribes to `filters` and collects JSON messages until a quiet spell (or `wait`).
async fn listen(
    broker: &super::Broker,
    filters: &[String],
    wait: Option<Duration>,
) -> anyhow::Result<Received> {
    let mut transport = super::transport(broker)?;
    let (mut client, mut connection) = super::connect(&mut transport, broker).await?;
    for filter in filters {
        client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .map_err(|e| anyhow::anyhow!("subscribe to {filter}: {e:?}"))?;
    }
    let deadline = wait.map(|wait| Instant::now() + wait);
    let mut received = Vec::new();
    loop {
        let until = deadline.unwrap_or_else(|| Instant::now() + QUIET);
        let next = tokio::time::timeout_at(until, connection.next()).await;
        let Ok(Ok(event)) = next else { break };
        match event.payload() {
            EventPayload::Received {
                id, topic, data, ..
            } => {
                let topic = topic.unwrap_or_default().to_owned();
                let _ = client.ack(id).await;
                // An empty retained message clears a topic; anything not JSON is not ours.
                if let Ok(value) = serde_json::from_slice::<Value>(data) {
                    received.push((topic, value));
                }
            }
            EventPayload::Disconnected => {
                anyhow::bail!("the broker at {broker} closed the connection")
            }
            _ => {}
        }
    }
    Ok(received)
}

/// The status and reports of `device`.
fn one_device(
    device: &str,
    filters: &[String],
    received: &Received,
    json: bool,
    colours: bool,
) -> anyhow::Result<ExitCode> {
    let status = received
        .iter()
        .rev()
        .find(|(topic, _)| *topic == filters[0])
        .map(|(_, value)| value.clone());
    let updates: Vec<&Value> = received
        .iter()
        .filter(|(topic, _)| *topic == filters[1])
        .map(|(_, value)| value)
        .collect();
    if json {
        println!(
            "{}",
            json!({ "device": device, "status": status, "updates": updates })
        );
        return Ok(if status.is_some() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let Some(status) = status else {
        anyhow::bail!(
            "no status from device '{device}' on {} (check the device id and --topic-prefix; \
             a device publishes its status once it has connected)",
            filters[0]
        );
    };
    let mut devices = BTreeMap::new();
    devices.insert(device.to_owned(), status.clone());
    print!("{}", table(&devices, colours));
    if let Some(store) = status.get("store") {
        println!("store: {store}");
    }
    if updates.is_empty() {
        println!("(no update report arrived while listening; --wait 60s listens longer)");
    }
    for report in updates {
        println!("{}", report_line(report, colours));
    }
    Ok(ExitCode::SUCCESS)
}

/// One update report: `12:00:01.250 beacon accepted 1.0.0 -> 2.0.0: reason`.
fn report_line(report: &Value, colours: bool) -> String {
    let text = |key: &str| report.get(key).and_then(Value::as_str).unwrap_or("");
    let result = text("result");
    let colour = match result {
        "accepted" => Colour::Yellow,
        "confirmed" => Colour::Green,
        _ => Colour::Red,
    };
    let versions = match (text("from_version"), text("to_version")) {
        ("", "") => String::new(),
        ("", to) => format!(" -> {to}"),
        (from, "") => format!(" {from}"),
        (from, to) => format!(" {from} -> {to}"),
    };
    let time = report
        .get("time_ms")
        .and_then(Value::as_i64)
        .map(outpost::report::clock_time)
        .unwrap_or_default();
    format!(
        "{time} update {} {}{versions}: {}",
        text("app"),
        style::paint(result, colour, colours),
        text("reason")
    )
}

/// The device table: one row per device, and each app's last update report under it.
fn table(devices: &BTreeMap<String, Value>, colours: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<7} {:<8} {:>8} {:>8} {:<28} LAST ERROR",
        "DEVICE", "ONLINE", "AGENT", "OUTBOX", "DROPPED", "APPS"
    );
    for (device, s) in devices {
        let num = |path: [&str; 2]| {
            s.get(path[0])
                .and_then(|v| v.get(path[1]))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        let apps: Vec<String> = s
            .get("apps")
            .and_then(Value::as_array)
            .map(|apps| {
                apps.iter()
                    .map(|a| {
                        format!(
                            "{}@{}{}",
                            a["name"].as_str().unwrap_or("?"),
                            a["version"].as_str().unwrap_or("?"),
                            if a["on_trial"].as_bool() == Some(true) {
                                "(trial)"
                            } else {
                                ""
                            }
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let online = s.get("online").and_then(Value::as_bool).unwrap_or(false);
        // Padded before painting: escape codes have no width on screen.
        let online = if online {
            style::paint(&format!("{:<7}", "yes"), Colour::Green, colours)
        } else {
            style::paint(&format!("{:<7}", "no"), Colour::Red, colours)
        };
        let last_error = match s.get("last_error").and_then(Value::as_str) {
            Some(error) => style::paint(error, Colour::Red, colours),
            None => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "{:<20} {online} {:<8} {:>8} {:>8} {:<28} {last_error}",
            device,
            s.get("agent_version")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            num(["outbox", "records"]),
            num(["dropped", "records"]),
            apps.join(","),
        );
        for app in s
            .get("apps")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(update) = app.get("last_update").and_then(Value::as_str) {
                let _ = writeln!(
                    out,
                    "{:<20} {}",
                    "",
                    style::paint(&format!("last {update}"), Colour::Dim, colours)
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_row_per_device_and_no_colours_when_off() {
        let mut devices = BTreeMap::new();
        devices.insert(
            "pi-07".to_owned(),
            json!({"device": "pi-07", "online": true, "agent_version": "0.1.0",
                   "outbox": {"records": 3}, "dropped": {"records": 0},
                   "apps": [{"name": "beacon", "version": "2.0.0", "on_trial": true,
                             "last_update": "update accepted: beacon 1.0.0 -> 2.0.0"}]}),
        );
        let plain = table(&devices, false);
        assert!(!plain.contains('\x1b'), "{plain}");
        let row = plain.lines().nth(1).expect("a row");
        assert!(row.starts_with("pi-07") && row.contains("yes"), "{plain}");
        assert!(row.contains("beacon@2.0.0(trial)"), "{plain}");
        assert!(plain.contains("last update accepted"), "{plain}");
        assert!(table(&devices, true).contains("\x1b[32myes"));
    }

    #[test]
    fn a_report_reads_as_one_line() {
        let report = json!({"device": "pi-07", "app": "beacon", "result": "rolled-back",
            "from_version": "1.0.0", "to_version": "2.0.0", "reason": "3 failures",
            "time_ms": 0});
        assert_eq!(
            report_line(&report, false),
            "00:00:00.000 update beacon rolled-back 1.0.0 -> 2.0.0: 3 failures"
        );
    }
}
