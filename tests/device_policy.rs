//! The device's own say over apps (issue 15, item 5), whoever signed them: a publish grant
//! reaching the agent's topics under `{prefix}/` is refused, `[policy]` in agent.toml narrows
//! what any app (local or fleet) may be granted, secrets live in a 0600 file on the device and
//! reach granted components as variables, and what the agent creates is its own (0700/0600).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use outpost::events::AgentEvent;
use outpost_testkit::agent::Agent;
use outpost_testkit::beacon::Beacon;
use outpost_testkit::broker::Broker;
use outpost_testkit::fleet::Cli;
use outpost_testkit::s;
use outpost_testkit::subscriber::Subscriber;

use crate::OUTPOST;

const DEVICE: &str = "pi-5";
const WAIT: Duration = Duration::from_secs(30);

/// agent.toml with `[policy]` and a secrets file (mode `mode`) holding `mode = "from-device"`.
fn device_config(dir: &Path, secrets_mode: u32) -> PathBuf {
    let secrets = dir.join("secrets.toml");
    std::fs::write(&secrets, "mode = \"from-device\"\n").expect("secrets");
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(secrets_mode))
        .expect("chmod");
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "config_version = 1\ndevice_id = \"{DEVICE}\"\nsecrets = \"{}\"\n\
             [mqtt]\nbroker = \"mqtt://127.0.0.1:1\"\n\
             [policy]\ninterfaces = [\"streams\", \"config\", \"publish\"]\n\
             publish = [\"site/#\"]\ngpio = []\n",
            s(&secrets)
        ),
    )
    .expect("agent.toml");
    config
}

/// A beacon app named `name` with `grant` added to its grants, signed into a bundle.
fn bundle(cli: &Cli, dir: &Path, key: &Path, name: &str, grant: &str) -> PathBuf {
    let beacon = Beacon::new("1.0.0", "fleet");
    let app = beacon.write_app(&dir.join(name));
    let manifest = std::fs::read_to_string(app.join("outpost.toml")).expect("manifest");
    let manifest = manifest
        .replace("name = \"beacon\"", &format!("name = \"{name}\""))
        .replace(
            "config = [\"mode\"]",
            &format!("config = [\"mode\"]\n{grant}"),
        );
    std::fs::write(app.join("outpost.toml"), manifest).expect("manifest");
    let out = dir.join(format!("{name}.bundle"));
    cli.run(&[
        "bundle",
        "build",
        s(&app),
        "--key",
        s(key),
        "--out",
        s(&out),
    ]);
    out
}

fn refused_with(agent: &Agent, app: &str, needle: &str) -> bool {
    agent.wait_event(
        |e| {
            matches!(e, AgentEvent::UpdateReported { app: a, result, line, .. }
                if a == app && result == "refused" && line.contains(needle))
        },
        1,
        WAIT,
    )
}

#[test]
fn the_device_policy_narrows_local_and_fleet_apps_and_fills_secrets() {
    let broker = Broker::start();
    let subscriber = Subscriber::start(broker.port());
    let dir = tempfile::tempdir().expect("temp dir");
    let cli = Cli::new(OUTPOST);
    let (key, public) = cli.keygen(dir.path(), "release");
    let config = device_config(dir.path(), 0o600);
    // The local app asks for the device's secret through its variable.
    let local = Beacon::new("1.0.0", "{secret}").write_app(dir.path());
    let data = dir.path().join("data");
    let agent = Agent::start(
        OUTPOST,
        DEVICE,
        &broker.url(),
        &data,
        &[
            "--config",
            s(&config),
            "--app",
            s(&local),
            "--group",
            "north",
            "--trust",
            s(&public),
        ],
    );

    // The secret reached the component as its variable; the bundle only said "{secret}".
    assert!(
        subscriber.wait_for(WAIT, |seen| seen
            .events_of(DEVICE)
            .any(|a| a.stream == "beat" && a.event["data"] == "from-device")),
        "the local app reads the device's secret:\n{}",
        agent.output_tail(20)
    );

    // Fleet apps meet the same policy: a publish grant outside [policy] publish, and one
    // reaching the agent's own status topic, are refused with the reason in the report.
    let outside = bundle(
        &cli,
        dir.path(),
        &key,
        "outside",
        "publish = [\"alerts/#\"]",
    );
    cli.publish(&outside, &key, &broker.url(), "north", &[]);
    assert!(
        refused_with(
            &agent,
            "outside",
            "publish 'alerts/#' is not allowed by this device's [policy]"
        ),
        "{}",
        agent.output_tail(20)
    );
    let grant = format!("publish = [\"outpost/{DEVICE}/status\"]");
    let reserved = bundle(&cli, dir.path(), &key, "reserved", &grant);
    cli.publish(&reserved, &key, &broker.url(), "north", &[]);
    assert!(
        refused_with(
            &agent,
            "reserved",
            "reaches the agent's own topics under 'outpost/'"
        ),
        "{}",
        agent.output_tail(20)
    );
    // Within the policy, a fleet app runs (and its secret-free variable stays as signed).
    let within = bundle(
        &cli,
        dir.path(),
        &key,
        "within",
        "publish = [\"site/lamp\"]",
    );
    cli.publish(&within, &key, &broker.url(), "north", &[]);
    assert!(
        agent.wait_event(
            |e| matches!(e, AgentEvent::FleetRunning { app, .. } if app == "within"),
            1,
            WAIT
        ),
        "{}",
        agent.output_tail(20)
    );

    // Everything the agent created is its own, whatever the test's umask.
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&data), 0o700, "data dir");
    assert_eq!(mode(&data.join("state.redb")), 0o600, "state.redb");
}

#[test]
fn a_local_app_beyond_the_policy_or_a_shared_secrets_file_is_refused_with_the_fix() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = device_config(dir.path(), 0o600);
    // GPIO is not among [policy] interfaces.
    let app = Beacon::new("1.0.0", "x").write_app(dir.path());
    let manifest = std::fs::read_to_string(app.join("outpost.toml")).expect("manifest");
    std::fs::write(
        app.join("outpost.toml"),
        manifest.replace(
            "config = [\"mode\"]",
            "config = [\"mode\"]\ngpio = [\"out:relay\"]",
        ),
    )
    .expect("manifest");
    let agent = Agent::start(
        OUTPOST,
        DEVICE,
        &broker.url(),
        &dir.path().join("data"),
        &["--config", s(&config), "--app", s(&app), "--simulate"],
    );
    assert!(
        agent.wait_event(
            |e| matches!(e, AgentEvent::Problem { area, message }
                if area == "app" && message.contains("refused by this device")
                    && message.contains("interface 'gpio' is not allowed")),
            1,
            WAIT
        ),
        "{}",
        agent.output_tail(20)
    );

    // A secrets file others can read stops the agent at start, naming the fix.
    let exposed = device_config(dir.path(), 0o644);
    let output = Command::new("timeout")
        .args(["20", OUTPOST, "agent", "--config", s(&exposed)])
        .args([
            "--data",
            s(&dir.path().join("data2")),
            "--broker",
            &broker.url(),
        ])
        .output()
        .expect("outpost agent runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("mode 644 lets others read the secrets: chmod 600"),
        "{stderr}"
    );
}
