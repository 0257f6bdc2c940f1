//! Sensor profiles: a simulated sensor's value as a function of `t`, the time since the board
//! started (from the clock's monotonic time).
//!
//! Each profile's parameters sit beside `name`, `unit` and `profile` in the sensor's
//! `[[simulator.sensor]]` table; durations are humantime strings.
//!
//! | `profile`  | parameters                                        | value at `t`                      |
//! |------------|---------------------------------------------------|-----------------------------------|
//! | `constant` | `value`                                           | `value`                           |
//! | `sine`     | `base`, `amplitude`, `period`                     | `base + amplitude·sin(2πt/period)`|
//! | `ramp`     | `from`, `to`, `over`, `repeat` (false)            | linear `from`→`to` over `over`, then hold `to` (or restart if `repeat`) |
//! | `step`     | `steps = [{ at = "0s", value = 1.0 }, ...]`        | value of the last step with `at <= t` (before the first: the first's) |
//! | `noise`    | `base`, `amplitude`, `seed`                       | `base` + uniform noise in `[-amplitude, amplitude)`, the same for the same (seed, millisecond) |
//! | `csv`      | `path`, `column`, `time_column`, `repeat` (false) | value of the last row whose time (seconds) `<= t` |
//!
//! A `csv` path is relative to the board's base directory (the manifest's folder). `column`
//! defaults to the first column that is not the time column, `time_column` to the first column.
//! With `repeat`, the trace loops; its length is the last row's time plus the gap before that row,
//! so every row of an evenly sampled trace lasts one sample.

use std::f64::consts::TAU;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::duration::{self, wrap};
use super::error::{SpecError, finite, non_zero};
use super::trace::{Trace, TraceError};

/// The name of a profile, as written in `profile = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileKind {
    /// A fixed value.
    Constant,
    /// A sine wave.
    Sine,
    /// A linear ramp, held or repeated.
    Ramp,
    /// A staircase of scripted values.
    Step,
    /// Reproducible uniform noise.
    Noise,
    /// A recorded trace from a CSV file.
    Csv,
}

impl ProfileKind {
    /// The name as written in a manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileKind::Constant => "constant",
            ProfileKind::Sine => "sine",
            ProfileKind::Ramp => "ramp",
            ProfileKind::Step => "step",
            ProfileKind::Noise => "noise",
            ProfileKind::Csv => "csv",
        }
    }

    /// The parameter keys this profile takes, in the order the docs list them.
    pub fn parameters(self) -> &'static [&'static str] {
        match self {
            ProfileKind::Constant => &["value"],
            ProfileKind::Sine => &["base", "amplitude", "period"],
            ProfileKind::Ramp => &["from", "to", "over", "repeat"],
            ProfileKind::Step => &["steps"],
            ProfileKind::Noise => &["base", "amplitude", "seed"],
            ProfileKind::Csv => &["path", "column", "time_column", "repeat"],
        }
    }
}

impl fmt::Display for ProfileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a `step` profile: from `at` on, the sensor reads `value`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// When the step begins, measured from board start.
    #[serde(deserialize_with = "duration::deserialize")]
    pub at: Duration,
    /// The value from then on.
    pub value: f64,
}

/// How a simulated sensor's value moves over time. See the module docs for the TOML shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Profile {
    /// Always `value`.
    Constant {
        /// The value.
        value: f64,
    },
    /// `base + amplitude * sin(2π t / period)`.
    Sine {
        /// The centre line.
        base: f64,
        /// The peak deviation from `base`.
        amplitude: f64,
        /// One full cycle.
        period: Duration,
    },
    /// From `from` to `to` linearly over `over`; then holds `to`, or starts again if `repeat`.
    Ramp {
        /// The value at the start.
        from: f64,
        /// The value reached after `over`.
        to: f64,
        /// How long the ramp takes.
        over: Duration,
        /// Saw-tooth instead of holding `to`.
        repeat: bool,
    },
    /// The value of the last step whose `at <= t`; before the first step, the first's value.
    Step {
        /// The steps, in strictly increasing `at`.
        steps: Vec<Step>,
    },
    /// `base` plus uniform noise in `[-amplitude, amplitude)`, reproducible per (seed, millisecond).
    Noise {
        /// The centre line.
        base: f64,
        /// The largest deviation from `base`.
        amplitude: f64,
        /// Seeds the noise, so runs replay exactly.
        seed: u64,
    },
    /// A recorded trace, step-held between rows.
    Csv {
        /// The file, relative to the board's base directory.
        path: PathBuf,
        /// Header name of the value column; default: the first column that is not the time column.
        column: Option<String>,
        /// Header name of the time column (seconds); default: the first column.
        time_column: Option<String>,
        /// Loop the trace instead of holding its last row.
        repeat: bool,
    },
}

/// A compiled profile: the sensor's raw value at `t` since board start.
pub(crate) type Signal = Box<dyn Fn(Duration) -> f64 + Send + Sync>;

impl Profile {
    /// Which profile this is.
    pub fn kind(&self) -> ProfileKind {
        match self {
            Profile::Constant { .. } => ProfileKind::Constant,
            Profile::Sine { .. } => ProfileKind::Sine,
            Profile::Ramp { .. } => ProfileKind::Ramp,
            Profile::Step { .. } => ProfileKind::Step,
            Profile::Noise { .. } => ProfileKind::Noise,
            Profile::Csv { .. } => ProfileKind::Csv,
        }
    }

    /// Checks the parameters make sense (finite numbers, non-zero periods, ordered steps).
    pub fn validate(&self) -> Result<(), SpecError> {
        match self {
            Profile::Constant { value } => finite("value", *value),
            Profile::Sine {
                base,
                amplitude,
                period,
            } => {
                finite("base", *base)?;
                finite("amplitude", *amplitude)?;
                non_zero("period", *period)
            }
            Profile::Ramp { from, to, over, .. } => {
                finite("from", *from)?;
                finite("to", *to)?;
                non_zero("over", *over)
            }
            Profile::Step { steps } => {
                if steps.is_empty() {
                    return Err(SpecError::NoSteps);
                }
                for (index, step) in steps.iter().enumerate() {
                    finite(&format!("steps[{index}].value"), step.value)?;
                    let previous = index.checked_sub(1).and_then(|p| steps.get(p));
                    if previous.is_some_and(|previous| previous.at >= step.at) {
                        return Err(SpecError::StepsOutOfOrder {
                            index,
                            previous: index - 1,
                        });
                    }
                }
                Ok(())
            }
            Profile::Noise {
                base, amplitude, ..
            } => {
                finite("base", *base)?;
                finite("amplitude", *amplitude)?;
                if *amplitude < 0.0 {
                    return Err(SpecError::NegativeAmplitude(*amplitude));
                }
                Ok(())
            }
            Profile::Csv {
                column,
                time_column,
                ..
            } => match (column, time_column) {
                (Some(column), Some(time)) if column == time => {
                    Err(SpecError::SameColumn(column.clone()))
                }
                _ => Ok(()),
            },
        }
    }

    /// Turns the profile into a function of time, loading a `csv` trace from under `base_dir`.
    pub(crate) fn compile(&self, base_dir: &Path) -> Result<Signal, TraceError> {
        Ok(match self.clone() {
            Profile::Constant { value } => Box::new(move |_| value),
            Profile::Sine {
                base,
                amplitude,
                period,
            } => Box::new(move |t| {
                let fraction = wrap(t, period).as_secs_f64() / period.as_secs_f64();
                base + amplitude * (TAU * fraction).sin()
            }),
            Profile::Ramp {
                from,
                to,
                over,
                repeat,
            } => Box::new(move |t| {
                if !repeat && t >= over {
                    return to;
                }
                from + (to - from) * (wrap(t, over).as_secs_f64() / over.as_secs_f64())
            }),
            Profile::Step { steps } => Box::new(move |t| {
                let passed = steps.partition_point(|step| step.at <= t);
                // validate() guarantees at least one step, so NaN is never seen.
                steps
                    .get(passed.saturating_sub(1))
                    .map_or(f64::NAN, |step| step.value)
            }),
            Profile::Noise {
                base,
                amplitude,
                seed,
            } => Box::new(move |t| base + amplitude * noise(seed, t)),
            Profile::Csv {
                path,
                column,
                time_column,
                repeat,
            } => {
                let trace = Trace::load(
                    &base_dir.join(path),
                    column.as_deref(),
                    time_column.as_deref(),
                    repeat,
                )?;
                Box::new(move |t| trace.value_at(t))
            }
        })
    }
}

/// A uniform number in `[-1, 1)`, fixed for a (seed, millisecond) pair: reads at the same instant
/// agree and a run replays exactly, without any state shared between reads.
fn noise(seed: u64, t: Duration) -> f64 {
    let millisecond = u64::try_from(t.as_millis()).unwrap_or(u64::MAX);
    // Mixing the bucket before combining keeps (seed, ms) pairs from aliasing each other.
    let mut rng = fastrand::Rng::with_seed(splitmix64(seed ^ splitmix64(millisecond)));
    2.0 * rng.f64() - 1.0
}

/// SplitMix64's finaliser: spreads neighbouring inputs over the whole `u64` range.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
