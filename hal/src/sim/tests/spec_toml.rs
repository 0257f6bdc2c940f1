//! Sensor specs as TOML: every documented shape parses, and mistakes give errors naming them.

use serde::Deserialize;

use super::secs;
use crate::sim::{Fault, FaultSpec, Profile, SensorSpec, Step};

/// The part of a manifest the simulator reads.
#[derive(Debug, Deserialize)]
struct Manifest {
    simulator: Simulator,
}

#[derive(Debug, Deserialize)]
struct Simulator {
    sensor: Vec<SensorSpec>,
}

fn parse(text: &str) -> Result<Vec<SensorSpec>, String> {
    toml::from_str::<Manifest>(text)
        .map(|m| m.simulator.sensor)
        .map_err(|e| e.to_string())
}

/// Parses one sensor table whose profile lines are `body`, expecting an error; returns it.
fn error(body: &str) -> String {
    let text = format!("[[simulator.sensor]]\nname = \"s\"\n{body}\n");
    match parse(&text) {
        Ok(specs) => panic!("expected an error for\n{body}\ngot {specs:?}"),
        Err(error) => error,
    }
}

#[track_caller]
fn assert_mentions(error: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            error.contains(part),
            "error should mention {part:?}:\n{error}"
        );
    }
}

#[test]
fn every_documented_shape_parses() {
    let text = r#"
        manifest_ignored = true

        [[simulator.sensor]]            # as in docs/MANIFEST.md
        name = "temperature"
        unit = "°C"
        profile = "sine"
        base = 21.0
        amplitude = 4.0
        period = "60s"

        [[simulator.sensor]]
        name = "fixed"
        profile = "constant"
        value = 1.5
        faults = [
          { at = "30s", duration = "10s", kind = "unavailable" },
          { at = "1m", duration = "500ms", kind = "stuck" },
          { at = "90s", duration = "1s", kind = "spike", value = 99.0 },
        ]

        [[simulator.sensor]]
        name = "fill"
        profile = "ramp"
        from = 0.0
        to = 100.0
        over = "1m 30s"
        repeat = true

        [[simulator.sensor]]
        name = "door"
        profile = "step"
        steps = [{ at = "0s", value = 0.0 }, { at = "10s", value = 1.0 }]

        [[simulator.sensor]]
        name = "hiss"
        profile = "noise"
        base = 0.0
        amplitude = 0.5
        seed = 42

        [[simulator.sensor]]
        name = "recorded"
        unit = "V"
        profile = "csv"
        path = "traces/battery.csv"
        column = "volts"
        time_column = "t"
    "#;
    #[derive(Deserialize)]
    struct Lenient {
        simulator: Simulator,
    }
    let specs = toml::from_str::<Lenient>(text).unwrap().simulator.sensor;
    let profiles: Vec<&Profile> = specs.iter().map(|spec| &spec.profile).collect();
    assert_eq!(
        profiles,
        [
            &Profile::Sine {
                base: 21.0,
                amplitude: 4.0,
                period: secs(60)
            },
            &Profile::Constant { value: 1.5 },
            &Profile::Ramp {
                from: 0.0,
                to: 100.0,
                over: secs(90),
                repeat: true
            },
            &Profile::Step {
                steps: vec![
                    Step {
                        at: secs(0),
                        value: 0.0
                    },
                    Step {
                        at: secs(10),
                        value: 1.0
                    }
                ]
            },
            &Profile::Noise {
                base: 0.0,
                amplitude: 0.5,
                seed: 42
            },
            &Profile::Csv {
                path: "traces/battery.csv".into(),
                column: Some("volts".to_owned()),
                time_column: Some("t".to_owned()),
                repeat: false,
            },
        ]
    );
    assert_eq!(specs[0].name, "temperature");
    assert_eq!(specs[0].unit, "°C");
    assert_eq!(specs[2].unit, "", "unit defaults to empty");
    assert_eq!(
        specs[1].faults,
        [
            FaultSpec {
                at: secs(30),
                duration: secs(10),
                fault: Fault::Unavailable("simulated outage faults[0] (from 30s for 10s)".into()),
            },
            FaultSpec {
                at: secs(60),
                duration: super::ms(500),
                fault: Fault::Stuck
            },
            FaultSpec {
                at: secs(90),
                duration: secs(1),
                fault: Fault::Spike(99.0)
            },
        ]
    );
}

#[test]
fn unknown_keys_are_rejected_with_their_name_and_line() {
    let sensor = error("profile = \"constant\"\nvalue = 1.0\ncolour = \"red\"");
    assert_mentions(&sensor, &["line 5", "unknown field `colour`"]);
    let step = error("profile = \"step\"\nsteps = [{ at = \"0s\", value = 1.0, hold = true }]");
    assert_mentions(&step, &["line 4", "unknown field `hold`"]);
    let fault = error(
        "profile = \"constant\"\nvalue = 1.0\nfaults = [{ at = \"1s\", duration = \"1s\", kind = \"stuck\", why = 1 }]",
    );
    assert_mentions(&fault, &["line 5", "unknown field `why`"]);
}

#[test]
fn missing_parameters_are_named() {
    let sine = error("profile = \"sine\"\nbase = 1.0\namplitude = 2.0");
    assert_mentions(
        &sine,
        &[
            "line 1",
            "sensor 's'",
            "profile 'sine' needs parameter `period`",
        ],
    );
    let noise = error("profile = \"noise\"\nbase = 1.0\namplitude = 2.0");
    assert_mentions(&noise, &["profile 'noise' needs parameter `seed`"]);
    assert_mentions(&error("value = 1.0"), &["missing field `profile`"]);
}

#[test]
fn parameters_of_other_profiles_are_named() {
    let error = error(
        "profile = \"sine\"\nbase = 1.0\namplitude = 2.0\nperiod = \"1s\"\nseed = 3\nrepeat = true",
    );
    assert_mentions(
        &error,
        &["profile 'sine' does not take `repeat`, `seed` (it takes `base`, `amplitude`, `period`)"],
    );
}

#[test]
fn bad_values_are_explained() {
    let cases: [(&str, &[&str]); 9] = [
        (
            "profile = \"wave\"",
            &["unknown variant `wave`", "constant", "csv"],
        ),
        (
            "profile = \"sine\"\nbase = 1.0\namplitude = 1.0\nperiod = \"soon\"",
            &["invalid duration \"soon\"", "\"60s\""],
        ),
        (
            "profile = \"sine\"\nbase = 1.0\namplitude = 1.0\nperiod = 60",
            &["a duration string such as"],
        ),
        (
            "profile = \"sine\"\nbase = nan\namplitude = 1.0\nperiod = \"1s\"",
            &["`base` must be a finite number, not NaN"],
        ),
        (
            "profile = \"ramp\"\nfrom = 0.0\nto = 1.0\nover = \"0s\"",
            &["`over` must be longer than 0s"],
        ),
        (
            "profile = \"noise\"\nbase = 0.0\namplitude = -1.0\nseed = 1",
            &["must not be negative"],
        ),
        (
            "profile = \"step\"\nsteps = []",
            &["`steps` must list at least one step"],
        ),
        (
            "profile = \"constant\"\nvalue = 1.0\nfaults = [{ at = \"1s\", duration = \"1s\", kind = \"spike\" }]",
            &["`faults[0]`: kind 'spike' needs `value`"],
        ),
        (
            "profile = \"constant\"\nvalue = 1.0\nfaults = [{ at = \"1s\", duration = \"1s\", kind = \"stuck\", value = 2.0 }]",
            &["`value` only applies to kind 'spike', not 'stuck'"],
        ),
    ];
    for (body, parts) in cases {
        assert_mentions(&error(body), parts);
    }
    let wrong_kind = error(
        "profile = \"constant\"\nvalue = 1.0\nfaults = [{ at = \"1s\", duration = \"1s\", kind = \"flaky\" }]",
    );
    assert_mentions(
        &wrong_kind,
        &["unknown variant `flaky`", "unavailable", "spike"],
    );
    let zero = error(
        "profile = \"constant\"\nvalue = 1.0\nfaults = [{ at = \"1s\", duration = \"0s\", kind = \"stuck\" }]",
    );
    assert_mentions(&zero, &["`faults[0].duration` must be longer than 0s"]);
    let same = error("profile = \"csv\"\npath = \"a.csv\"\ncolumn = \"t\"\ntime_column = \"t\"");
    assert_mentions(&same, &["`column` and `time_column` are both 't'"]);
}
