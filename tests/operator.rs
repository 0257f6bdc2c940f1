//! The operator's commands against a secured broker: `fleet status`, `fleet tail` and `fleet
//! publish` log in to a mosquitto listener with TLS and password authentication, from flags,
//! the environment or an operator config file, and wrong settings fail at once with one line
//! that names the fix.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use outpost::events::AgentEvent;
use outpost_testkit::agent::Agent;
use outpost_testkit::beacon::Beacon;
use outpost_testkit::broker::Broker;
use outpost_testkit::fleet::Cli;
use outpost_testkit::s;
use serde_json::Value;

use crate::OUTPOST;
use crate::sync_faults::{make_certificates, mosquitto_passwd};

const DEVICE: &str = "ops-dev";
const WAIT: Duration = Duration::from_secs(30);

/// A broker whose second listener wants TLS (CA `ca.pem`, certificate for `localhost`) and a
/// user name and password (`ops` / `right-password`), and the files an operator holds.
struct Secured {
    broker: Broker,
    dir: tempfile::TempDir,
    /// An empty config directory, so no operator.toml of the machine's user is read.
    xdg: tempfile::TempDir,
}

impl Secured {
    fn start() -> Secured {
        let dir = tempfile::tempdir().expect("temp dir");
        make_certificates(dir.path());
        let path = |name: &str| s(&dir.path().join(name)).to_owned();
        mosquitto_passwd(&["-c", "-b", &path("passwords"), "ops", "right-password"]);
        std::fs::write(dir.path().join("password"), "right-password\n").expect("password");
        std::fs::write(dir.path().join("wrong-password"), "wrong\n").expect("password");
        let broker = Broker::start_with_listener(&format!(
            "allow_anonymous false\npassword_file {}\ncafile {}\ncertfile {}\nkeyfile {}",
            path("passwords"),
            path("ca.pem"),
            path("server.pem"),
            path("server.key")
        ));
        Secured {
            broker,
            dir,
            xdg: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn file(&self, name: &str) -> String {
        s(&self.dir.path().join(name)).to_owned()
    }

    /// `mqtts://localhost:PORT` of the secured listener.
    fn url(&self) -> String {
        format!("mqtts://localhost:{}", self.broker.second_port())
    }

    /// The flags of a correct login.
    fn login(&self) -> Vec<String> {
        let url = self.url();
        let (ca, password) = (self.file("ca.pem"), self.file("password"));
        ["--broker", &url, "--ca-file", &ca, "--username", "ops"]
            .into_iter()
            .chain(["--password-file", &password])
            .map(str::to_owned)
            .collect()
    }

    /// `outpost ARGS...` with this test's config directory and no OUTPOST_PASSWORD.
    fn command(&self, args: &[&str], extra: &[String]) -> Command {
        let mut command = Command::new(OUTPOST);
        command
            .args(args)
            .args(extra)
            .env("XDG_CONFIG_HOME", self.xdg.path())
            .env_remove("OUTPOST_PASSWORD")
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str], extra: &[String]) -> Output {
        self.command(args, extra).output().expect("outpost runs")
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts success; returns stdout.
fn succeeded(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Asserts a failure with one stderr line containing every one of `needles`.
fn failed_with(output: &Output, what: &str, needles: &[&str]) {
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{what} succeeded: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: one line: {stderr}");
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{what}: no {needle:?} in: {stderr}"
        );
    }
}

#[test]
fn fleet_commands_log_in_with_tls_and_a_password_and_name_the_fix_when_they_cannot() {
    let secured = Secured::start();
    let login = secured.login();
    let data = tempfile::tempdir().expect("temp dir");
    outpost_testkit::prefill::prefill(
        data.path(),
        5,
        &["readings"],
        outpost::store::OutboxLimits::default(),
    );

    // fleet tail --json over TLS with the password, subscribed before the device connects
    // (clean session: it sees what is published after it subscribed).
    let mark = secured.broker.log_mark();
    let tail = secured
        .command(
            &[
                "fleet", "tail", "--json", "--device", DEVICE, "--count", "5",
            ],
            &login,
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fleet tail starts");
    secured
        .broker
        .wait_log_after(mark, WAIT, |line| {
            line.contains("SUBSCRIBE from outpost-tail-")
        })
        .expect("fleet tail logged in and subscribed");
    // The device uses the open listener.
    let mut agent = Agent::start(OUTPOST, DEVICE, &secured.broker.url(), data.path(), &[]);
    let tailed = tail
        .wait_with_output()
        .expect("fleet tail exits after --count");
    let lines = succeeded(&tailed, "fleet tail");
    let events: Vec<Value> = lines
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(events.len(), 5, "{lines}");
    assert!(
        events
            .iter()
            .all(|e| e["device"] == DEVICE && e["stream"] == "readings"),
        "{lines}"
    );
    assert!(agent.wait_event(|e| matches!(e, AgentEvent::Drained), 1, WAIT));

    // fleet status --json: an array with the device, online.
    let status = succeeded(
        &secured.run(&["fleet", "status", "--json"], &login),
        "fleet status",
    );
    let all: Value = serde_json::from_str(&status).expect("fleet status --json is JSON");
    let device = all
        .as_array()
        .and_then(|all| all.iter().find(|d| d["device"] == DEVICE))
        .unwrap_or_else(|| panic!("{DEVICE} missing: {status}"));
    assert_eq!(device["online"], true, "{status}");

    // fleet status DEVICE --json: one object with its status and the reports seen.
    let one = succeeded(
        &secured.run(&["fleet", "status", DEVICE, "--json"], &login),
        "fleet status DEVICE",
    );
    let one: Value = serde_json::from_str(&one).expect("JSON");
    assert_eq!(one["device"], DEVICE);
    assert_eq!(one["status"]["device"], DEVICE, "{one}");
    assert!(one["updates"].is_array(), "{one}");

    // fleet publish over the same login.
    let keys = tempfile::tempdir().expect("temp dir");
    let cli = Cli::new(OUTPOST);
    let (key, _) = cli.keygen(keys.path(), "ops");
    let bundle = cli.beacon_bundle(keys.path(), &key, &Beacon::new("1.0.0", "ok"));
    let published = succeeded(
        &secured.run(
            &[
                "fleet",
                "publish",
                s(&bundle),
                "--key",
                s(&key),
                "--group",
                "ops",
            ],
            &login,
        ),
        "fleet publish",
    );
    assert!(published.contains("published beacon 1.0.0"), "{published}");

    // Wrong password: each command fails at once, naming the fix.
    let mut wrong = login.clone();
    let at = wrong
        .iter()
        .position(|a| a == "--password-file")
        .expect("flag")
        + 1;
    wrong[at] = secured.file("wrong-password");
    for (what, args) in [
        ("status", vec!["fleet", "status"]),
        ("tail", vec!["fleet", "tail", "--count", "1"]),
        (
            "publish",
            vec![
                "fleet",
                "publish",
                s(&bundle),
                "--key",
                s(&key),
                "--group",
                "ops",
            ],
        ),
    ] {
        failed_with(
            &secured.run(&args, &wrong),
            what,
            &["refused the credentials", "--username"],
        );
    }

    // The wrong CA: the TLS error names --ca-file.
    let url = secured.url();
    let other_ca = secured.file("other-ca.pem");
    let password = secured.file("password");
    let wrong_ca = [
        "--broker",
        &url,
        "--ca-file",
        &other_ca,
        "--username",
        "ops",
    ]
    .into_iter()
    .chain(["--password-file", &password])
    .map(str::to_owned)
    .collect::<Vec<_>>();
    failed_with(
        &secured.run(&["fleet", "status"], &wrong_ca),
        "wrong CA",
        &["TLS", "--ca-file"],
    );
    // A missing CA file is named before any connection.
    let mut missing = login.clone();
    let at = missing.iter().position(|a| a == "--ca-file").expect("flag") + 1;
    missing[at] = secured.file("no-such-ca.pem");
    failed_with(
        &secured.run(&["fleet", "status"], &missing),
        "missing CA",
        &["no-such-ca.pem", "no such file"],
    );

    // The password from the environment.
    let env_login = ["--broker", &url, "--ca-file", &secured.file("ca.pem")]
        .into_iter()
        .chain(["--username", "ops"])
        .map(str::to_owned)
        .collect::<Vec<_>>();
    let output = secured
        .command(&["fleet", "status", "--json"], &env_login)
        .env("OUTPOST_PASSWORD", "right-password")
        .output()
        .expect("runs");
    succeeded(&output, "fleet status with OUTPOST_PASSWORD");

    // An operator config file, paths relative to it; a flag overrides one of its settings.
    let config = secured.dir.path().join("operator.toml");
    std::fs::write(
        &config,
        format!(
            "[broker]\nurl = \"{url}\"\nusername = \"ops\"\npassword_file = \"password\"\n\
             ca_file = \"ca.pem\"\n"
        ),
    )
    .expect("operator.toml");
    let from_file = succeeded(
        &secured.run(&["fleet", "status", "--json", "--config", s(&config)], &[]),
        "fleet status --config",
    );
    assert!(from_file.contains(DEVICE), "{from_file}");
    let overridden = ["--password-file".to_owned(), secured.file("wrong-password")];
    failed_with(
        &secured.run(&["fleet", "status", "--config", s(&config)], &overridden),
        "a flag over the file",
        &["refused the credentials"],
    );
    // The default place: $XDG_CONFIG_HOME/outpost/operator.toml.
    let default = secured.xdg.path().join("outpost");
    std::fs::create_dir_all(&default).expect("dir");
    std::fs::write(
        default.join("operator.toml"),
        format!(
            "[broker]\nurl = \"{url}\"\nusername = \"ops\"\npassword_file = \"{}\"\n\
             ca_file = \"{}\"\n",
            secured.file("password"),
            secured.file("ca.pem")
        ),
    )
    .expect("operator.toml");
    succeeded(
        &secured.run(&["fleet", "status", DEVICE], &[]),
        "fleet status with the default operator.toml",
    );
    agent.terminate();
}
