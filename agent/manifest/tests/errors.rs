//! Every way a manifest can be wrong, with the exact one-line message a user sees.

use std::path::Path;

use outpost_manifest::{ManifestError, load, parse};

/// Four lines, so line N of a case's body is line N + 4 of the file.
const HEADER: &str = "manifest_version = 1\n[app]\nname = \"demo\"\nversion = \"0.1.0\"\n";

/// A minimal valid component, four lines (file lines 5 to 8 after HEADER).
const COMPONENT: &str = "[[component]]\nid = \"c\"\nsource = \"c.wasm\"\n[component.grants]\n";

fn error(text: &str) -> String {
    match parse(text, Path::new("outpost.toml")) {
        Ok(manifest) => panic!("accepted:\n{text}\n{manifest:#?}"),
        Err(error) => error.to_string(),
    }
}

/// Runs (body appended to HEADER, expected message) cases.
fn check(cases: &[(&str, &str)]) {
    for (body, expected) in cases {
        let text = format!("{HEADER}{body}");
        let got = error(&text);
        assert_eq!(&got, expected, "\n--- manifest ---\n{text}");
        assert!(!got.contains('\n'), "one line: {got}");
    }
}

#[test]
fn unknown_keys_are_named_with_their_line() {
    check(&[
        (
            "colour = \"red\"\n",
            "outpost.toml:5:1: unknown field `colour`, expected one of `name`, `version`, `description`",
        ),
        (
            "[[component]]\nid = \"c\"\nsource = \"c.wasm\"\ncolour = 1\n",
            "outpost.toml:8:1: unknown field `colour`, expected one of `id`, `source`, `build`, `grants`, `limits`, `trigger`",
        ),
        (
            &format!("{COMPONENT}kv = [\"a\"]\nfiles = [\"/etc\"]\n"),
            "outpost.toml:10:1: unknown field `files`, expected one of `kv`, `streams`, `sensors`, `config`, `publish`, `gpio`",
        ),
        (
            &format!("{COMPONENT}[component.limits]\ncpu = 1\n"),
            "outpost.toml:10:1: unknown field `cpu`, expected one of `fuel`, `memory`, `table_elements`, `stack`, `output`, `timeout`",
        ),
        (
            &format!(
                "{COMPONENT}[[component.trigger]]\non_start = true\n[[component.trigger]]\ncron = \"0 * * * * *\"\nmised = \"skip\"\n"
            ),
            "outpost.toml:13:1: unknown field `mised`, expected one of `name`, `cron`, `timezone`, `interval`, `jitter`, `missed`, `on_start`, `sensor`, `sample_every`, `fire`, `threshold`, `min_delta`, `mqtt`",
        ),
        (
            "[[component]]\nid = \"c\"\nsource = \"c.wasm\"\nbuild = { command = \"make\", dir = \".\" }\n",
            "outpost.toml:8:29: unknown field `dir`, expected `command` or `workdir`",
        ),
        (
            &format!("{COMPONENT}[simulator]\nboard = \"pi\"\n"),
            "outpost.toml:10:1: unknown field `board`, expected `sensor`",
        ),
    ]);
    // At the top level, the header's own lines come first.
    let text = "manifest_version = 1\ncolour = 1\n[app]\nname = \"a\"\nversion = \"0.1.0\"\n";
    assert_eq!(
        error(text),
        "outpost.toml:2:1: unknown field `colour`, expected one of `manifest_version`, `app`, `variables`, `component`, `simulator`, `sync`"
    );
}

#[test]
fn version_is_probed_before_the_schema() {
    let cases = [
        (
            "[app]\nname = \"a\"\n",
            "outpost.toml: missing `manifest_version` (expected 1)",
        ),
        // A future file with unknown keys gets the version error, not an unknown-key error.
        (
            "manifest_version = 2\n[app]\nicon = \"x.png\"\n",
            "outpost.toml: unsupported manifest_version 2 (this agent reads 1)",
        ),
        (
            "manifest_version = \"1\"\n",
            "outpost.toml: unsupported manifest_version \"1\" (this agent reads 1)",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(error(text), expected);
    }
    assert!(matches!(
        parse("x = 1\n", Path::new("m.toml")),
        Err(ManifestError::MissingVersion { .. })
    ));
}

#[test]
fn malformed_values_are_located() {
    check(&[
        (
            "[[component]]\nid = \"c\"\nsource = \"c.wasm\"\nlimits = { memory = \"4 MB\" }\n",
            "outpost.toml:8:21: invalid size \"4 MB\": `MB` is ambiguous; write `MiB` (1024-based)",
        ),
        (
            &format!("{COMPONENT}[component.limits]\nstack = \"lots\"\n"),
            "outpost.toml:10:9: invalid size \"lots\": expected a whole number of bytes, optionally with a unit, like \"4 MiB\"",
        ),
        (
            &format!("{COMPONENT}[[component.trigger]]\ncron = \"0 0 9 * * Blursday\"\n"),
            "outpost.toml:10:8: invalid cron expression \"0 0 9 * * Blursday\": 'Blursday' is not a valid day of the week (at character 11)",
        ),
        (
            &format!("{COMPONENT}[[component.trigger]]\ncron = \"*/5 * * * *\"\n"),
            "outpost.toml:10:8: invalid cron expression \"*/5 * * * *\": 5 fields, expected 6 (sec min hour day-of-month month day-of-week) or 7 (plus year); add a seconds field first, e.g. \"0 */5 * * * *\" for every 5 minutes",
        ),
        (
            &format!("{COMPONENT}[[component.trigger]]\ninterval = 5\n"),
            "outpost.toml:10:12: invalid type: integer `5`, expected a duration string like \"500ms\", \"5s\" or \"1m 30s\"",
        ),
        (
            &format!(
                "{COMPONENT}[[component.trigger]]\ninterval = \"5s\"\nmissed = \"sometimes\"\n"
            ),
            "outpost.toml:11:10: unknown variant `sometimes`, expected `skip` or `run-once`",
        ),
        (
            "[variables]\nthreshold = 30.0\n",
            "outpost.toml:6:13: invalid type: floating point `30.0`, expected a string",
        ),
        (
            "[[component]]\nid = \"c\"\n",
            "outpost.toml:5:1: missing field `source`",
        ),
    ]);
}

#[test]
fn trigger_rules_name_component_and_trigger() {
    let trigger = |fields: &str| {
        format!(
            "{COMPONENT}[[component.trigger]]\non_start = true\n[[component.trigger]]\n{fields}"
        )
    };
    check(&[
        (
            &trigger("cron = \"0 * * * * *\"\ninterval = \"5s\"\n"),
            "outpost.toml: component 'c', trigger #2: sets `cron` and `interval`; a trigger has exactly one kind, so split it into several [[component.trigger]] tables",
        ),
        (
            &trigger("name = \"t\"\ncron = \"0 * * * * *\"\nthreshold = 3.0\n"),
            "outpost.toml: component 'c', trigger #2 ('t'): `threshold` does not apply to a cron trigger",
        ),
        (
            &trigger("interval = \"5s\"\ntimezone = \"Europe/Berlin\"\n"),
            "outpost.toml: component 'c', trigger #2: `timezone` does not apply to an interval trigger",
        ),
        (
            &trigger("cron = \"0 30 7 * * *\"\ntimezone = \"../../etc/passwd\"\n"),
            "outpost.toml: component 'c', trigger #2: `timezone` \"../../etc/passwd\" is not a tz database zone name (write e.g. \"Europe/Berlin\", \"America/New_York\" or \"UTC\")",
        ),
        (
            &trigger("interval = \"5s\"\nsample_every = \"1s\"\nfire = \"every\"\n"),
            "outpost.toml: component 'c', trigger #2: `sample_every` and `fire` do not apply to an interval trigger",
        ),
        (
            &trigger("on_start = true\nmissed = \"run-once\"\n"),
            "outpost.toml: component 'c', trigger #2: `missed` does not apply to an on_start trigger",
        ),
        (
            &trigger("sensor = \"t\"\nsample_every = \"1s\"\nfire = \"crossing\"\n"),
            "outpost.toml: component 'c', trigger #2: `threshold` is required when fire = \"crossing\"",
        ),
        (
            &trigger(
                "sensor = \"t\"\nsample_every = \"1s\"\nfire = \"crossing\"\nthreshold = 1.0\nmin_delta = 0.1\n",
            ),
            "outpost.toml: component 'c', trigger #2: `min_delta` only applies when fire = \"change\", not when fire = \"crossing\"",
        ),
        (
            &trigger("sensor = \"t\"\n"),
            "outpost.toml: component 'c', trigger #2: `sample_every` is required for a sensor trigger (e.g. \"1s\")",
        ),
        (
            &trigger("on_start = false\n"),
            "outpost.toml: component 'c', trigger #2: no trigger kind: set exactly one of `cron`, `interval`, `on_start = true`, `sensor`, `mqtt`",
        ),
        (
            &trigger("interval = \"0s\"\n"),
            "outpost.toml: component 'c', trigger #2: `interval` must be at least 1ms, not 0s",
        ),
        (
            &trigger("sensor = \"t\"\nsample_every = \"500us\"\n"),
            "outpost.toml: component 'c', trigger #2: `sample_every` must be at least 1ms, not 500us",
        ),
        (
            &trigger("interval = \"5s\"\njitter = \"5s\"\n"),
            "outpost.toml: component 'c', trigger #2: `jitter` (5s) must be shorter than `interval` (5s)",
        ),
        (
            &trigger("name = \"\"\non_start = true\n"),
            "outpost.toml: component 'c', trigger #2 (''): name is empty",
        ),
        (
            &trigger("name = \"c#1\"\non_start = true\n"),
            "outpost.toml: component 'c': trigger name 'c#1' is already used by another of its triggers; trigger names must be unique in the app",
        ),
    ]);
}

#[test]
fn app_wide_rules() {
    let second = |id: &str, extra: &str| {
        format!("{COMPONENT}[[component]]\nid = \"{id}\"\nsource = \"d.wasm\"\n{extra}")
    };
    check(&[
        (
            "",
            "outpost.toml: no components: add at least one [[component]] table",
        ),
        (
            &second("c", ""),
            "outpost.toml: component 'c' is defined twice",
        ),
        (
            &format!("{COMPONENT}config = [\"secret\"]\n"),
            "outpost.toml: component 'c', grants.config: variable \"secret\" is not declared in [variables]",
        ),
        (
            &format!("{COMPONENT}streams = [\"a/b\"]\n"),
            "outpost.toml: component 'c', grants.streams: stream \"a/b\" is not valid: stream names may only use A-Z, a-z, 0-9, '_', '.' and '-' (they become MQTT topic levels)",
        ),
        (
            &format!("{COMPONENT}publish = [\"alerts/#/high\"]\n"),
            "outpost.toml: component 'c', grants.publish: invalid MQTT topic filter \"alerts/#/high\": `#` must be a whole level and the last one, as in `alerts/#`",
        ),
        (
            &format!("{COMPONENT}publish = [\"{{prefix}}/{{device}}/status\"]\n"),
            "outpost.toml: component 'c', grants.publish \"{prefix}/{device}/status\": could reach the agent's own topics under {prefix}/ (status, events, commands, fleet offers); start with a topic level of the app's own",
        ),
        (
            &format!("{COMPONENT}publish = [\"+/status\"]\n"),
            "outpost.toml: component 'c', grants.publish \"+/status\": could reach the agent's own topics under {prefix}/ (status, events, commands, fleet offers); start with a topic level of the app's own",
        ),
        (
            &format!("{COMPONENT}kv = [\"a\", \"a\"]\n"),
            "outpost.toml: component 'c', grants.kv: \"a\" is listed twice",
        ),
        (
            &format!("{COMPONENT}[component.limits]\nmemory = \"8 GiB\"\n"),
            "outpost.toml: component 'c', limits.memory: 8 GiB is out of range; it must be between 64 KiB and 4 GiB",
        ),
        (
            &format!("{COMPONENT}[component.limits]\nfuel = 0\n"),
            "outpost.toml: component 'c', limits.fuel: 0 would stop every invocation before its first instruction",
        ),
        (
            "[[component]]\nid = \"Sampler\"\nsource = \"c.wasm\"\n",
            "outpost.toml: component id \"Sampler\" is not valid: use 1 to 64 of a-z, 0-9 and '-', not starting with '-'",
        ),
        (
            "[[component]]\nid = \"c\"\nsource = \"\"\n",
            "outpost.toml: component 'c': `source` is empty",
        ),
        (
            &format!(
                "{COMPONENT}[[component.trigger]]\nname = \"tick\"\non_start = true\n{}",
                second(
                    "d",
                    "[[component.trigger]]\nname = \"tick\"\ninterval = \"1s\"\n"
                )
                .trim_start_matches(COMPONENT)
            ),
            "outpost.toml: component 'd': trigger name 'tick' is already used by component 'c'; trigger names must be unique in the app",
        ),
    ]);
    let bad_app = [
        (
            "name = \"My App\"\nversion = \"0.1.0\"\n",
            "outpost.toml: [app] name \"My App\" is not valid: use 1 to 64 of a-z, 0-9 and '-', not starting with '-'",
        ),
        (
            "name = \"app\"\nversion = \"1.0\"\n",
            "outpost.toml: [app] version \"1.0\" is not valid: expected MAJOR.MINOR.PATCH with an optional -pre suffix, like \"0.1.0\" or \"1.2.0-beta.1\"",
        ),
    ];
    for (app, expected) in bad_app {
        assert_eq!(
            error(&format!("manifest_version = 1\n[app]\n{app}{COMPONENT}")),
            expected
        );
    }
}

#[test]
fn gpio_grants_are_checked_entry_by_entry_with_their_position() {
    // The grants table starts on file line 8, so `gpio = ...` is line 9.
    check(&[
        (
            &format!("{COMPONENT}gpio = [\"in:door\", \"inout:relay1\"]\n"),
            "outpost.toml:9:20: invalid GPIO grant \"inout:relay1\": direction \"inout\" is neither `in` (may read) nor `out` (may write and read back)",
        ),
        (
            &format!("{COMPONENT}gpio = [\"relay1\"]\n"),
            "outpost.toml:9:9: invalid GPIO grant \"relay1\": expected \"in:<line>\" (may read) or \"out:<line>\" (may write and read back)",
        ),
        (
            &format!("{COMPONENT}gpio = [\"out:\"]\n"),
            "outpost.toml:9:9: invalid GPIO grant \"out:\": the line name is empty (write e.g. \"out:GPIO17\")",
        ),
        (
            &format!("{COMPONENT}gpio = [\"in: door\"]\n"),
            "outpost.toml:9:9: invalid GPIO grant \"in: door\": the line name \" door\" starts or ends with whitespace",
        ),
        (
            &format!("{COMPONENT}gpio = [\"in:door\", \"out:relay1\", \"out:door\"]\n"),
            "outpost.toml:9:34: GPIO line \"door\" is granted twice (\"in:door\" and \"out:door\"); list each line once (`out:` also allows reading)",
        ),
        (
            &format!("{COMPONENT}gpio = \"out:relay1\"\n"),
            "outpost.toml:9:8: invalid type: string \"out:relay1\", expected a list of GPIO grants like [\"in:door\", \"out:relay1\"]",
        ),
        (
            &format!("{COMPONENT}gpio = [17]\n"),
            "outpost.toml:9:9: invalid type: integer `17`, expected a GPIO grant string like \"in:door\" or \"out:relay1\"",
        ),
        (
            "[[component]]\nid = \"c\"\nsource = \"c.wasm\"\ngrants = { gpio = [\"out:relay1\", \"on:door\"] }\n",
            "outpost.toml:8:34: invalid GPIO grant \"on:door\": direction \"on\" is neither `in` (may read) nor `out` (may write and read back)",
        ),
    ]);
}

#[test]
fn load_reports_unreadable_files_with_their_path() {
    let path = Path::new("/nonexistent/outpost.toml");
    let error = load(path).expect_err("no such file");
    assert!(matches!(error, ManifestError::Io { .. }));
    assert!(
        error
            .to_string()
            .starts_with("/nonexistent/outpost.toml: cannot read manifest: "),
        "{error}"
    );
}
