//! The `outpost` command line as a person uses it: outcomes on stdout, one-line errors on stderr,
//! non-zero exit codes on failure.

use std::path::Path;
use std::process::{Command, Output};

use crate::OUTPOST;

fn outpost(args: &[&str], dir: &Path) -> Output {
    Command::new(OUTPOST)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("outpost runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write_app(dir: &Path, extra: &str) {
    let manifest = format!(
        "manifest_version = 1\n[app]\nname = \"cli\"\nversion = \"1.0.0\"\n{extra}\
         [variables]\ngreeting = \"hi\"\n\
         [[component]]\nid = \"echo\"\nsource = \"{}\"\n\
         grants = {{ streams = [\"echo\"], kv = [\"echo\"], config = [\"greeting\"] }}\n\
         [[component]]\nid = \"trapper\"\nsource = \"{}\"\n\
         grants = {{ kv = [\"state\"], streams = [\"events\"] }}\n",
        outpost_testkit::guests::guest("echo").display(),
        outpost_testkit::guests::guest("trap_after_write").display()
    );
    std::fs::write(dir.join("outpost.toml"), manifest).expect("manifest");
}

#[test]
fn invoke_prints_the_outcome_and_the_state_commands_read_what_it_committed() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_app(dir.path(), "");
    std::fs::write(dir.path().join("payload.bin"), b"abc").expect("payload");

    let run = outpost(
        &["invoke", ".", "echo", "--payload", "payload.bin"],
        dir.path(),
    );
    let stdout = text(&run.stdout);
    assert!(run.status.success(), "{stdout}{}", text(&run.stderr));
    assert!(
        stdout.contains("echo <- manual (Manual): ok in"),
        "{stdout}"
    );
    assert!(
        stdout.contains("#1 event echo: kind=6 name=manual len=3"),
        "{stdout}"
    );

    let kv = outpost(&["kv", "get", "echo", "greeting"], dir.path());
    assert!(kv.status.success(), "{}", text(&kv.stderr));
    assert_eq!(text(&kv.stdout).trim(), "hi");

    let outbox = outpost(&["outbox", "list"], dir.path());
    let listing = text(&outbox.stdout);
    assert!(
        listing.contains("#1 ") && listing.contains("cli/echo event echo: kind=6"),
        "{listing}"
    );
    assert!(listing.contains("outbox: 1 record(s)"), "{listing}");
}

#[test]
fn a_failing_invocation_exits_non_zero_and_names_the_cause() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_app(dir.path(), "");
    let run = outpost(&["invoke", ".", "trapper"], dir.path());
    assert!(!run.status.success());
    let stdout = text(&run.stdout);
    assert!(
        stdout.contains("trapper <- manual (Manual): FAILED") && stdout.contains("trapped"),
        "{stdout}"
    );
    assert!(stdout.contains("nothing committed"), "{stdout}");
}

#[test]
fn errors_are_one_line_naming_the_problem_with_a_non_zero_exit() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_app(dir.path(), "colour = \"red\"\n");
    let run = outpost(&["invoke", ".", "echo"], dir.path());
    assert!(!run.status.success());
    let stderr = text(&run.stderr);
    let lines: Vec<_> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].starts_with("error: ")
            && lines[0].contains("outpost.toml:5:1")
            && lines[0].contains("colour"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    write_app(dir.path(), "");
    let run = outpost(&["invoke", ".", "nope"], dir.path());
    assert!(!run.status.success());
    assert!(
        text(&run.stderr).contains("no component 'nope' in app cli (it has: echo, trapper)"),
        "{}",
        text(&run.stderr)
    );

    let empty = tempfile::tempdir().expect("temp dir");
    let run = outpost(&["outbox", "list"], empty.path());
    assert!(!run.status.success());
    assert!(
        text(&run.stderr).contains("nothing has run there yet"),
        "{}",
        text(&run.stderr)
    );
}

#[test]
fn hal_list_shows_scaled_sensor_values_with_units_from_a_fake_sysfs_tree() {
    let root = tempfile::tempdir().expect("temp dir");
    outpost_testkit::write_tree(
        root.path(),
        &[
            ("sys/class/thermal/thermal_zone0/type", "cpu-thermal\n"),
            ("sys/class/thermal/thermal_zone0/temp", "48312\n"),
            ("sys/class/hwmon/hwmon0/name", "rpi_volt\n"),
            ("sys/class/hwmon/hwmon0/in0_input", "1200\n"),
            ("sys/class/hwmon/hwmon0/in0_label", "core\n"),
            ("sys/class/hwmon/hwmon1/name", "broken\n"),
            ("sys/class/hwmon/hwmon1/temp1_input", "not a number\n"),
        ],
    );
    let run = outpost(
        &[
            "hal",
            "list",
            "--root",
            root.path().to_str().expect("utf-8"),
            "--dev",
            "/nonexistent",
        ],
        root.path(),
    );
    let stdout = text(&run.stdout);
    assert!(run.status.success(), "{stdout}{}", text(&run.stderr));
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{stdout}"))
    };
    assert!(
        line("thermal/cpu-thermal").contains("48.312 °C"),
        "{stdout}"
    );
    assert!(line("hwmon/rpi_volt/core").contains("1.200 V"), "{stdout}");
    let broken = line("hwmon/broken/temp1");
    assert!(
        broken.contains("unreadable") && broken.contains("not a number"),
        "a clear error, not a crash: {broken}"
    );
}

#[test]
fn quiet_keeps_stderr_to_warnings_and_verbose_shows_routine_agent_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = format!(
        "manifest_version = 1\n[app]\nname = \"quiet\"\nversion = \"1.0.0\"\n\
         [variables]\ngreeting = \"hi\"\n\
         [[component]]\nid = \"echo\"\nsource = \"{}\"\nbuild = {{ command = \"true\" }}\n\
         grants = {{ streams = [\"echo\"], kv = [\"echo\"], config = [\"greeting\"] }}\n",
        outpost_testkit::guests::guest("echo").display()
    );
    std::fs::write(dir.path().join("outpost.toml"), manifest).expect("manifest");
    let normal = outpost(&["build", "."], dir.path());
    assert!(normal.status.success(), "{}", text(&normal.stderr));
    assert!(
        text(&normal.stderr).contains("INFO building"),
        "{}",
        text(&normal.stderr)
    );
    // -q / --quiet anywhere on the line (a global flag): the outcome stays, the info line goes.
    for args in [["-q", "build", "."], ["build", ".", "--quiet"]] {
        let quiet = outpost(&args, dir.path());
        assert!(quiet.status.success(), "{}", text(&quiet.stderr));
        assert_eq!(text(&quiet.stderr), "", "{args:?}");
        assert!(text(&quiet.stdout).contains("built 1 component(s)"));
    }

    // `outpost agent --events text`: `sync: drained` only with -v; connects always.
    let broker = outpost_testkit::broker::Broker::start();
    let url = broker.url();
    let agent_args = |device: &str, data: &Path, verbose: bool| {
        let mut args = vec!["--device-id", device, "--broker", &url, "--data"];
        args.push(data.to_str().expect("utf-8"));
        args.extend(outpost_testkit::agent::FAST_AGENT_ARGS);
        if verbose {
            args.push("-v");
        }
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let wait = std::time::Duration::from_secs(30);
    let limits = outpost::store::OutboxLimits::default();
    let data = dir.path().join("verbose");
    outpost_testkit::prefill::prefill(&data, 5, &["s"], limits);
    let mut verbose = outpost_testkit::agent::Agent::spawn_text(
        crate::OUTPOST,
        &agent_args("verbose", &data, true),
    );
    assert!(
        verbose.wait_text("sync: drained", wait),
        "{}",
        verbose.output_tail(20)
    );
    verbose.terminate();

    let data = dir.path().join("normal");
    let committed = outpost_testkit::prefill::prefill(&data, 5, &["s"], limits);
    let sub = outpost_testkit::subscriber::Subscriber::start(broker.port());
    let mut normal = outpost_testkit::agent::Agent::spawn_text(
        crate::OUTPOST,
        &agent_args("normal", &data, false),
    );
    assert!(
        normal.wait_text("sync: connected", wait),
        "{}",
        normal.output_tail(20)
    );
    assert!(sub.wait_for_all("normal", &committed, wait));
    normal.terminate();
    assert!(
        normal.count_text("outpost agent: stopped") == 1,
        "{}",
        normal.output_tail(20)
    );
    assert_eq!(
        normal.count_text("sync: drained"),
        0,
        "{}",
        normal.output_tail(20)
    );

    // No colours in a pipe, whatever NO_COLOR says: the table is plain text for scripts.
    for no_color in ["1", ""] {
        let status = Command::new(crate::OUTPOST)
            .args(["fleet", "status", "--broker", &url])
            .env("NO_COLOR", no_color)
            .env("XDG_CONFIG_HOME", dir.path())
            .output()
            .expect("fleet status runs");
        let table = text(&status.stdout);
        assert!(status.status.success(), "{}", text(&status.stderr));
        assert!(
            table.contains("normal") && !table.contains('\x1b'),
            "{table}"
        );
    }
}

#[test]
fn hal_list_shows_how_apps_names_bind_and_fails_when_one_cannot() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("board");
    outpost_testkit::write_tree(
        &root,
        &[
            ("sys/class/thermal/thermal_zone0/type", "cpu-thermal\n"),
            ("sys/class/thermal/thermal_zone0/temp", "48312\n"),
            ("sys/class/hwmon/hwmon0/name", "rpi_volt\n"),
            ("sys/class/hwmon/hwmon0/in0_input", "1200\n"),
        ],
    );
    let app = |name: &str, grants: &str| {
        let app = dir.path().join(name);
        std::fs::create_dir_all(&app).expect("app dir");
        std::fs::write(
            app.join("outpost.toml"),
            format!(
                "manifest_version = 1\n[app]\nname = \"{name}\"\nversion = \"1.0.0\"\n\
                 [[component]]\nid = \"c\"\nsource = \"{}\"\ngrants = {{ {grants} }}\n\
                 [[simulator.sensor]]\nname = \"temperature\"\nunit = \"°C\"\nprofile = \"constant\"\nvalue = 20.0\n",
                outpost_testkit::guests::guest("noop").display()
            ),
        )
        .expect("manifest");
        app
    };
    let bound = app("bound", r#"sensors = ["temperature", "volts"]"#);
    let unbound = app("unbound", r#"sensors = ["humidity"], gpio = ["out:relay"]"#);
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "config_version = 1\ndevice_id = \"d\"\n[mqtt]\nbroker = \"mqtt://127.0.0.1:1\"\n\
             [board]\nroot = \"{}\"\ngpio_dev = \"{}\"\n\
             [sensors]\nvolts = {{ source = \"hwmon/rpi_volt/in0\", scale = 1000.0 }}\n",
            root.display(),
            dir.path().join("no-gpio").display()
        ),
    )
    .expect("agent.toml");
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    let run = outpost(
        &["hal", "list", "--config", &s(&config), "--app", &s(&bound)],
        dir.path(),
    );
    let stdout = text(&run.stdout);
    assert!(run.status.success(), "{stdout}{}", text(&run.stderr));
    assert!(
        stdout.contains("binding sensor volts") && stdout.contains("hwmon/rpi_volt/in0 × 1000 + 0"),
        "{stdout}"
    );
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("sensor {name} ")))
            .unwrap_or_else(|| panic!("{name} missing:\n{stdout}"))
            .to_string()
    };
    assert!(
        line("temperature").contains("thermal/cpu-thermal (auto)"),
        "{stdout}"
    );
    assert!(
        line("volts").contains("hwmon/rpi_volt/in0 (agent.toml)"),
        "{stdout}"
    );

    let run = outpost(
        &[
            "hal",
            "list",
            "--config",
            &s(&config),
            "--app",
            &s(&unbound),
        ],
        dir.path(),
    );
    let stdout = text(&run.stdout);
    assert!(!run.status.success(), "an unbindable app fails: {stdout}");
    assert!(
        stdout.contains("app unbound: NOT RUNNABLE HERE"),
        "{stdout}"
    );
    assert!(stdout.contains("sensor 'humidity'"), "{stdout}");
    assert!(stdout.contains("gpio line 'relay'"), "{stdout}");
}

#[test]
fn a_costly_initial_memory_is_warned_about_and_invoke_shows_the_instantiation_cost() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = "manifest_version = 1\n[app]\nname = \"big\"\nversion = \"1.0.0\"\n\
                    [[component]]\nid = \"big\"\nsource = \"{wat:big_memory}\"\n\
                    build = { command = \"true\" }\n";
    std::fs::write(
        dir.path().join("outpost.toml"),
        outpost_testkit::guests::render(manifest, dir.path()),
    )
    .expect("manifest");
    let build = outpost(&["build", "."], dir.path());
    let (stdout, stderr) = (text(&build.stdout), text(&build.stderr));
    assert!(build.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("big: 17 page(s) of initial memory (costly"),
        "{stdout}"
    );
    assert!(
        stderr.contains("starts with 17 pages (1088 KiB)") && stderr.contains("zstack-size"),
        "the warning names the cost and the fix: {stderr}"
    );
    let run = outpost(&["invoke", ".", "big"], dir.path());
    let stdout = text(&run.stdout);
    assert!(run.status.success(), "{stdout}{}", text(&run.stderr));
    let line = stdout
        .lines()
        .find(|l| l.starts_with("instantiation: "))
        .unwrap_or_else(|| panic!("no instantiation line:\n{stdout}"));
    assert!(line.contains("17 page(s), 1088 KiB"), "{line}");
    let micros: u64 = line["instantiation: ".len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a number of µs: {line}"));
    assert!(micros > 0, "allocating 1 MiB takes measurable time: {line}");
}
