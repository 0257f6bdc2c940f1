//! [`SimBoard`]: a [`SensorBoard`] whose sensors follow scripted profiles, with faults scripted in
//! the specs or injected at run time.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::error::SimError;
use super::fault::{Fault, FaultSpec};
use super::profile::Signal;
use super::spec::SensorSpec;
use crate::{Clock, Reading, SensorBoard, SensorError, SensorInfo};

/// The simulated board used by `outpost up` and tests. Share it across threads with `Arc`.
pub struct SimBoard {
    clock: Arc<dyn Clock>,
    /// Monotonic time when the board was made; profiles see time since then.
    start: Duration,
    /// In spec order, which is the order `sensors()` lists them.
    sensors: Vec<SimSensor>,
    by_name: HashMap<String, usize>,
    /// Injected faults by sensor index. A lock rather than atomics: reads are rare (seconds
    /// apart) and the slot holds a `String`.
    injected: Mutex<Vec<Option<Injected>>>,
}

struct SimSensor {
    info: SensorInfo,
    signal: Signal,
    faults: Vec<FaultSpec>,
    latency: Duration,
}

/// A fault injected at run time, with the board time it began (what `Stuck` freezes).
#[derive(Clone)]
struct Injected {
    fault: Fault,
    since: Duration,
}

impl SimBoard {
    /// Builds a board from specs: validates each, loads `csv` traces from under `base_dir` now
    /// (so a bad file fails at start, not at the first read), and rejects duplicate names.
    /// Board time starts at the clock's current monotonic time.
    pub fn new(
        specs: &[SensorSpec],
        base_dir: &Path,
        clock: Arc<dyn Clock>,
    ) -> Result<SimBoard, SimError> {
        let mut sensors = Vec::with_capacity(specs.len());
        let mut by_name = HashMap::with_capacity(specs.len());
        for spec in specs {
            spec.validate()?;
            if by_name.insert(spec.name.clone(), sensors.len()).is_some() {
                return Err(SimError::DuplicateSensor(spec.name.clone()));
            }
            let signal = spec
                .profile
                .compile(base_dir)
                .map_err(|problem| SimError::Trace {
                    name: spec.name.clone(),
                    problem,
                })?;
            sensors.push(SimSensor {
                info: SensorInfo {
                    name: spec.name.clone(),
                    unit: spec.unit.clone(),
                    source: spec.source(),
                },
                signal,
                faults: spec.faults.clone(),
                latency: spec.latency,
            });
        }
        let start = clock.monotonic();
        Ok(SimBoard {
            clock,
            start,
            injected: Mutex::new(vec![None; sensors.len()]),
            sensors,
            by_name,
        })
    }

    /// A board without sensors, for apps that read none.
    pub fn empty(clock: Arc<dyn Clock>) -> SimBoard {
        let start = clock.monotonic();
        SimBoard {
            clock,
            start,
            sensors: Vec::new(),
            by_name: HashMap::new(),
            injected: Mutex::new(Vec::new()),
        }
    }

    /// Makes `name` misbehave from now until [`SimBoard::clear_fault`]; replaces any fault
    /// injected before and overrides faults scripted in its spec. `Stuck` freezes the sensor's
    /// profile value at this instant.
    pub fn inject_fault(&self, name: &str, fault: Fault) -> Result<(), SimError> {
        let index = self.index_of(name)?;
        let since = self.elapsed();
        self.set_injected(index, Some(Injected { fault, since }));
        Ok(())
    }

    /// Ends a fault injected into `name`, if any; scripted faults still apply.
    pub fn clear_fault(&self, name: &str) -> Result<(), SimError> {
        let index = self.index_of(name)?;
        self.set_injected(index, None);
        Ok(())
    }

    /// Time since the board was made, as profiles and scripted faults see it.
    pub fn elapsed(&self) -> Duration {
        self.clock.monotonic().saturating_sub(self.start)
    }

    fn index_of(&self, name: &str) -> Result<usize, SimError> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| SimError::UnknownSensor(name.to_owned()))
    }

    fn set_injected(&self, index: usize, value: Option<Injected>) {
        if let Some(slot) = self.lock_injected().get_mut(index) {
            *slot = value;
        }
    }

    fn lock_injected(&self) -> MutexGuard<'_, Vec<Option<Injected>>> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep serving it.
        self.injected
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SensorBoard for SimBoard {
    fn sensors(&self) -> Vec<SensorInfo> {
        self.sensors
            .iter()
            .map(|sensor| sensor.info.clone())
            .collect()
    }

    fn read(&self, name: &str) -> Result<Reading, SensorError> {
        self.read_within(name, Duration::MAX)
    }

    fn read_within(&self, name: &str, within: Duration) -> Result<Reading, SensorError> {
        let not_found = || SensorError::NotFound(name.to_owned());
        let index = self.by_name.get(name).copied().ok_or_else(not_found)?;
        let sensor = self.sensors.get(index).ok_or_else(not_found)?;
        if !sensor.latency.is_zero() {
            // A slow bus, in real time: this board runs under `outpost up`, on the system clock.
            std::thread::sleep(sensor.latency.min(within));
            if sensor.latency > within {
                return Err(SensorError::TimedOut {
                    name: name.to_owned(),
                    after: within,
                });
            }
        }
        let t = self.elapsed();
        let injected = self.lock_injected().get(index).cloned().flatten();
        // Injected faults win over scripted ones: a test injecting one means "now, regardless".
        let outcome = if let Some(Injected { fault, since }) = injected {
            fault.reading(|| (sensor.signal)(since))
        } else if let Some(scripted) = sensor.faults.iter().find(|fault| fault.is_active(t)) {
            scripted.fault.reading(|| (sensor.signal)(scripted.at))
        } else {
            Ok((sensor.signal)(t))
        };
        outcome
            .map(|value| Reading { value })
            .map_err(|reason| SensorError::Unavailable {
                name: name.to_owned(),
                reason,
            })
    }
}

impl fmt::Debug for SimBoard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.sensors.iter().map(|s| s.info.name.as_str()).collect();
        f.debug_struct("SimBoard")
            .field("sensors", &names)
            .field("elapsed", &self.elapsed())
            .finish_non_exhaustive()
    }
}
