//! The agent's log sink for `tracing`: one line per event on stderr, `LEVEL message key=value…`,
//! which journald stores as it is (it adds the time and the unit). No spans (the agent opens
//! none), no filter expressions, no colours. The level comes from `-v`/`-q`, else `RUST_LOG`.
//!
//! About 60 lines instead of tracing-subscriber's fmt layer, which costs ~200 KB of the device
//! binary (4 MiB budget) for span storage, filters and time formats the agent does not use.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// `-v` or `-q` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// `-v`: debug level, and routine events shown.
    Verbose,
    /// `-q`: warnings and errors only.
    Quiet,
}

/// Whether debug detail is wanted (`-v` or `RUST_LOG=debug`): set once by [`init`].
static DEBUG: AtomicBool = AtomicBool::new(false);

/// Installs the sink: `-v` debug, `-q` warn, else `RUST_LOG` (`debug`, `warn`, ...), else info.
pub fn init(verbosity: Option<Verbosity>) {
    let max = level(
        verbosity,
        std::env::var("RUST_LOG")
            .ok()
            .and_then(|value| value.parse::<LevelFilter>().ok()),
    );
    DEBUG.store(max >= LevelFilter::DEBUG, Ordering::Relaxed);
    // Only fails if a sink is already installed (never, in the binary): keep the first.
    let _ = tracing::subscriber::set_global_default(StderrLog { max });
}

/// The level written: the flags win over `RUST_LOG`, which wins over the default (info).
fn level(verbosity: Option<Verbosity>, env: Option<LevelFilter>) -> LevelFilter {
    match verbosity {
        Some(Verbosity::Verbose) => LevelFilter::DEBUG,
        Some(Verbosity::Quiet) => LevelFilter::WARN,
        None => env.unwrap_or(LevelFilter::INFO),
    }
}

/// Whether routine output (debug level) is shown: `-v` or `RUST_LOG=debug`.
pub fn debug_enabled() -> bool {
    DEBUG.load(Ordering::Relaxed)
}

/// Writes each enabled event as one line on stderr.
struct StderrLog {
    /// The most verbose level written.
    max: LevelFilter,
}

impl Subscriber for StderrLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.max)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = Line(String::new());
        event.record(&mut line);
        let level = match *event.metadata().level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARN",
            Level::INFO => "INFO",
            Level::DEBUG => "DEBUG",
            Level::TRACE => "TRACE",
        };
        // One write per line, so lines of concurrent threads never interleave; a closed stderr
        // is no reason to stop.
        let _ = writeln!(std::io::stderr().lock(), "{level} {}", line.0.trim_start());
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Collects an event's fields: the message first, then `key=value` pairs.
struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_rust_log_which_wins_over_info() {
        let debug = Some(LevelFilter::DEBUG);
        assert_eq!(level(None, None), LevelFilter::INFO);
        assert_eq!(level(None, debug), LevelFilter::DEBUG);
        assert_eq!(level(Some(Verbosity::Quiet), debug), LevelFilter::WARN);
        assert_eq!(level(Some(Verbosity::Verbose), None), LevelFilter::DEBUG);
    }

    #[test]
    fn only_events_at_or_above_the_level_are_written() {
        let sink = StderrLog {
            max: LevelFilter::WARN,
        };
        tracing::subscriber::with_default(sink, || {
            assert!(tracing::enabled!(Level::WARN));
            assert!(tracing::enabled!(Level::ERROR));
            assert!(!tracing::enabled!(Level::INFO));
            // Formatting a message with fields must not panic.
            tracing::warn!(area = "sync", count = 3, "publish failed");
        });
    }
}
