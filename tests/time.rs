//! Cron time zones on a real device: zones come from the system's tz database, and an app whose
//! zone the device lacks is refused before it starts, saying how to fix it. (DST arithmetic and
//! re-anchoring are tested purely: `scheduler::plan`, `sync::anchor`, `sync::tests`.)

use std::path::Path;
use std::process::{Command, Output};

use crate::OUTPOST;

/// Runs `outpost ARGS` in `dir` with the tz database at `tzdir` (the child's environment only).
fn outpost_with_tzdir(args: &[&str], dir: &Path, tzdir: &Path) -> Output {
    Command::new(OUTPOST)
        .args(args)
        .current_dir(dir)
        .env("TZDIR", tzdir)
        .output()
        .expect("outpost runs")
}

fn write_app(dir: &Path, zone: &str) {
    let manifest = format!(
        "manifest_version = 1\n[app]\nname = \"tz\"\nversion = \"1.0.0\"\n\
         [variables]\ngreeting = \"hi\"\n\
         [[component]]\nid = \"echo\"\nsource = \"{}\"\n\
         grants = {{ streams = [\"echo\"], kv = [\"echo\"], config = [\"greeting\"] }}\n\
         [[component.trigger]]\nname = \"breakfast\"\ncron = \"0 30 7 * * *\"\n\
         timezone = \"{zone}\"\n",
        outpost_testkit::guests::guest("echo").display(),
    );
    std::fs::write(dir.join("outpost.toml"), manifest).expect("manifest");
}

#[test]
fn an_app_whose_zone_the_device_lacks_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_app(dir.path(), "Europe/Berlin");
    // A device without tzdata: no database at all.
    let missing = dir.path().join("no-zoneinfo");
    let run = outpost_with_tzdir(&["invoke", ".", "echo"], dir.path(), &missing);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "trigger 'breakfast': time zone \"Europe/Berlin\" is not installed on this device"
        ) && stderr.contains("apt install tzdata"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");

    // Where a database exists, a zone it does not hold is refused when the manifest is read.
    let database = dir.path().join("zoneinfo");
    std::fs::create_dir_all(&database).expect("database dir");
    let run = outpost_with_tzdir(&["invoke", ".", "echo"], dir.path(), &database);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(
        stderr.contains("`timezone` \"Europe/Berlin\" is not in the tz database"),
        "{stderr}"
    );
}

#[test]
fn an_app_whose_zone_is_installed_runs() {
    let system = Path::new("/usr/share/zoneinfo");
    if !system.join("Europe/Berlin").exists() {
        return; // no tzdata on this machine; the refusal above is what it would see
    }
    let dir = tempfile::tempdir().expect("temp dir");
    write_app(dir.path(), "Europe/Berlin");
    let run = outpost_with_tzdir(&["invoke", ".", "echo"], dir.path(), system);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn a_fleet_app_whose_zone_the_device_lacks_is_refused_before_activation() {
    use outpost::events::AgentEvent;
    use outpost_testkit::agent::Agent;
    use outpost_testkit::beacon::Beacon;
    use outpost_testkit::broker::Broker;
    use outpost_testkit::fleet::Cli;
    use outpost_testkit::s;
    use outpost_testkit::subscriber::Subscriber;
    use std::time::Duration;

    let dir = tempfile::tempdir().expect("temp dir");
    let broker = Broker::start();
    let sub = Subscriber::start_with(broker.port(), &["outpost/+/updates"]);
    let cli = Cli::new(OUTPOST);
    let (key, public) = cli.keygen(dir.path(), "release");
    // The device has no tz database; the operator's machine may (publish checks spelling).
    let missing = dir.path().join("no-zoneinfo");
    let mut agent = Agent::start_with_env(
        OUTPOST,
        "pi-tz",
        &broker.url(),
        &dir.path().join("data"),
        &["--trust", s(&public), "--group", "field"],
        &[("TZDIR", &missing)],
    );
    assert!(
        agent.wait_event(
            |e| matches!(e, AgentEvent::Connected),
            1,
            Duration::from_secs(60),
        ),
        "the device connects"
    );
    let beacon =
        Beacon::new("1.0.0", "on").trigger("cron = \"* * * * * *\"\ntimezone = \"Europe/Berlin\"");
    let bundle = cli.beacon_bundle(dir.path(), &key, &beacon);
    cli.publish(&bundle, &key, &broker.url(), "field", &[]);
    let refused = sub.wait_for(Duration::from_secs(60), |seen| {
        seen.messages.iter().any(|m| {
            m.topic == "outpost/pi-tz/updates"
                && serde_json::from_slice::<serde_json::Value>(&m.payload).is_ok_and(|r| {
                    r["result"] == "refused"
                        && r["reason"].as_str().is_some_and(|reason| {
                            reason.contains("time zone \"Europe/Berlin\" is not installed")
                        })
                })
        })
    });
    assert!(
        refused,
        "no refusal naming the zone:\n{}",
        agent.output_tail(30)
    );
    assert_eq!(
        agent.count_events(|e| matches!(e, AgentEvent::FleetRunning { .. })),
        0,
        "nothing was activated"
    );
    agent.terminate();
}
