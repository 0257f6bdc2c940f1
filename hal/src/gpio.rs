//! GPIO lines: the [`GpioBoard`] trait and its simulated implementation [`SimGpio`], which names
//! its lines as the Linux board does.
//!
//! A line is named `<chip>:<offset>` (`gpiochip0:17`), and also by the name the kernel's device
//! tree gives it (`GPIO17`), unless two lines share that name. Values are levels as requested:
//! `true` is active, and lines are requested active-high, so `true` is a high level.

use std::sync::{Mutex, MutexGuard};

use thiserror::Error;

use crate::linux::lines::{LineId, LineIndex};

/// What lines report as their consumer when this process holds them.
pub const CONSUMER: &str = "outpost";

/// A board's GPIO lines. Implementations must be cheap to call from many threads.
pub trait GpioBoard: Send + Sync + 'static {
    /// Every line, chip by chip in offset order.
    fn lines(&self) -> Vec<GpioLineInfo>;
    /// Reads a line's level.
    fn read(&self, line: &str) -> Result<bool, GpioError>;
    /// Drives a line as an output at `value`.
    fn write(&self, line: &str, value: bool) -> Result<(), GpioError>;
}

/// What a board says about one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpioLineInfo {
    /// `<chip>:<offset>`, which [`GpioBoard::read`] and [`GpioBoard::write`] always accept.
    pub name: String,
    /// The kernel's name for the line, if it has one; also accepted unless ambiguous.
    pub line_name: Option<String>,
    /// The chip (`gpiochip0`).
    pub chip: String,
    /// The line's offset on its chip.
    pub offset: u32,
    /// Whether the line is configured as an input or an output.
    pub direction: GpioDirection,
    /// The level, when known without disturbing the line (see each board's docs).
    pub value: Option<bool>,
    /// Who holds the line (`outpost`, a kernel driver such as `led0`), if anyone.
    pub consumer: Option<String>,
}

/// A line's configured direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpioDirection {
    /// The line is read.
    Input,
    /// The line is driven.
    Output,
    /// The board cannot tell.
    Unknown,
}

/// Why a GPIO operation failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GpioError {
    /// No line has that name.
    #[error("no GPIO line named '{0}'")]
    NotFound(String),
    /// The name is `<chip>:<offset>` but the board has no such chip.
    #[error("GPIO line '{line}': there is no chip '{chip}'")]
    NoChip {
        /// The line as asked for.
        line: String,
        /// The missing chip.
        chip: String,
    },
    /// Several lines have that kernel name; use `<chip>:<offset>`.
    #[error("GPIO line name '{name}' is ambiguous: it names {}", lines.join(", "))]
    Ambiguous {
        /// The name as asked for.
        name: String,
        /// The lines that have it, as `<chip>:<offset>`.
        lines: Vec<String>,
    },
    /// The line exists but the operation failed (busy, permission, I/O, injected fault).
    #[error("GPIO line '{line}': {operation} failed: {reason}")]
    Line {
        /// The line as `<chip>:<offset>`.
        line: String,
        /// What was attempted (`read`, `write`, `line info`).
        operation: &'static str,
        /// What went wrong, for a person to act on.
        reason: String,
    },
    /// The GPIO chips could not be enumerated or opened.
    #[error("GPIO discovery: {path}: {reason}")]
    Discover {
        /// The directory or chip device.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// Locks a mutex, keeping its data if another thread panicked while holding it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One call to [`GpioBoard::write`] on a [`SimGpio`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpioWrite {
    /// The line, as `<chip>:<offset>` whatever name the caller used.
    pub line: String,
    /// The value written.
    pub value: bool,
}

/// Simulated GPIO lines in memory, for tests and `outpost up` off-device. Lines start as
/// inputs reading `false`; [`SimGpio::set_input`] plays the outside world, writes make a line
/// an output held by `outpost` and are recorded in order ([`SimGpio::writes`]).
#[derive(Debug, Default)]
pub struct SimGpio {
    index: LineIndex,
    state: Mutex<SimState>,
}

#[derive(Debug, Default)]
struct SimState {
    lines: Vec<SimLine>,
    writes: Vec<GpioWrite>,
}

#[derive(Debug, Clone)]
struct SimLine {
    direction: GpioDirection,
    value: bool,
    consumer: Option<String>,
    fault: Option<String>,
}

impl SimGpio {
    /// A board without lines.
    pub fn new() -> SimGpio {
        SimGpio::default()
    }

    /// Adds a chip with one line per entry of `line_names` (`""` for an unnamed line). A chip
    /// name already added is ignored.
    pub fn with_chip(mut self, chip: &str, line_names: &[&str]) -> SimGpio {
        let names = line_names.iter().map(|name| Some((*name).to_owned()));
        if self.index.add_chip(chip, names) {
            let line = SimLine {
                direction: GpioDirection::Input,
                value: false,
                consumer: None,
                fault: None,
            };
            let state = self
                .state
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state.lines.resize(self.index.lines.len(), line);
        }
        self
    }

    /// Makes `line` an input that the outside world drives to `value`.
    pub fn set_input(&self, line: &str, value: bool) -> Result<(), GpioError> {
        self.with_line(line, |sim| {
            *sim = SimLine {
                direction: GpioDirection::Input,
                value,
                consumer: None,
                fault: sim.fault.take(),
            };
        })
    }

    /// Makes reads and writes of `line` fail with `reason` until [`SimGpio::clear_fault`].
    pub fn inject_fault(&self, line: &str, reason: &str) -> Result<(), GpioError> {
        self.with_line(line, |sim| sim.fault = Some(reason.to_owned()))
    }

    /// Ends a fault injected into `line`.
    pub fn clear_fault(&self, line: &str) -> Result<(), GpioError> {
        self.with_line(line, |sim| sim.fault = None)
    }

    /// Every successful write so far, oldest first.
    pub fn writes(&self) -> Vec<GpioWrite> {
        lock(&self.state).writes.clone()
    }

    fn with_line<T>(&self, line: &str, f: impl FnOnce(&mut SimLine) -> T) -> Result<T, GpioError> {
        let index = self.index.resolve(line)?;
        let mut state = lock(&self.state);
        state
            .lines
            .get_mut(index)
            .map(f)
            .ok_or_else(|| GpioError::NotFound(line.to_owned()))
    }

    fn access(
        &self,
        line: &str,
        operation: &'static str,
        value: Option<bool>,
    ) -> Result<bool, GpioError> {
        let index = self.index.resolve(line)?;
        let id = self
            .index
            .lines
            .get(index)
            .map(LineId::id)
            .unwrap_or_default();
        let mut state = lock(&self.state);
        let sim = state
            .lines
            .get_mut(index)
            .ok_or_else(|| GpioError::NotFound(line.to_owned()))?;
        if let Some(reason) = &sim.fault {
            return Err(GpioError::Line {
                line: id,
                operation,
                reason: reason.clone(),
            });
        }
        let Some(value) = value else {
            return Ok(sim.value);
        };
        *sim = SimLine {
            direction: GpioDirection::Output,
            value,
            consumer: Some(CONSUMER.to_owned()),
            fault: None,
        };
        state.writes.push(GpioWrite { line: id, value });
        Ok(value)
    }
}

impl GpioBoard for SimGpio {
    fn lines(&self) -> Vec<GpioLineInfo> {
        let state = lock(&self.state);
        self.index
            .lines
            .iter()
            .zip(&state.lines)
            .map(|(id, sim)| GpioLineInfo {
                name: id.id(),
                line_name: id.line_name.clone().filter(|name| !name.is_empty()),
                chip: id.chip.clone(),
                offset: id.offset,
                direction: sim.direction,
                value: Some(sim.value),
                consumer: sim.consumer.clone(),
            })
            .collect()
    }

    fn read(&self, line: &str) -> Result<bool, GpioError> {
        self.access(line, "read", None)
    }

    fn write(&self, line: &str, value: bool) -> Result<(), GpioError> {
        self.access(line, "write", Some(value)).map(|_| ())
    }
}
