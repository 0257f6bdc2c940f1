//! Manifests that must load, and the model they load into.
//!
//! The example in `docs/MANIFEST.md` is the reference for the format, so it is read from the doc
//! itself: if the doc and the parser drift apart, a test here fails.

use std::path::{Path, PathBuf};
use std::time::Duration;

use outpost_abi::Interface;
use outpost_hal::sim::{Profile, SensorSpec};
use outpost_manifest::{
    AppInfo, BuildSpec, FireRule, GpioAccess, GpioGrant, Limits, Missed, TopicFilter, TriggerKind,
    TriggerSpec, load, parse,
};

const DOC: &str = include_str!("../../../docs/MANIFEST.md");

/// The first ```toml block of the doc.
fn doc_example() -> String {
    let start = DOC.find("```toml\n").expect("the doc has a toml block") + "```toml\n".len();
    let len = DOC[start..].find("```").expect("the toml block is closed");
    DOC[start..start + len].to_string()
}

#[test]
fn doc_example_parses_into_the_expected_model() {
    let manifest = parse(&doc_example(), Path::new("/srv/apps/sampler/outpost.toml"))
        .unwrap_or_else(|error| panic!("{error}"));

    assert_eq!(
        manifest.path,
        PathBuf::from("/srv/apps/sampler/outpost.toml")
    );
    assert_eq!(
        manifest.app,
        AppInfo {
            name: "sampler".into(),
            version: "0.1.0".into(),
            description: Some("optional text".into()),
        }
    );
    assert_eq!(
        manifest.variables.get("threshold").map(String::as_str),
        Some("30.0")
    );
    assert_eq!(manifest.components.len(), 1);

    let sampler = manifest.component("sampler").expect("component 'sampler'");
    assert!(manifest.component("nope").is_none());
    assert_eq!(
        sampler.source,
        PathBuf::from("/srv/apps/sampler/../../target/wasm32-unknown-unknown/release/sampler.wasm")
    );
    assert_eq!(
        sampler.build,
        Some(BuildSpec {
            command: "cargo build --release --target wasm32-unknown-unknown -p sampler".into(),
            workdir: PathBuf::from("/srv/apps/sampler"),
        })
    );

    let grants = &sampler.grants;
    assert_eq!(grants.kv, ["readings"]);
    assert_eq!(grants.streams, ["readings"]);
    assert_eq!(grants.sensors, ["temperature"]);
    assert_eq!(grants.config, ["threshold"]);
    assert_eq!(
        grants.publish,
        [TopicFilter::new("alerts/#").expect("valid filter")]
    );
    for iface in [
        Interface::KeyValue,
        Interface::Streams,
        Interface::Sensors,
        Interface::Config,
        Interface::Publish,
        Interface::Gpio,
    ] {
        assert!(grants.grants(iface), "{iface:?}");
    }
    assert!(grants.allows_kv("readings") && !grants.allows_kv("other"));
    assert!(grants.allows_stream("readings") && !grants.allows_stream("other"));
    assert!(grants.allows_sensor("temperature") && !grants.allows_sensor("humidity"));
    assert!(grants.allows_config("threshold") && !grants.allows_config("secret"));
    assert!(grants.allows_publish("alerts/high") && grants.allows_publish("alerts"));
    assert!(!grants.allows_publish("metrics/cpu") && !grants.allows_publish("alerts/+"));
    assert_eq!(
        grants.gpio,
        [
            GpioGrant {
                line: "door".into(),
                access: GpioAccess::In,
            },
            GpioGrant {
                line: "relay1".into(),
                access: GpioAccess::Out,
            },
        ]
    );
    assert!(grants.allows_gpio_read("door") && !grants.allows_gpio_write("door"));
    assert!(grants.allows_gpio_read("relay1") && grants.allows_gpio_write("relay1"));
    assert!(!grants.allows_gpio_read("relay2") && !grants.allows_gpio_write("relay2"));

    // The example spells out every default.
    assert_eq!(sampler.limits, Limits::default());

    let expected = [
        TriggerSpec {
            name: "every-10s".into(),
            kind: TriggerKind::Cron {
                expr: "*/10 * * * * *".into(),
                missed: Missed::Skip,
                timezone: Some("Europe/Berlin".into()),
            },
        },
        TriggerSpec {
            name: "sampler#2".into(),
            kind: TriggerKind::Interval {
                every: Duration::from_secs(5),
                jitter: Duration::from_millis(500),
                missed: Missed::Skip,
            },
        },
        TriggerSpec {
            name: "sampler#3".into(),
            kind: TriggerKind::OnStart,
        },
        TriggerSpec {
            name: "sampler#4".into(),
            kind: TriggerKind::Sensor {
                sensor: "temperature".into(),
                sample_every: Duration::from_secs(1),
                fire: FireRule::Crossing { threshold: 30.0 },
            },
        },
        TriggerSpec {
            name: "sampler#5".into(),
            kind: TriggerKind::Mqtt {
                filter: TopicFilter::new("{commands}/#").expect("valid filter"),
            },
        },
    ];
    assert_eq!(sampler.triggers, expected);
    assert_eq!(manifest.sync_kv, ["readings"]);

    let mut sine = SensorSpec::new(
        "temperature",
        Profile::Sine {
            base: 21.0,
            amplitude: 4.0,
            period: Duration::from_secs(60),
        },
    );
    sine.unit = "°C".into();
    assert_eq!(manifest.simulator, [sine]);
}

#[test]
fn defaults_fill_everything_optional() {
    let text = "manifest_version = 1\n[app]\nname = \"tiny\"\nversion = \"1.0.0-rc.1\"\n\
                [[component]]\nid = \"only\"\nsource = \"only.wasm\"\n";
    let manifest =
        parse(text, Path::new("/apps/tiny/outpost.toml")).unwrap_or_else(|e| panic!("{e}"));
    let only = manifest.component("only").expect("component 'only'");
    assert_eq!(only.source, PathBuf::from("/apps/tiny/only.wasm"));
    assert_eq!(only.build, None);
    assert_eq!(only.limits, Limits::default());
    assert!(
        only.triggers.is_empty(),
        "a component may be invoked by hand only"
    );
    assert!(manifest.variables.is_empty() && manifest.simulator.is_empty());
    assert_eq!(manifest.app.description, None);
    for iface in [
        Interface::KeyValue,
        Interface::Streams,
        Interface::Sensors,
        Interface::Config,
        Interface::Publish,
        Interface::Gpio,
    ] {
        assert!(!only.grants.grants(iface), "default deny: {iface:?}");
    }
}

#[test]
fn every_trigger_and_limit_spelling() {
    let text = r#"
manifest_version = 1
[app]
name = "variants"
version = "2.10.0"

[variables]
level = "high"

[[component]]
id = "a"
source = "/opt/wasm/a.wasm"
build = { command = "make a" }
[component.limits]
fuel = 1_000
memory = 65536
table_elements = 1
stack = "64k"
output = "1MiB"
[[component.trigger]]
cron = "@hourly"
missed = "run-once"
timezone = "Europe/Berlin"
on_start = false
[[component.trigger]]
name = "slow"
interval = "1m 30s"
missed = "run-once"
[[component.trigger]]
sensor = "humidity"
sample_every = "250ms"
fire = "change"
min_delta = 2
[[component.trigger]]
sensor = "humidity"
sample_every = "1s"
fire = "rising"
threshold = -5
[[component.trigger]]
sensor = "humidity"
sample_every = "1s"
fire = "falling"
threshold = 0.5
[[component.trigger]]
sensor = "humidity"
sample_every = "1s"

[[component]]
id = "b"
source = "b.wasm"
build = { command = "make b", workdir = "sub/dir" }
[component.grants]
config = ["level"]
publish = ["pump/+/status", "site/#"]
gpio = ["out:gpiochip0:17", "in:GPIO4", "in:Door Sensor"]
"#;
    let manifest = parse(text, Path::new("/apps/v/outpost.toml")).unwrap_or_else(|e| panic!("{e}"));
    let a = manifest.component("a").expect("component 'a'");
    assert_eq!(
        a.source,
        PathBuf::from("/opt/wasm/a.wasm"),
        "absolute sources stay"
    );
    assert_eq!(
        a.build.as_ref().map(|b| b.workdir.clone()),
        Some(PathBuf::from("/apps/v"))
    );
    assert_eq!(
        a.limits,
        Limits {
            fuel: 1_000,
            memory_bytes: 64 << 10,
            table_elements: 1,
            stack_bytes: 64 << 10,
            output_bytes: 1 << 20,
            timeout: std::time::Duration::from_secs(1),
        }
    );
    let kinds: Vec<(&str, &TriggerKind)> = a
        .triggers
        .iter()
        .map(|t| (t.name.as_str(), &t.kind))
        .collect();
    let sensor = |sample_every, fire| TriggerKind::Sensor {
        sensor: "humidity".into(),
        sample_every,
        fire,
    };
    let expected = [
        (
            "a#1",
            TriggerKind::Cron {
                expr: "@hourly".into(),
                missed: Missed::RunOnce,
                timezone: Some("Europe/Berlin".into()),
            },
        ),
        (
            "slow",
            TriggerKind::Interval {
                every: Duration::from_secs(90),
                jitter: Duration::ZERO,
                missed: Missed::RunOnce,
            },
        ),
        (
            "a#3",
            sensor(
                Duration::from_millis(250),
                FireRule::Change { min_delta: 2.0 },
            ),
        ),
        (
            "a#4",
            sensor(Duration::from_secs(1), FireRule::Rising { threshold: -5.0 }),
        ),
        (
            "a#5",
            sensor(Duration::from_secs(1), FireRule::Falling { threshold: 0.5 }),
        ),
        ("a#6", sensor(Duration::from_secs(1), FireRule::Every)),
    ];
    assert_eq!(kinds.len(), expected.len());
    for ((name, kind), (expected_name, expected_kind)) in kinds.iter().zip(&expected) {
        assert_eq!((*name, *kind), (*expected_name, expected_kind));
    }

    let b = manifest.component("b").expect("component 'b'");
    assert_eq!(b.source, PathBuf::from("/apps/v/b.wasm"));
    assert_eq!(
        b.build.as_ref().map(|b| b.workdir.clone()),
        Some(PathBuf::from("/apps/v/sub/dir"))
    );
    assert!(b.grants.grants(Interface::Config) && !b.grants.grants(Interface::KeyValue));
    assert!(b.grants.allows_publish("pump/1/status") && b.grants.allows_publish("site/a/b"));
    assert!(!b.grants.allows_publish("pump/1/status/x") && !b.grants.allows_publish("pump/status"));
    assert!(b.grants.grants(Interface::Gpio) && !a.grants.grants(Interface::Gpio));
    assert!(
        b.grants.allows_gpio_write("gpiochip0:17") && b.grants.allows_gpio_read("gpiochip0:17")
    );
    assert!(b.grants.allows_gpio_read("GPIO4") && !b.grants.allows_gpio_write("GPIO4"));
    assert!(b.grants.allows_gpio_read("Door Sensor"));
    // Names are matched exactly, as granted.
    assert!(!b.grants.allows_gpio_read("gpio4") && !b.grants.allows_gpio_write("17"));
}

#[test]
fn load_reads_a_file_and_resolves_against_its_directory() {
    let dir = std::env::temp_dir().join(format!("outpost-manifest-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("outpost.toml");
    let text = "manifest_version = 1\n[app]\nname = \"f\"\nversion = \"0.0.1\"\n\
                [[component]]\nid = \"x\"\nsource = \"x.wasm\"\n";
    std::fs::write(&path, text).expect("write manifest");
    let loaded = load(&path);
    std::fs::remove_dir_all(&dir).expect("clean up");
    let manifest = loaded.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(manifest.path, path);
    assert_eq!(manifest.components[0].source, dir.join("x.wasm"));
}
