//! Recorded traces for the `csv` profile: a header line, then comma-separated numbers, one row per
//! sample. Blank lines and lines starting with `#` are skipped; quoting is not supported, which is
//! fine for numbers and keeps the format obvious.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use super::duration::wrap;

/// Why a trace file could not be used; every variant names the file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The file could not be read.
    #[error("cannot read trace {}: {error}", path.display())]
    Io {
        /// The file, as resolved against the base directory.
        path: PathBuf,
        /// The underlying I/O error.
        error: std::io::Error,
    },
    /// A line is malformed.
    #[error("{}:{line}: {problem}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        problem: String,
    },
    /// The file has no header line or no data rows.
    #[error("{}: a trace needs a header line and at least one data row", path.display())]
    NoData {
        /// The file.
        path: PathBuf,
    },
}

/// A loaded trace: sample times (strictly increasing) and their values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Trace {
    times: Vec<Duration>,
    values: Vec<f64>,
    /// Loop length when repeating; `None` holds the last row forever.
    cycle: Option<Duration>,
}

impl Trace {
    /// Reads and parses `path`. `column`/`time_column` pick header names (see [`Trace::parse`]).
    pub(crate) fn load(
        path: &Path,
        column: Option<&str>,
        time_column: Option<&str>,
        repeat: bool,
    ) -> Result<Trace, TraceError> {
        let text = fs::read_to_string(path).map_err(|error| TraceError::Io {
            path: path.to_owned(),
            error,
        })?;
        Trace::parse(&text, path, column, time_column, repeat)
    }

    /// Parses trace text; `path` is only for messages. The time column defaults to the first
    /// column, the value column to the first column that is not the time column.
    pub(crate) fn parse(
        text: &str,
        path: &Path,
        column: Option<&str>,
        time_column: Option<&str>,
        repeat: bool,
    ) -> Result<Trace, TraceError> {
        let problem = |line: usize, problem: String| TraceError::Parse {
            path: path.to_owned(),
            line,
            problem,
        };
        // Spreadsheets like to prepend a byte-order mark.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(index, line)| (index + 1, line.trim()))
            .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'));

        let Some((header_line, header)) = lines.next() else {
            return Err(TraceError::NoData {
                path: path.to_owned(),
            });
        };
        let names: Vec<&str> = header
            .split(',')
            .map(|name| name.trim().trim_matches('"'))
            .collect();
        let find = |wanted: &str, role: &str| {
            names
                .iter()
                .position(|name| *name == wanted)
                .ok_or_else(|| {
                    let columns = names.join(", ");
                    problem(
                        header_line,
                        format!("no {role} column '{wanted}' (columns: {columns})"),
                    )
                })
        };
        let time_index = time_column.map_or(Ok(0), |name| find(name, "time"))?;
        let value_index = match column {
            Some(name) => find(name, "value")?,
            None => (0..names.len()).find(|&i| i != time_index).ok_or_else(|| {
                problem(
                    header_line,
                    "need a time column and a value column".to_owned(),
                )
            })?,
        };
        if value_index == time_index {
            let name = names.get(time_index).copied().unwrap_or_default();
            return Err(problem(
                header_line,
                format!("column '{name}' is both time and value"),
            ));
        }

        let mut times: Vec<Duration> = Vec::new();
        let mut values = Vec::new();
        for (line, row) in lines {
            let fields: Vec<&str> = row.split(',').map(str::trim).collect();
            if fields.len() != names.len() {
                let (want, got) = (names.len(), fields.len());
                return Err(problem(
                    line,
                    format!("expected {want} fields as in the header, found {got}"),
                ));
            }
            let number = |index: usize| -> Result<f64, TraceError> {
                let (field, name) = (fields[index], names[index]);
                match field.parse::<f64>() {
                    Ok(value) if value.is_finite() => Ok(value),
                    _ => Err(problem(
                        line,
                        format!("'{field}' in column '{name}' is not a finite number"),
                    )),
                }
            };
            let seconds = number(time_index)?;
            let at = Duration::try_from_secs_f64(seconds).map_err(|_| {
                problem(
                    line,
                    format!("time {seconds} is negative; times are seconds from board start"),
                )
            })?;
            if times.last().is_some_and(|previous| *previous >= at) {
                return Err(problem(
                    line,
                    format!("time {seconds} is not after the previous row's"),
                ));
            }
            values.push(number(value_index)?);
            times.push(at);
        }

        let cycle = match times.as_slice() {
            // The last row lasts as long as the gap before it, so an evenly sampled trace loops
            // with every row held for one sample.
            [.., before, last] if repeat => Some(*last + (*last - *before)),
            _ => None,
        };
        if values.is_empty() {
            return Err(TraceError::NoData {
                path: path.to_owned(),
            });
        }
        Ok(Trace {
            times,
            values,
            cycle,
        })
    }

    /// The value of the last row whose time is `<= t`; before the first row, the first's value.
    pub(crate) fn value_at(&self, t: Duration) -> f64 {
        let position = self.cycle.map_or(t, |cycle| wrap(t, cycle));
        let passed = self.times.partition_point(|at| *at <= position);
        // parse() guarantees at least one row, so NaN is never seen.
        self.values
            .get(passed.saturating_sub(1))
            .copied()
            .unwrap_or(f64::NAN)
    }
}
