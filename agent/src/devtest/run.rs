//! Runs one test file against an app: a fresh in-memory device on a manual clock, the steps
//! fired through the real executor, what happened compared with what the file expects.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_abi::TriggerKind as AbiKind;
use outpost_hal::sim::SimBoard;
use outpost_hal::{Clock, GpioBoard, ManualClock, SensorBoard, SimGpio};
use outpost_manifest::{AppManifest, TriggerKind};
use serde::Serialize;

use super::board::ScriptedSensors;
use super::compare::{self, ActualEvent, ActualOutcome, ActualPublish, Mismatch};
use super::spec::{Expect, GpioExpect, SpecFileError, Step, TestSpec, Value};
use crate::app::{App, AppError, AppOptions};
use crate::device::hardware::{AppBoard, Hardware};
use crate::executor::Outcome;
use crate::identity::DeviceIdentity;
use crate::runtime::{Effects, Firing, OutboxEffect};
use crate::scheduler::sensor_watch::SensorWatch;
use crate::store::committer;
use crate::store::{Commit, OutboxLimits, Store};

/// Why a test could not be run at all (as opposed to failing).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The file is unreadable or malformed.
    #[error(transparent)]
    Spec(#[from] SpecFileError),
    /// The app could not be started (a component missing or refused: build it first).
    #[error(transparent)]
    App(#[from] AppError),
    /// The file names something the app does not have, or asks for the impossible.
    #[error("{0}")]
    Scenario(String),
}

/// The result of one test file.
#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    /// The file.
    pub file: PathBuf,
    /// Its `description`.
    pub description: Option<String>,
    /// Invocations run.
    pub invocations: usize,
    /// Wall time the test took, in ms.
    pub millis: f64,
    /// Expectations not met; empty when the test passed.
    pub mismatches: Vec<Mismatch>,
}

impl TestReport {
    /// Whether every expectation was met.
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Loads and runs the test file at `path` against `manifest`'s app.
pub fn run_file(manifest: &AppManifest, path: &Path) -> Result<TestReport, RunError> {
    let spec = TestSpec::load(path)?;
    let started = Instant::now();
    let (invocations, mismatches) = run(manifest, &spec).map_err(|error| prefix(path, error))?;
    Ok(TestReport {
        file: path.to_path_buf(),
        description: spec.description.clone(),
        invocations,
        millis: started.elapsed().as_secs_f64() * 1000.0,
        mismatches,
    })
}

fn prefix(path: &Path, error: RunError) -> RunError {
    match error {
        RunError::Scenario(message) => RunError::Scenario(format!("{}: {message}", path.display())),
        other => other,
    }
}

/// What the steps produced so far.
#[derive(Default)]
struct Seen {
    outcomes: Vec<ActualOutcome>,
    events: Vec<ActualEvent>,
    publishes: Vec<ActualPublish>,
    gpio: Vec<GpioExpect>,
}

impl Seen {
    fn add(&mut self, outcome: &Outcome) {
        self.outcomes
            .push(outcome.result.as_ref().err().map(ToString::to_string));
        add_effects(self, &outcome.effects);
    }

    fn extend(&mut self, other: &Seen) {
        self.outcomes.extend(other.outcomes.iter().cloned());
        self.events.extend(other.events.iter().cloned());
        self.publishes.extend(other.publishes.iter().cloned());
        self.gpio.extend(other.gpio.iter().cloned());
    }
}

fn add_effects(seen: &mut Seen, effects: &Effects) {
    for record in &effects.records {
        match record {
            OutboxEffect::Event { stream, data } => seen.events.push(ActualEvent {
                stream: stream.clone(),
                data: data.clone(),
            }),
            OutboxEffect::Publish {
                topic,
                payload,
                qos,
                retain,
            } => seen.publishes.push(ActualPublish {
                topic: topic.clone(),
                payload: payload.clone(),
                qos: *qos,
                retain: *retain,
            }),
            // Mirrors of `[sync] kv` changes: checked through `kv`, not as records.
            OutboxEffect::Kv { .. } => {}
        }
    }
    seen.gpio
        .extend(effects.gpio.iter().map(|change| GpioExpect {
            line: change.line.clone(),
            value: change.value,
        }));
}

/// The device a test runs: the app on its scripted board, and the handles the steps drive.
struct Rig {
    app: App,
    committer: Option<committer::CommitterThread>,
    clock: Arc<ManualClock>,
    sensors: Arc<ScriptedSensors>,
    gpio: Arc<SimGpio>,
    identity: DeviceIdentity,
    /// Sensor triggers' memory of the previous sample, across steps as on a device.
    watches: BTreeMap<String, SensorWatch>,
}

/// Runs `spec` against `manifest`'s app: the number of invocations and the mismatches.
pub fn run(manifest: &AppManifest, spec: &TestSpec) -> Result<(usize, Vec<Mismatch>), RunError> {
    let mut rig = Rig::start(manifest, spec)?;
    let result = rig.steps(spec);
    rig.stop();
    result
}

impl Rig {
    fn start(manifest: &AppManifest, spec: &TestSpec) -> Result<Rig, RunError> {
        let mut manifest = manifest.clone();
        for (name, value) in &spec.variables {
            match manifest.variables.get_mut(name) {
                Some(slot) => value.clone_into(slot),
                None => {
                    return Err(RunError::Scenario(format!(
                        "[variables]: `{name}` is not declared in the manifest's [variables]"
                    )));
                }
            }
        }
        for sensor in &spec.sensor {
            manifest.simulator.retain(|s| s.name != sensor.name);
            manifest.simulator.push(sensor.clone());
        }
        // Latency is played on the test clock by the scripted board, never slept.
        let mut latency: BTreeMap<String, Duration> = BTreeMap::new();
        for sensor in &mut manifest.simulator {
            if !sensor.latency.is_zero() {
                latency.insert(sensor.name.clone(), sensor.latency);
            }
            sensor.latency = Duration::ZERO;
        }
        for (name, duration) in &spec.sensor_latency {
            latency.insert(name.clone(), duration.0);
        }
        let clock = Arc::new(ManualClock::new(spec.start_ms()));
        let base_dir = manifest
            .path
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let base = SimBoard::new(&manifest.simulator, &base_dir, clock.clone())
            .map_err(|error| RunError::Scenario(format!("simulated board: {error}")))?;
        let sensors = Arc::new(ScriptedSensors::new(base, clock.clone(), latency));
        let lines: Vec<String> = {
            let mut lines: Vec<String> = manifest
                .components
                .iter()
                .flat_map(|c| c.grants.gpio.iter().map(|g| g.line.clone()))
                .collect();
            lines.sort();
            lines.dedup();
            lines
        };
        let names: Vec<&str> = lines.iter().map(String::as_str).collect();
        let gpio = Arc::new(SimGpio::new().with_chip("testchip", &names));
        for (line, level) in &spec.gpio {
            gpio.set_input(line, *level)
                .map_err(|error| RunError::Scenario(format!("[gpio] {line}: {error}")))?;
        }
        let identity = DeviceIdentity {
            device: spec.device().to_owned(),
            prefix: "outpost".to_owned(),
            groups: spec.groups.clone(),
            ..DeviceIdentity::local()
        };
        let store = Store::in_memory().map_err(AppError::from)?;
        let (committer, thread) = committer::spawn(store.clone(), OutboxLimits::default());
        let board = AppBoard {
            sensors: sensors.clone() as Arc<dyn SensorBoard>,
            gpio: gpio.clone() as Arc<dyn GpioBoard>,
        };
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let app = App::start_on(
            manifest,
            AppOptions {
                data_dir: PathBuf::new(),
                outbox: OutboxLimits::default(),
                clock: dyn_clock.clone(),
                hardware: Some(Arc::new(Hardware::fixed(board, dyn_clock))),
                identity: Some(identity.clone()),
                send: None,
            },
            store,
            committer.clone(),
        );
        let app = match app {
            Ok(app) => app,
            Err(error) => {
                drop(committer);
                thread.join();
                return Err(error.into());
            }
        };
        let rig = Rig {
            app,
            committer: Some(thread),
            clock,
            sensors,
            gpio,
            identity,
            watches: BTreeMap::new(),
        };
        rig.seed_kv(spec, &committer)?;
        Ok(rig)
    }

    /// Commits the file's `[kv]` as the data before the first step.
    fn seed_kv(&self, spec: &TestSpec, committer: &committer::Committer) -> Result<(), RunError> {
        if spec.kv.is_empty() {
            return Ok(());
        }
        let mut effects = Effects::default();
        for (ns, values) in &spec.kv {
            for (key, value) in values {
                if let Value::Bytes(bytes) = value {
                    effects
                        .kv
                        .insert((ns.clone(), key.clone()), Some(bytes.clone()));
                }
            }
        }
        committer
            .commit_blocking(Commit {
                app: Arc::from(self.app.manifest.app.name.as_str()),
                component: Arc::from("outpost-test"),
                time_ms: self.clock.wall_ms(),
                unsynced: None,
                effects: Arc::new(effects),
                trigger_run: None,
                inbox_done: None,
                failed: false,
            })
            .map(|_| ())
            .map_err(|error| RunError::Scenario(format!("[kv]: {error}")))
    }

    fn steps(&mut self, spec: &TestSpec) -> Result<(usize, Vec<Mismatch>), RunError> {
        let mut all = Seen::default();
        let mut mismatches = Vec::new();
        for (index, step) in spec.step.iter().enumerate() {
            let number = index + 1;
            let seen = self
                .step(step)
                .map_err(|message| RunError::Scenario(format!("step {number}: {message}")))?;
            if let Some(expect) = &step.expect {
                let fired = u32::try_from(seen.outcomes.len()).unwrap_or(u32::MAX);
                if let Some(want) = expect.fired
                    && want != fired
                {
                    mismatches.push(Mismatch {
                        step: Some(number),
                        what: "fired".into(),
                        expected: want.to_string(),
                        actual: fired.to_string(),
                    });
                }
                mismatches.extend(compare::outcomes(
                    number,
                    expect.outcome(),
                    expect.error.as_deref(),
                    &seen.outcomes,
                ));
                self.check(Some(number), expect, &seen, &mut mismatches)?;
            } else {
                // Unstated, a step expects its invocations to succeed.
                mismatches.extend(compare::outcomes(
                    number,
                    super::spec::OutcomeKind::Ok,
                    None,
                    &seen.outcomes,
                ));
            }
            all.extend(&seen);
        }
        if let Some(expect) = &spec.expect {
            self.check(None, expect, &all, &mut mismatches)?;
        }
        Ok((all.outcomes.len(), mismatches))
    }

    fn check(
        &self,
        step: Option<usize>,
        expect: &Expect,
        seen: &Seen,
        mismatches: &mut Vec<Mismatch>,
    ) -> Result<(), RunError> {
        if let Some(events) = &expect.events {
            mismatches.extend(compare::events(step, events, &seen.events));
        }
        if let Some(publishes) = &expect.publishes {
            mismatches.extend(compare::publishes(step, publishes, &seen.publishes));
        }
        if let Some(gpio) = &expect.gpio {
            mismatches.extend(compare::gpio(step, gpio, &seen.gpio));
        }
        let app = self.app.manifest.app.name.as_str();
        for (ns, values) in &expect.kv {
            for (key, value) in values {
                let actual = self
                    .app
                    .store
                    .kv_get(app, ns, key)
                    .map_err(|error| RunError::Scenario(format!("reading kv: {error}")))?;
                mismatches.extend(compare::kv(step, ns, key, value, actual.as_deref()));
            }
        }
        Ok(())
    }

    /// Runs one step: sets the world, fires, and returns what its invocations did.
    fn step(&mut self, step: &Step) -> Result<Seen, String> {
        if let Some(at) = step.at {
            let now = self.clock.monotonic();
            if at.0 < now {
                return Err(format!(
                    "at = {} is before the test clock ({}): steps run forward in time",
                    humantime::format_duration(at.0),
                    humantime::format_duration(now)
                ));
            }
            self.clock.advance(at.0 - now);
        }
        for (name, value) in &step.sensors {
            if !self.sensors.has(name) {
                return Err(format!("sensors: the board has no sensor `{name}`"));
            }
            self.sensors.pin(name, *value);
        }
        for (line, level) in &step.gpio {
            self.gpio
                .set_input(line, *level)
                .map_err(|error| format!("gpio {line}: {error}"))?;
        }
        let mut seen = Seen::default();
        for time in 0..step.times() {
            if time > 0
                && let Some(every) = step.every
            {
                self.clock.advance(every.0);
            }
            if let Some((component, firing)) = self.firing(step)? {
                let outcome = self.app.executor.run_blocking(&component, firing);
                seen.add(&outcome);
            }
        }
        Ok(seen)
    }

    /// The invocation a step's firing makes, or `None` when a sensor rule does not fire.
    fn firing(&mut self, step: &Step) -> Result<Option<(String, Firing)>, String> {
        if let Some(component) = &step.component {
            if self.app.manifest.component(component).is_none() {
                return Err(format!("no component `{component}` in the app"));
            }
            return Ok(Some((
                component.clone(),
                Firing::manual(step.payload_bytes()),
            )));
        }
        let name = step.trigger.as_deref().unwrap_or_default();
        let Some((component, trigger)) = self
            .app
            .triggers()
            .into_iter()
            .find(|(_, trigger)| trigger.name == name)
        else {
            let names: Vec<String> = self
                .app
                .triggers()
                .into_iter()
                .map(|(_, t)| t.name)
                .collect();
            return Err(format!(
                "no trigger `{name}` in the app (it has: {})",
                names.join(", ")
            ));
        };
        let label: Arc<str> = Arc::from(name);
        let now = self.clock.wall_ms();
        let firing = match &trigger.kind {
            TriggerKind::Cron { .. } => Firing::scheduled(label, AbiKind::Cron, now),
            TriggerKind::Interval { .. } => Firing::scheduled(label, AbiKind::Interval, now),
            TriggerKind::OnStart => Firing {
                name: label,
                kind: AbiKind::Start,
                payload: Vec::new(),
                topic: None,
            },
            TriggerKind::Sensor { sensor, fire, .. } => {
                let reading = match self.sensors.read(sensor) {
                    Ok(reading) => reading,
                    // As on a device: a failed sample fires nothing.
                    Err(_) => return Ok(None),
                };
                let watch = self
                    .watches
                    .entry(name.to_owned())
                    .or_insert_with(|| SensorWatch::new(*fire));
                let Some(payload) = watch.observe(reading.value) else {
                    return Ok(None);
                };
                Firing {
                    name: label,
                    kind: AbiKind::Sensor,
                    payload: payload.encode().to_vec(),
                    topic: None,
                }
            }
            TriggerKind::Mqtt { filter } => {
                let app = self.app.manifest.app.name.clone();
                let filters = self.identity.filters(filter, &app);
                let topic = match &step.topic {
                    Some(topic) => topic.clone(),
                    None => match filters.as_slice() {
                        [only] if !only.as_str().contains(['+', '#']) => only.as_str().to_owned(),
                        _ => {
                            return Err(format!(
                                "trigger `{name}` listens on {}: give the message's `topic`",
                                list(&filters)
                            ));
                        }
                    },
                };
                if !filters.iter().any(|f| f.matches(&topic)) {
                    return Err(format!(
                        "topic `{topic}` does not match trigger `{name}` ({} for device `{}`)",
                        list(&filters),
                        self.identity.device
                    ));
                }
                Firing {
                    name: label,
                    kind: AbiKind::Mqtt,
                    payload: step.payload_bytes(),
                    topic: Some(topic.into_boxed_str()),
                }
            }
        };
        Ok(Some((component, firing)))
    }

    fn stop(self) {
        let Rig { app, committer, .. } = self;
        app.shutdown();
        if let Some(thread) = committer {
            thread.join();
        }
    }
}

fn list(filters: &[outpost_manifest::TopicFilter]) -> String {
    filters
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
