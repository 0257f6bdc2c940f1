//! Wall-clock deadlines (`limits.timeout`): a guest slow for reasons fuel does not see — a
//! blocking host call, a slow CPU — is stopped soon after its deadline, with the deadline
//! named; fuel slicing does not change what a guest may do within its budget.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use outpost_hal::sim::SimBoard;
use outpost_hal::{BootInstant, Clock, ManualClock, Reading, SensorBoard, SensorError, SensorInfo};
use outpost_manifest::{ComponentSpec, Grants, Limits};

use super::*;
use crate::sync::batch::Planner;

/// A clock whose monotonic time moves 1 ms each time it is read: a CPU so slow that every
/// deadline check finds time has passed.
#[derive(Debug, Default)]
struct Ticking(std::sync::Mutex<Duration>);

impl Clock for Ticking {
    fn wall_ms(&self) -> i64 {
        0
    }
    fn monotonic(&self) -> Duration {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now += Duration::from_millis(1);
        *now
    }
    fn synced(&self) -> bool {
        true
    }
    fn boot(&self) -> BootInstant {
        BootInstant {
            boot_id: 1,
            since_boot_ms: 0,
        }
    }
}

/// A sensor on a bus that takes `latency` per read, on a manual clock; honours `within`.
struct Slow {
    clock: Arc<ManualClock>,
    latency: Duration,
}

impl SensorBoard for Slow {
    fn sensors(&self) -> Vec<SensorInfo> {
        Vec::new()
    }
    fn read(&self, name: &str) -> Result<Reading, SensorError> {
        self.read_within(name, Duration::MAX)
    }
    fn read_within(&self, name: &str, within: Duration) -> Result<Reading, SensorError> {
        self.clock.advance(self.latency.min(within));
        if self.latency > within {
            return Err(SensorError::TimedOut {
                name: name.into(),
                after: within,
            });
        }
        Ok(Reading { value: 1.0 })
    }
}

struct NoKv;

impl KvReader for NoKv {
    fn get(&self, _: &str, _: &str, _: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(None)
    }
    fn keys(&self, _: &str, _: &str, _: &str, _: usize) -> Result<Vec<String>, KvError> {
        Ok(Vec::new())
    }
}

fn run(
    wat: &str,
    limits: Limits,
    clock: Arc<dyn Clock>,
    sensors: Arc<dyn SensorBoard>,
) -> Execution {
    let spec = ComponentSpec {
        id: "c".into(),
        source: PathBuf::from("c.wasm"),
        build: None,
        grants: Grants {
            sensors: vec!["temperature".into()],
            ..Grants::default()
        },
        limits,
        triggers: Vec::new(),
    };
    let wasm = wat::parse_str(wat).expect("wat compiles");
    let loaded = loader::load_bytes(&EnginePool::default(), &spec, &wasm).expect("loads");
    let services = Services {
        kv: Arc::new(NoKv),
        sensors,
        clock,
        variables: Arc::new(BTreeMap::new()),
        device: Arc::from("d"),
        gpio: Arc::new(outpost_hal::SimGpio::new()),
        send: Arc::new(Planner::assumed_default()),
    };
    Runtime::from_components("app", [loaded], services).invoke("c", Firing::manual(Vec::new()))
}

const SPIN: &str = r#"(module (memory (export "memory") 1)
    (func (export "outpost_handle") (result i32) (loop (br 0)) (i32.const 0)))"#;

/// Counts down from `n` (an i32 in the code), then returns 0.
fn countdown(n: u32) -> String {
    format!(
        r#"(module (memory (export "memory") 1) (func (export "outpost_handle") (result i32) (local i32)
            (local.set 0 (i32.const {n}))
            (loop (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
                  (br_if 0 (local.get 0)))
            (i32.const 0)))"#
    )
}

fn empty_board(clock: Arc<dyn Clock>) -> Arc<dyn SensorBoard> {
    Arc::new(SimBoard::empty(clock))
}

#[test]
fn a_guest_past_its_deadline_in_wasm_is_stopped_with_the_deadline_named() {
    let clock: Arc<dyn Clock> = Arc::new(Ticking::default());
    let limits = Limits {
        timeout: Duration::from_millis(3),
        ..Limits::default()
    };
    let execution = run(SPIN, limits, clock.clone(), empty_board(clock));
    let error = execution.result.expect_err("stopped");
    let message = error.to_string();
    assert!(matches!(error, InvocationError::Deadline(_)), "{error:?}");
    assert!(
        message.starts_with("deadline 3ms exceeded after"),
        "{message}"
    );
    assert!(message.ends_with("(running wasm)"), "{message}");
    // Stopped at a slice boundary, long before the fuel ran out.
    assert!(
        execution.fuel_used < Limits::default().fuel / 2,
        "{}",
        execution.fuel_used
    );
}

#[test]
fn a_sensor_read_past_the_deadline_ends_the_invocation_naming_the_call() {
    let clock = Arc::new(ManualClock::new(0));
    let sensors = Arc::new(Slow {
        clock: clock.clone(),
        latency: Duration::from_secs(5),
    });
    let wat = r#"(module
        (import "outpost_v1" "sensor_read" (func $read (param i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 0) "temperature")
        (func (export "outpost_handle") (result i32)
            (drop (call $read (i32.const 0) (i32.const 11) (i32.const 16)))
            (i32.const 0)))"#;
    let execution = run(wat, Limits::default(), clock.clone(), sensors);
    let message = execution.result.expect_err("stopped").to_string();
    assert_eq!(
        message,
        "deadline 1s exceeded after 1.000s (in sensor_read 'temperature')"
    );
    // The read gave up when the deadline came: the guest was not held for the bus's 5 s.
    assert_eq!(clock.monotonic(), Duration::from_secs(1));
}

#[test]
fn fuel_slices_change_nothing_within_the_budget() {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
    let small = run(
        &countdown(10),
        Limits::default(),
        clock.clone(),
        empty_board(clock.clone()),
    );
    assert_eq!(small.result.as_ref().err(), None);
    // Several slices' worth of work finishes, and its fuel is counted across the slices.
    let large = run(
        &countdown(2_000_000),
        Limits::default(),
        clock.clone(),
        empty_board(clock.clone()),
    );
    assert_eq!(large.result.as_ref().err(), None);
    assert!(large.fuel_used > 2 * FUEL_SLICE, "{}", large.fuel_used);
    // The budget still ends a runaway guest, at exactly its limit.
    let limits = Limits {
        fuel: 2_500_000,
        timeout: Duration::from_secs(600),
        ..Limits::default()
    };
    let spun = run(SPIN, limits, clock.clone(), empty_board(clock));
    assert_eq!(
        spun.result.err(),
        Some(InvocationError::OutOfFuel { limit: 2_500_000 })
    );
    assert!(spun.fuel_used > 2_400_000, "{}", spun.fuel_used);
}
