//! Per-device broker identity (issue 15, item 4): `outpost provision --broker-dir` writes the
//! mosquitto password file and ACL, and a real mosquitto with them keeps a compromised sibling
//! device in its own namespace: it cannot forge another device's status or events, take over
//! its session by client id, publish or read fleet topics of groups it is not in, or command
//! another device, while the legitimate paths (a device's own topics, its groups' offers, the
//! operator's commands) still work.
//!
//! The kit's broker has two listeners: the first, anonymous and unrestricted, stands in for the
//! operators' listener (the test's own clients); the second is the devices' listener as
//! `provision` configures it (docs/SECURITY.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use outpost::events::AgentEvent;
use outpost_testkit::agent::Agent;
use outpost_testkit::broker::Broker;
use outpost_testkit::fleet::Cli;
use outpost_testkit::s;
use outpost_testkit::subscriber::{Subscriber, fetch_retained};

use crate::OUTPOST;

const WAIT: Duration = Duration::from_secs(30);

/// Two provisioned devices, `pi-1` (group north) and `pi-2` (group south), on a broker whose
/// second listener enforces `provision`'s password file and ACL.
struct Fleet {
    broker: Broker,
    /// Each device's generated password, read back from its agent.toml.
    passwords: BTreeMap<&'static str, String>,
    dir: tempfile::TempDir,
}

impl Fleet {
    fn start() -> Fleet {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_, key) = Cli::new(OUTPOST).keygen(dir.path(), "release");
        let broker_dir = dir.path().join("broker");
        let mut passwords = BTreeMap::new();
        for (device, group) in [("pi-1", "north"), ("pi-2", "south")] {
            let out = dir.path().join(device);
            let output = outpost(&[
                "provision",
                "--device-id",
                device,
                // The port is not known yet; agents get the real URL as a flag.
                "--broker",
                "mqtt://127.0.0.1:1883",
                "--trust",
                s(&key),
                "--group",
                group,
                "--out",
                s(&out),
                "--broker-dir",
                s(&broker_dir),
            ]);
            assert!(output.status.success(), "provision: {}", text(&output));
            passwords.insert(device, password_of(&out.join("etc/outpost/agent.toml")));
        }
        let broker = Broker::start_with_listener(&format!(
            "allow_anonymous false\npassword_file {}\nacl_file {}\nuse_username_as_clientid true",
            s(&broker_dir.join("devices.passwd")),
            s(&broker_dir.join("devices.acl")),
        ));
        Fleet {
            broker,
            passwords,
            dir,
        }
    }

    fn devices_url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.broker.second_port())
    }

    /// `outpost agent` as `device` with its provisioned credentials on the devices' listener.
    fn agent(&self, device: &str, group: &str, extra: &[&str]) -> Agent {
        let data = self.dir.path().join(format!("{device}-data"));
        let mut args = vec![
            "--username",
            device,
            "--password",
            &self.passwords[device],
            "--group",
            group,
        ];
        args.extend(extra);
        Agent::start(OUTPOST, device, &self.devices_url(), &data, &args)
    }

    /// `mosquitto_pub` on the devices' listener, logged in as `user`; returns whether the
    /// broker accepted the connection (a refused publish is acknowledged all the same in
    /// MQTT 3.1.1, and logged as "Denied PUBLISH").
    fn publish_as(&self, user: &str, client_id: &str, topic: &str, payload: &str, retain: bool) {
        let port = self.broker.second_port().to_string();
        let mut command = Command::new("mosquitto_pub");
        command.args(["-h", "127.0.0.1", "-p", &port, "-q", "1", "-V", "mqttv311"]);
        command.args(["-u", user, "-P", &self.passwords[user], "-i", client_id]);
        command.args(["-t", topic, "-m", payload]);
        if retain {
            command.arg("-r");
        }
        let output = command.output().expect("mosquitto_pub runs");
        assert!(output.status.success(), "mosquitto_pub: {}", text(&output));
    }

    /// Publishes as `user` and waits for the broker's "Denied PUBLISH" of that topic.
    fn assert_denied(&self, user: &str, client_id: &str, topic: &str, payload: &str, retain: bool) {
        let mark = self.broker.log_mark();
        self.publish_as(user, client_id, topic, payload, retain);
        let denied = self.broker.wait_log_after(mark, WAIT, |line| {
            line.contains(&format!("Denied PUBLISH from {user} ")) && line.contains(topic)
        });
        assert!(
            denied.is_some(),
            "{user} publishing {topic} was not denied; broker log:\n{}",
            self.broker.log_tail(20)
        );
    }

    /// The first message `user` receives on `filter` within `timeout` (retained ones
    /// included), on the devices' listener; `None` if none.
    fn receive_as(&self, user: &str, filter: &str, timeout: Duration) -> Option<String> {
        let port = self.broker.second_port().to_string();
        let secs = timeout.as_secs().max(1).to_string();
        let output = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port, "-V", "mqttv311"])
            .args(["-u", user, "-P", &self.passwords[user]])
            .args(["-t", filter, "-C", "1", "-W", &secs])
            .output()
            .expect("mosquitto_sub runs");
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// `mosquitto_pub` on the unrestricted (operator's) listener.
    fn publish_as_operator(&self, topic: &str, payload: &str, retain: bool) {
        let port = self.broker.port().to_string();
        let mut command = Command::new("mosquitto_pub");
        command.args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-q",
            "1",
            "-t",
            topic,
            "-m",
            payload,
        ]);
        if retain {
            command.arg("-r");
        }
        let output = command.output().expect("mosquitto_pub runs");
        assert!(output.status.success(), "mosquitto_pub: {}", text(&output));
    }
}

fn outpost(args: &[&str]) -> Output {
    Command::new(OUTPOST)
        .args(args)
        .output()
        .expect("outpost runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `password` of a generated agent.toml.
fn password_of(agent_toml: &Path) -> String {
    let config = std::fs::read_to_string(agent_toml).expect("agent.toml");
    let table: toml::Table = toml::from_str(&config).expect("TOML");
    table["mqtt"]["password"]
        .as_str()
        .expect("provision generated a password")
        .to_owned()
}

/// An app on `pi-1` that emits every command it receives to stream `cmd`.
fn command_app(dir: &Path) -> PathBuf {
    let app = dir.join("commands-app");
    std::fs::create_dir_all(&app).expect("app dir");
    let manifest = format!(
        r#"manifest_version = 1
[app]
name = "commands"
version = "1.0.0"
[[component]]
id = "commands"
source = "{}"
grants = {{ kv = ["cmds"], streams = ["cmd"] }}
[[component.trigger]]
name = "on-command"
mqtt = "{{commands}}/#"
"#,
        outpost_testkit::guests::wat_guest(&app, "slow_command").display()
    );
    std::fs::write(app.join("outpost.toml"), manifest).expect("manifest");
    app
}

fn cmd_payloads(subscriber: &Subscriber) -> Vec<String> {
    subscriber.with(|seen| {
        seen.events_of("pi-1")
            .filter(|a| a.stream == "cmd")
            .filter_map(|a| a.event["data"].as_str().map(str::to_owned))
            .collect()
    })
}

#[test]
fn a_sibling_cannot_impersonate_command_or_publish_fleet_topics_through_the_acl() {
    let fleet = Fleet::start();
    let subscriber = Subscriber::start(fleet.broker.port());
    let app = command_app(fleet.dir.path());

    // Legitimate reads before any agent holds the session: a device reads its group's and its
    // own fleet target's offers, a sibling of another group reads neither.
    fleet.publish_as_operator("outpost/fleet/north/apps/probe", "offer", true);
    fleet.publish_as_operator("outpost/fleet/@pi-1/apps/probe", "offer", true);
    assert_eq!(
        fleet.receive_as("pi-1", "outpost/fleet/north/#", WAIT),
        Some("offer".into())
    );
    assert_eq!(
        fleet.receive_as("pi-1", "outpost/fleet/@pi-1/#", WAIT),
        Some("offer".into())
    );
    let short = Duration::from_secs(1);
    assert_eq!(
        fleet.receive_as("pi-2", "outpost/fleet/north/#", short),
        None
    );
    assert_eq!(
        fleet.receive_as("pi-2", "outpost/fleet/@pi-1/#", short),
        None
    );
    fleet.publish_as_operator("outpost/fleet/north/apps/probe", "", true);
    fleet.publish_as_operator("outpost/fleet/@pi-1/apps/probe", "", true);

    // pi-1 runs through the ACL'd listener: its status (its own topics) reaches the operator.
    let pi1 = fleet.agent("pi-1", "north", &["--app", s(&app)]);
    assert!(
        pi1.wait_event(|e| matches!(e, AgentEvent::Connected), 1, WAIT),
        "pi-1 connects with its provisioned credentials:\n{}",
        pi1.output_tail(20)
    );
    assert!(
        subscriber.wait_for(WAIT, |seen| seen.status("pi-1").is_some()),
        "pi-1's status arrives"
    );

    // The operator's command reaches pi-1's app (a device reads its own command topics).
    fleet.publish_as_operator("outpost/pi-1/commands/commands/run", "from-operator", false);
    assert!(
        subscriber.wait_for(WAIT, |seen| seen
            .events_of("pi-1")
            .any(|a| a.event["data"] == "from-operator")),
        "the operator's command is handled:\n{}",
        pi1.output_tail(20)
    );

    // The sibling pi-2, with its own valid credentials:
    // forging pi-1's status and events,
    fleet.assert_denied(
        "pi-2",
        "pi-2",
        "outpost/pi-1/status",
        "{\"forged\":1}",
        true,
    );
    let event = r#"{"v":1,"device":"pi-1","stream":"cmd","seq":999,"data":"forged-event"}"#;
    fleet.assert_denied("pi-2", "pi-2", "outpost/pi-1/events/cmd", event, false);
    // commanding pi-1, directly or through pi-1's group,
    fleet.assert_denied(
        "pi-2",
        "pi-2",
        "outpost/pi-1/commands/commands/run",
        "forged-command",
        false,
    );
    fleet.assert_denied(
        "pi-2",
        "pi-2",
        "outpost/fleet/north/commands/commands/run",
        "forged-group-command",
        false,
    );
    // publishing fleet offers to any group, its own included,
    fleet.assert_denied(
        "pi-2",
        "pi-2",
        "outpost/fleet/north/apps/commands",
        "offer",
        true,
    );
    fleet.assert_denied(
        "pi-2",
        "pi-2",
        "outpost/fleet/south/apps/commands",
        "offer",
        true,
    );
    fleet.assert_denied(
        "pi-2",
        "pi-2",
        "outpost/fleet/@pi-1/apps/commands",
        "offer",
        true,
    );

    // Its own topics still work: the denials above are the ACL, not a broken login.
    fleet.publish_as("pi-2", "pi-2", "outpost/pi-2/status", "{}", true);
    assert_eq!(
        fetch_retained(fleet.broker.port(), "outpost/pi-2/status"),
        vec![("outpost/pi-2/status".to_owned(), b"{}".to_vec())],
        "pi-2's own status is retained"
    );

    // Session takeover: a client id of pi-1 with pi-2's credentials becomes pi-2 on this
    // listener, so pi-1's session stays up.
    let mark = fleet.broker.log_mark();
    fleet.publish_as("pi-2", "pi-1", "outpost/pi-2/events/x", "{}", false);
    let connected = fleet.broker.wait_log_after(mark, WAIT, |line| {
        line.contains("New client connected") && line.contains("u'pi-2'")
    });
    assert!(
        connected
            .as_deref()
            .is_some_and(|line| line.contains(" as pi-2 ")),
        "the client id was replaced by the user name: {connected:?}"
    );

    // pi-2 subscribed to pi-1's commands receives none of them.
    let port = fleet.broker.second_port().to_string();
    let mark = fleet.broker.log_mark();
    let snoop = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port, "-V", "mqttv311"])
        .args(["-u", "pi-2", "-P", &fleet.passwords["pi-2"]])
        .args(["-t", "outpost/pi-1/commands/#", "-C", "1", "-W", "5"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_sub runs");
    assert!(
        fleet
            .broker
            .wait_log_after(mark, WAIT, |line| line.contains("SUBSCRIBE from pi-2"))
            .is_some(),
        "pi-2 subscribes"
    );

    // A further operator command proves pi-1 is still connected and handling commands; it is
    // handled after the forged ones would have been (one dispatcher, in order).
    fleet.publish_as_operator("outpost/pi-1/commands/commands/run", "after", false);
    assert!(
        subscriber.wait_for(WAIT, |seen| seen
            .events_of("pi-1")
            .any(|a| a.event["data"] == "after")),
        "pi-1 still handles the operator's commands"
    );
    let payloads = cmd_payloads(&subscriber);
    assert!(
        !payloads.iter().any(|p| p.starts_with("forged")),
        "no forged command or event reached pi-1 or the operator: {payloads:?}"
    );
    assert_eq!(
        pi1.count_events(|e| matches!(e, AgentEvent::Disconnected { .. })),
        0,
        "pi-1 was never disconnected:\n{}",
        pi1.output_tail(30)
    );
    // pi-1's retained status is its own, not the forgery.
    let status = fetch_retained(fleet.broker.port(), "outpost/pi-1/status");
    assert!(
        status
            .iter()
            .all(|(_, payload)| !String::from_utf8_lossy(payload).contains("forged")),
        "{status:?}"
    );
    // No offer from pi-2 was retained anywhere under the fleet root.
    assert!(fetch_retained(fleet.broker.port(), "outpost/fleet/#").is_empty());
    let snoop = snoop.wait_with_output().expect("mosquitto_sub ends");
    assert!(
        !snoop.status.success() && snoop.stdout.is_empty(),
        "pi-2 read pi-1's commands: {}",
        text(&snoop)
    );

    // Without the ACL'd listener (the control): the same client id takes pi-1's session.
    let output = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &fleet.broker.port().to_string()])
        .args(["-i", "pi-1", "-q", "1", "-t", "outpost/takeover", "-m", "x"])
        .output()
        .expect("mosquitto_pub runs");
    assert!(output.status.success());
    assert!(
        pi1.wait_event(|e| matches!(e, AgentEvent::Disconnected { .. }), 1, WAIT),
        "an unrestricted listener lets a client id take pi-1's session (the attack the ACL'd \
         listener stops)"
    );
}

#[test]
fn provision_refuses_plaintext_passwords_reserved_ids_and_filters_under_the_prefix() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, key) = Cli::new(OUTPOST).keygen(dir.path(), "release");
    let base = |device: &'static str, out: &str, broker: &'static str| -> Vec<String> {
        [
            "provision",
            "--device-id",
            device,
            "--broker",
            broker,
            "--trust",
            s(&key),
            "--out",
            s(&dir.path().join(out)),
            "--broker-dir",
            s(&dir.path().join("broker")),
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let run = |args: &[String]| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        outpost(&refs)
    };

    // A generated password to a remote plain mqtt:// broker: refused, naming the fix.
    let output = run(&base("pi-1", "a", "mqtt://broker.example:1883"));
    assert!(!output.status.success());
    let message = text(&output);
    assert!(
        message.contains("unencrypted") && message.contains("--allow-plaintext-password"),
        "{message}"
    );
    let mut allowed = base("pi-1", "b", "mqtt://broker.example:1883");
    allowed.push("--allow-plaintext-password".into());
    let output = run(&allowed);
    assert!(output.status.success(), "{}", text(&output));
    let config =
        std::fs::read_to_string(dir.path().join("b/etc/outpost/agent.toml")).expect("agent.toml");
    assert!(
        config.contains("allow_plaintext_password = true"),
        "{config}"
    );

    // Ids the ACL reserves, and extra filters that reach into the prefix.
    for device in ["fleet", "operator"] {
        let output = run(&base(device, device, "mqtts://broker.example"));
        assert!(
            !output.status.success() && text(&output).contains("reserved"),
            "{}",
            text(&output)
        );
    }
    for filter in ["outpost/pi-2/status", "+/pi-2/status", "#"] {
        let mut args = base("pi-3", "c", "mqtts://broker.example");
        args.extend(["--acl-write".to_owned(), filter.to_owned()]);
        let output = run(&args);
        assert!(!output.status.success(), "{filter} accepted");
    }
    // The registry keeps pi-1 once, however often it is provisioned.
    let acl = std::fs::read_to_string(dir.path().join("broker/devices.acl")).expect("acl");
    assert_eq!(acl.matches("user pi-1\n").count(), 1, "{acl}");
}
