//! The path a user walks, end to end with real parts: an example app is built and run on the
//! simulated board (`outpost up`), bundled, published to a device whose board is a fake sysfs
//! tree with a binding for the example's sensor, and runs there reading the board; a command
//! handler shipped as a fleet app takes a per-device and a group command and answers naming
//! the device; an app needing a sensor the board cannot bind is refused before activation.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use outpost::events::AgentEvent;
use outpost_testkit::agent::Agent;
use outpost_testkit::broker::Broker;
use outpost_testkit::fleet::Cli;
use outpost_testkit::s;
use outpost_testkit::seen::Seen;
use outpost_testkit::subscriber::{EVENTS_FILTER, Subscriber};
use serde_json::Value;

use crate::OUTPOST;

const WAIT: Duration = Duration::from_secs(60);

/// The repository's example apps.
fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../bundles/examples")
        .join(name)
}

/// A fake board: one SoC thermal zone at 47.312 °C and a voltage rail.
fn fake_sysfs(root: &Path) {
    outpost_testkit::write_tree(
        root,
        &[
            ("sys/class/thermal/thermal_zone0/type", "cpu-thermal\n"),
            ("sys/class/thermal/thermal_zone0/temp", "47312\n"),
            ("sys/class/hwmon/hwmon0/name", "rpi_volt\n"),
            ("sys/class/hwmon/hwmon0/in0_input", "1200\n"),
        ],
    );
}

/// Runs `outpost up` on `app` until it prints a line containing `wanted`, then stops it.
fn up_until(app: &Path, data: &Path, wanted: &str) -> String {
    let mut child = Command::new(OUTPOST)
        .args(["up", "--no-build", "--data", s(data), s(app)])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("outpost up starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut seen = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("utf-8 output");
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(wanted) {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.contains(wanted),
        "outpost up never printed {wanted:?}:\n{seen}"
    );
    seen
}

/// An event's data as JSON: the wire embeds JSON data as is, and carries other text as a string.
fn event_data(event: &Value) -> Value {
    match &event["data"] {
        Value::String(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        other => other.clone(),
    }
}

/// Payloads published to `topic`, as text.
fn published(seen: &Seen, topic: &str) -> Vec<String> {
    seen.messages
        .iter()
        .filter(|m| m.topic == topic)
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect()
}

#[test]
fn an_example_goes_from_up_to_a_bound_board_and_takes_commands_per_device_and_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cli = Cli::new(OUTPOST);
    let sampler = example("sampler");
    let commander = example("commander");

    // 1. Build and run on the laptop's simulated board.
    cli.run(&["build", s(&sampler)]);
    cli.run(&["build", s(&commander)]);
    up_until(
        &sampler,
        &dir.path().join("up-data"),
        r#""sensor":"temperature""#,
    );

    // 2. Bundle, signed by the release key.
    let (key, public) = cli.keygen(dir.path(), "release");
    let bundle = |app: &Path, name: &str| {
        let out = dir.path().join(format!("{name}.bundle"));
        cli.run(&[
            "bundle",
            "build",
            s(app),
            "--key",
            s(&key),
            "--out",
            s(&out),
        ]);
        out
    };
    let sampler_bundle = bundle(&sampler, "sampler");
    let commander_bundle = bundle(&commander, "commander");

    // 3. A device on a fake board, binding the app's `temperature` to its thermal zone.
    let board = dir.path().join("board");
    fake_sysfs(&board);
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"config_version = 1
device_id = "pi-7"

[mqtt]
broker = "mqtt://127.0.0.1:1"

[board]
root = "{}"
gpio_dev = "{}"

[sensors]
temperature = "thermal/cpu-thermal"

[fleet]
trust = ["{}"]
groups = ["lab"]

# Test hosts are often containers whose kernel reports an unsynchronised clock (the host
# keeps it): cron runs at once instead of waiting for a sync that never comes.
[clock]
cron_waits_for_sync = false
"#,
            board.display(),
            dir.path().join("no-gpio").display(),
            public.display()
        ),
    )
    .expect("agent.toml");
    let broker = Broker::start();
    let sub = Subscriber::start_with(
        broker.port(),
        &[EVENTS_FILTER, "outpost/+/updates", "replies/#"],
    );
    let data = dir.path().join("device");
    let agent = Agent::start(
        OUTPOST,
        "pi-7",
        &broker.url(),
        &data,
        &["--config", s(&config)],
    );
    agent.wait_event(|e| matches!(e, AgentEvent::Connected), 1, WAIT);
    let wait = |what: &str, condition: &dyn Fn(&Seen) -> bool| {
        assert!(
            sub.wait_for(WAIT, condition),
            "{what}; agent output:\n{}",
            agent.output_tail(40)
        );
    };

    // 4. Publish to this one test device: it runs the example unchanged, reading its board.
    cli.run(&[
        "fleet",
        "publish",
        s(&sampler_bundle),
        "--key",
        s(&key),
        "--broker",
        &broker.url(),
        "--device",
        "pi-7",
    ]);
    wait(
        "the sampler's events carry the board's temperature",
        &|seen| {
            seen.events_of("pi-7").any(|a| {
                a.stream == "readings" && event_data(&a.event)["value"].as_f64() == Some(47.31)
            })
        },
    );

    // 5. A command handler as a fleet app: one command to this device, one to its group.
    cli.publish(&commander_bundle, &key, &broker.url(), "lab", &[]);
    agent.wait_event(
        |e| matches!(e, AgentEvent::FleetRunning { app, .. } if app == "commander"),
        1,
        WAIT,
    );
    // The device subscribes to the app's command topics once it runs; a command sent before
    // the subscription is in place would not reach it (commands are not retained), so send
    // until the first answer comes.
    let send = |target: &str, to: &str, payload: &str| {
        cli.run(&[
            "fleet",
            "send",
            target,
            to,
            "commander",
            "led",
            payload,
            "--broker",
            &broker.url(),
        ]);
    };
    let answered = |seen: &Seen, payload: &str| {
        published(seen, "replies/pi-7/led")
            .iter()
            .any(|p| p == &format!("pi-7: {payload}"))
    };
    for _ in 0..30 {
        send("--device", "pi-7", "on");
        if sub.wait_for(Duration::from_secs(2), |seen| answered(seen, "on")) {
            break;
        }
    }
    wait(
        "the per-device command is answered naming the device",
        &|seen| answered(seen, "on"),
    );
    send("--group", "lab", "off");
    wait("the group command is answered naming the device", &|seen| {
        answered(seen, "off")
    });
    wait(
        "both commands were recorded with where they came from",
        &|seen| {
            let commands: Vec<Value> = seen
                .events_of("pi-7")
                .filter(|a| a.stream == "commands")
                .map(|a| event_data(&a.event))
                .collect();
            commands
                .iter()
                .any(|c| c["to"] == "device" && c["payload"] == "on" && c["device"] == "pi-7")
                && commands
                    .iter()
                    .any(|c| c["to"] == "group" && c["payload"] == "off")
        },
    );
    cli.run(&[
        "fleet",
        "send",
        "--device",
        "pi-8",
        "commander",
        "led",
        "elsewhere",
        "--broker",
        &broker.url(),
    ]);
    send("--device", "pi-7", "last");
    wait("a command for another device is not taken", &|seen| {
        answered(seen, "last")
    });
    assert!(
        !sub.with(|seen| published(seen, "replies/pi-7/led"))
            .iter()
            .any(|p| p.contains("elsewhere")),
        "a command to pi-8 reached pi-7"
    );

    // 6. An app needing a sensor this board cannot bind is refused before it is activated.
    let hygrometer = dir.path().join("hygrometer");
    std::fs::create_dir_all(&hygrometer).expect("dir");
    let manifest = std::fs::read_to_string(sampler.join("outpost.toml"))
        .expect("sampler manifest")
        .replace("name = \"sampler\"", "name = \"hygrometer\"")
        .replace("sensors = [\"temperature\"]", "sensors = [\"humidity\"]")
        .replace(
            "../../target",
            &format!("{}/../bundles/target", env!("CARGO_MANIFEST_DIR")),
        )
        .replace("build = { command", "# build = { command");
    std::fs::write(hygrometer.join("outpost.toml"), manifest).expect("manifest");
    let refused = bundle(&hygrometer, "hygrometer");
    cli.publish(&refused, &key, &broker.url(), "lab", &[]);
    wait("the unbindable app is refused naming the sensor", &|seen| {
        seen.reports("pi-7").iter().any(|r| {
            r["app"] == "hygrometer"
                && r["result"] == "refused"
                && r["reason"]
                    .as_str()
                    .is_some_and(|t| t.contains("sensor 'humidity'") && t.contains("[sensors]"))
        })
    });
    assert_eq!(
        agent.count_events(
            |e| matches!(e, AgentEvent::FleetRunning { app, .. } if app == "hygrometer")
        ),
        0,
        "never activated"
    );
}

#[test]
fn a_local_app_the_board_cannot_bind_is_reported_and_the_device_stays_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let board = dir.path().join("board");
    fake_sysfs(&board);
    let app = dir.path().join("hygrometer");
    std::fs::create_dir_all(&app).expect("dir");
    std::fs::write(
        app.join("outpost.toml"),
        format!(
            "manifest_version = 1\n[app]\nname = \"hygrometer\"\nversion = \"1.0.0\"\n\
             [[component]]\nid = \"c\"\nsource = \"{}\"\ngrants = {{ sensors = [\"humidity\"] }}\n",
            outpost_testkit::guests::guest("noop").display()
        ),
    )
    .expect("manifest");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "config_version = 1\ndevice_id = \"pi-9\"\n[mqtt]\nbroker = \"mqtt://127.0.0.1:1\"\n\
             [board]\nroot = \"{}\"\n",
            board.display()
        ),
    )
    .expect("agent.toml");
    let broker = Broker::start();
    let data = dir.path().join("device");
    let agent = Agent::start(
        OUTPOST,
        "pi-9",
        &broker.url(),
        &data,
        &["--config", s(&config), "--app", s(&app)],
    );
    agent.wait_event(
        |e| {
            matches!(e, AgentEvent::Problem { area, message }
                if area == "app" && message.contains("sensor 'humidity'") && message.contains("[sensors]"))
        },
        1,
        WAIT,
    );
    agent.wait_event(|e| matches!(e, AgentEvent::Connected), 1, WAIT);
}
