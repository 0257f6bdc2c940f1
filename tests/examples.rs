//! The two example apps in bundles/examples, built from source, run against a real redb file.

use std::sync::Arc;
use std::time::Duration;

use outpost::app::App;
use outpost::runtime::Firing;
use outpost::store::{OutboxLimits, RecordBody};
use outpost_abi::{SensorPayload, TriggerKind};
use outpost_hal::ManualClock;
use outpost_testkit::START_MS;
use outpost_testkit::app::{events, options};
use outpost_testkit::guests::guest;

/// Starts an example app from its own manifest, with state in a temp dir.
fn start_example(name: &str) -> (tempfile::TempDir, App, Arc<ManualClock>) {
    guest(name); // build the guests (the example's wasm among them)
    let manifest = outpost_testkit::repo_root()
        .join("bundles/examples")
        .join(name)
        .join("outpost.toml");
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(START_MS));
    let app = App::start(
        &manifest,
        options(dir.path(), clock.clone(), OutboxLimits::default()),
    )
    .unwrap_or_else(|e| panic!("{name} did not start: {e}"));
    (dir, app, clock)
}

#[test]
fn sampler_writes_the_latest_reading_to_kv_and_emits_it() {
    let (_dir, app, clock) = start_example("sampler");
    let trigger: Arc<str> = Arc::from("every-2s");

    // The simulated sine starts at its base (21 °C) and peaks a quarter period (15 s) later.
    let first = app.executor.run_blocking(
        "sampler",
        Firing::scheduled(trigger.clone(), TriggerKind::Cron, START_MS),
    );
    let receipt = first.result.as_ref().expect("first run succeeds");
    assert_eq!(receipt.kv_writes, 1);
    // The event, then the KV change mirrored for the broker ([sync] kv = ["readings"]).
    assert_eq!(receipt.seqs, Some(1..=2));

    clock.advance(Duration::from_secs(15));
    let second = app.executor.run_blocking(
        "sampler",
        Firing::scheduled(trigger, TriggerKind::Cron, START_MS + 15_000),
    );
    assert_eq!(
        second.result.as_ref().expect("second run").seqs,
        Some(3..=4)
    );
    let mirrored = app.store.outbox_read(4, 1).expect("outbox");
    match &mirrored[0].record.body {
        RecordBody::Kv { ns, key, value } => {
            assert_eq!(
                (ns.as_str(), key.as_str()),
                ("readings", "temperature/latest")
            );
            assert!(
                value.as_deref().is_some_and(|v| v.starts_with(b"25.0")),
                "{value:?}"
            );
        }
        other => panic!("expected the mirrored KV change, got {other:?}"),
    }

    let latest = app
        .store
        .kv_get("sampler", "readings", "temperature/latest")
        .expect("kv reads")
        .expect("latest reading stored");
    let latest: f64 = String::from_utf8(latest)
        .expect("utf8")
        .parse()
        .expect("a number");
    assert!(
        (latest - 25.0).abs() < 0.01,
        "peak of the sine, got {latest}"
    );

    let readings = events(&app, "readings");
    assert_eq!(readings.len(), 2);
    assert!(readings[0].contains("\"value\":21.0"), "{}", readings[0]);
    assert!(readings[1].contains("\"value\":25.0"), "{}", readings[1]);
    assert!(readings[1].contains(&format!("\"at\":{}", START_MS + 15_000)));
    assert_eq!(
        app.store
            .trigger_last_run("sampler", "every-2s")
            .expect("reads"),
        Some(START_MS + 15_000),
        "the trigger's last run is persisted with the commit"
    );
}

#[test]
fn aggregator_keeps_a_window_and_alerts_once_when_the_mean_crosses_the_threshold() {
    let (_dir, app, _clock) = start_example("aggregator");
    let mut previous = f64::NAN;
    // Threshold 24.0, window 10: the mean passes 24 only after several hot samples.
    let samples = [
        20.0, 20.0, 20.0, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0,
    ];
    for value in samples {
        let payload = SensorPayload { value, previous }.encode().to_vec();
        let outcome = app.executor.run_blocking(
            "aggregator",
            Firing {
                name: Arc::from("each-sample"),
                kind: TriggerKind::Sensor,
                payload,
                topic: None,
            },
        );
        assert!(outcome.is_ok(), "sample {value}: {:?}", outcome.result);
        previous = value;
    }
    let means = events(&app, "means");
    assert_eq!(means.len(), samples.len(), "a mean per sample");
    assert!(means[2].contains("\"mean\":20.000"), "{}", means[2]);

    let alerts = events(&app, "alerts");
    assert_eq!(
        alerts.len(),
        1,
        "one alert for one upward crossing: {alerts:?}"
    );
    // The first mean above 24: [20,20,20,30,30,30] -> 25.0 at the 6th sample.
    assert!(
        alerts[0].contains("\"mean\":25.000,\"threshold\":24,\"window\":6"),
        "{}",
        alerts[0]
    );

    let publishes: Vec<_> = app
        .store
        .outbox_read(0, usize::MAX)
        .expect("outbox")
        .into_iter()
        .filter_map(|e| match e.record.body {
            RecordBody::Publish { topic, qos, .. } => Some((topic, qos)),
            _ => None,
        })
        .collect();
    assert_eq!(publishes, vec![("alerts/temperature".to_string(), 1)]);
    let state = app
        .store
        .kv_get("aggregator", "window", "state")
        .expect("kv");
    assert_eq!(state.as_deref(), Some(&b"above"[..]));
}
