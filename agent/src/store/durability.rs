//! Durability modes: when a commit reaches the disk, and what a power cut can take.
//!
//! Either way a commit is written to the commit journal (`journal`) before redb makes it visible;
//! what differs is when the journal is `fdatasync`ed:
//! - [`Durability::Immediate`] (the default): before the caller hears of success. A power cut
//!   or `kill -9` loses nothing reported as committed.
//! - [`Durability::Window`]: once the oldest unsynced commit has waited a window (by that commit
//!   or the flusher). A power cut or `kill -9` loses at most the commits of the last window
//!   (unsynced frames wait in memory). Fewer syncs, fewer pages written.
//!
//! In both modes the deletes after PUBACKs are journaled without a sync: they ride along with
//! the next sync (at the latest the next checkpoint). A crash before it brings the rows back and they
//! are sent again: duplicates with their old sequence numbers, never loss. Inbound messages are
//! always stored durably before they are acknowledged.
//!
//! Sequence numbers are never reused across a crash: in window mode a row may be sent before its
//! commit is durable, so a store that restarts after an unclean stop in window mode (the
//! [`MARKER_FILE`] is still there) continues from the sequence watermark, past every number it
//! may have handed out (`watermark`), and says so in a store note.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// When commits become durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Each commit is durable when its caller is told (`"immediate"`).
    #[default]
    Immediate,
    /// Commits are made durable together at most this long after they were made (`"1s"`).
    Window(Duration),
}

/// How long a non-durable commit waits in immediate mode, on a store without a commit journal
/// (in memory, or after the journal failed), for a durable commit to carry it before the store
/// makes it durable on its own: bounds what a crash of an idle device sends again. (With the
/// journal, deletes and counters ride along until the next sync or checkpoint.)
pub const IMMEDIATE_LAZY_FLUSH: Duration = Duration::from_secs(10);

/// Shortest window accepted: below it the window saves nothing over immediate mode.
pub const MIN_WINDOW: Duration = Duration::from_millis(10);

/// File next to the state file that exists while a store runs in window mode: found at open, it
/// means the last run stopped uncleanly with non-durable commits possibly lost.
pub const MARKER_FILE: &str = "durability-window";

impl Durability {
    /// The most a power cut or `kill -9` can lose: `None` for immediate mode (nothing reported
    /// as committed is lost), the window otherwise.
    pub fn loss_bound(&self) -> Option<Duration> {
        match self {
            Durability::Immediate => None,
            Durability::Window(window) => Some(*window),
        }
    }

    /// How long after the first non-durable commit the store makes it durable by itself.
    pub fn flush_after(&self) -> Duration {
        match self {
            Durability::Immediate => IMMEDIATE_LAZY_FLUSH,
            Durability::Window(window) => *window,
        }
    }

    /// Whether an invocation commit made now must be durable: always in immediate mode; in
    /// window mode once the oldest non-durable commit (`pending_for` ago, `None` if there is
    /// none) has waited a whole window, so this commit carries it to disk in time.
    pub fn commit_durably(&self, pending_for: Option<Duration>) -> bool {
        match self {
            Durability::Immediate => true,
            Durability::Window(window) => pending_for.is_some_and(|age| age >= *window),
        }
    }

    /// One line for people: what this mode promises.
    pub fn promise(&self) -> String {
        match self {
            Durability::Immediate => {
                "durability immediate: every reported success is on disk".to_string()
            }
            Durability::Window(_) => format!(
                "durability window {self}: a power cut or kill -9 loses at most the last {self} of commits"
            ),
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Durability::Immediate => f.write_str("immediate"),
            Durability::Window(window) => {
                write!(f, "{}", humantime::format_duration(*window))
            }
        }
    }
}

/// Why a durability setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("durability '{text}': {reason} (expected \"immediate\" or a window such as \"1s\")")]
pub struct DurabilityError {
    text: String,
    reason: String,
}

impl FromStr for Durability {
    type Err = DurabilityError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refuse = |reason: String| DurabilityError {
            text: text.to_string(),
            reason,
        };
        if text.trim() == "immediate" {
            return Ok(Durability::Immediate);
        }
        let window = humantime::parse_duration(text.trim()).map_err(|e| refuse(e.to_string()))?;
        if window < MIN_WINDOW {
            return Err(refuse(format!(
                "a window shorter than {} saves nothing",
                humantime::format_duration(MIN_WINDOW)
            )));
        }
        Ok(Durability::Window(window))
    }
}

impl serde::Serialize for Durability {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Durability {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The window recorded in a marker file, if the file is there (its content may be damaged: the
/// file's existence is what counts).
pub(super) fn read_marker(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(text.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_immediate_and_windows_and_refuses_the_rest() {
        assert_eq!("immediate".parse(), Ok(Durability::Immediate));
        assert_eq!("1s".parse(), Ok(Durability::Window(Duration::from_secs(1))));
        assert_eq!(
            "250ms".parse::<Durability>().map(|d| d.to_string()),
            Ok("250ms".to_string())
        );
        assert!("1ms".parse::<Durability>().is_err());
        assert!("sometimes".parse::<Durability>().is_err());
        assert!("".parse::<Durability>().is_err());
    }

    #[test]
    fn a_window_commit_is_durable_once_the_oldest_pending_one_has_waited_a_window() {
        let window = Durability::Window(Duration::from_secs(1));
        assert!(!window.commit_durably(None));
        assert!(!window.commit_durably(Some(Duration::from_millis(999))));
        assert!(window.commit_durably(Some(Duration::from_secs(1))));
        assert!(Durability::Immediate.commit_durably(None));
        assert_eq!(window.loss_bound(), Some(Duration::from_secs(1)));
        assert_eq!(Durability::Immediate.loss_bound(), None);
        assert_eq!(window.flush_after(), Duration::from_secs(1));
    }

    #[test]
    fn round_trips_through_toml() {
        #[derive(serde::Deserialize, serde::Serialize)]
        struct Doc {
            durability: Durability,
        }
        let doc: Doc = toml::from_str("durability = \"2s\"").expect("parses");
        assert_eq!(doc.durability, Durability::Window(Duration::from_secs(2)));
        assert!(toml::from_str::<Doc>("durability = \"soon\"").is_err());
    }
}
