//! The scripted board a component test runs on: the manifest's simulated sensors (with the
//! test's replacements), values a step pins, and reads that take time on the test's clock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use outpost_hal::sim::SimBoard;
use outpost_hal::{ManualClock, Reading, SensorBoard, SensorError, SensorInfo};

/// Sensors as a test scripts them. A pinned value (`sensors = { … }` in a step) wins over the
/// profile; a latency moves the test clock on, as a slow bus would keep a guest waiting.
pub struct ScriptedSensors {
    base: SimBoard,
    clock: Arc<ManualClock>,
    latency: BTreeMap<String, Duration>,
    pinned: Mutex<BTreeMap<String, f64>>,
}

impl ScriptedSensors {
    /// Sensors from `base`, reads of which take `latency` on `clock`.
    pub fn new(
        base: SimBoard,
        clock: Arc<ManualClock>,
        latency: BTreeMap<String, Duration>,
    ) -> ScriptedSensors {
        ScriptedSensors {
            base,
            clock,
            latency,
            pinned: Mutex::new(BTreeMap::new()),
        }
    }

    /// Reads of `name` return `value` from now on.
    pub fn pin(&self, name: &str, value: f64) {
        self.lock().insert(name.to_owned(), value);
    }

    /// Whether the board has a sensor of this name.
    pub fn has(&self, name: &str) -> bool {
        self.base.sensors().iter().any(|sensor| sensor.name == name)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, f64>> {
        self.pinned
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The value now, after the read's latency (at most `within`, after which it gives up).
    fn read_at_most(&self, name: &str, within: Option<Duration>) -> Result<Reading, SensorError> {
        if let Some(latency) = self.latency.get(name).copied() {
            match within {
                Some(within) if latency > within => {
                    self.clock.advance(within);
                    return Err(SensorError::TimedOut {
                        name: name.to_owned(),
                        after: within,
                    });
                }
                _ => self.clock.advance(latency),
            }
        }
        let pinned = self.lock().get(name).copied();
        match pinned {
            Some(value) if self.has(name) => Ok(Reading { value }),
            _ => self.base.read(name),
        }
    }
}

impl SensorBoard for ScriptedSensors {
    fn sensors(&self) -> Vec<SensorInfo> {
        self.base.sensors()
    }

    fn read(&self, name: &str) -> Result<Reading, SensorError> {
        self.read_at_most(name, None)
    }

    fn read_within(&self, name: &str, within: Duration) -> Result<Reading, SensorError> {
        self.read_at_most(name, Some(within))
    }
}
