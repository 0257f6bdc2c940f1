//! The crate's one error type, and how a TOML error becomes a one-line `file:line:col: message`.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why a manifest could not be loaded. Every variant's `Display` is one line that starts with
/// the manifest's path, so the CLI can print it as-is.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file could not be read.
    #[error("{}: cannot read manifest: {source}", path.display())]
    Io {
        /// The manifest path as given by the caller.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file has no top-level `manifest_version`.
    #[error("{}: missing `manifest_version` (expected 1)", path.display())]
    MissingVersion {
        /// The manifest path as given by the caller.
        path: PathBuf,
    },
    /// `manifest_version` names a version this agent cannot read.
    #[error("{}: unsupported manifest_version {found} (this agent reads 1)", path.display())]
    UnsupportedVersion {
        /// The manifest path as given by the caller.
        path: PathBuf,
        /// The value found, rendered as TOML (`2`, `"1"`, `1.0`), since it need not be an integer.
        found: String,
    },
    /// The text is not valid TOML, or a key or value does not fit the schema: an unknown key,
    /// a wrong type, an unparsable size, duration or cron expression, an unknown enum value.
    #[error("{}", located(path, *line, *column, message))]
    Syntax {
        /// The manifest path as given by the caller.
        path: PathBuf,
        /// 1-based line of the offending text; 0 if TOML reported no position.
        line: usize,
        /// 1-based column in characters (not bytes); 0 if TOML reported no position.
        column: usize,
        /// What is wrong, on one line.
        message: String,
    },
    /// The file reads fine but breaks a rule that spans values: a bad name, a missing or
    /// misplaced trigger field, a duplicate, a limit out of range, an undeclared variable.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The manifest path as given by the caller.
        path: PathBuf,
        /// Which component/trigger and what is wrong, on one line.
        message: String,
    },
}

impl ManifestError {
    /// Turns a `toml` error into [`ManifestError::Syntax`], locating its span in `text`.
    pub(crate) fn from_toml(path: &Path, text: &str, error: &toml::de::Error) -> ManifestError {
        let (line, column) = error
            .span()
            .map_or((0, 0), |span| line_column(text, span.start));
        ManifestError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message: one_line(error.message()),
        }
    }
}

fn located(path: &Path, line: usize, column: usize, message: &str) -> String {
    if line == 0 {
        format!("{}: {message}", path.display())
    } else {
        format!("{}:{line}:{column}: {message}", path.display())
    }
}

/// 1-based line and character column of a byte offset. Columns count characters because
/// editors do, and manifests hold non-ASCII text (`unit = "°C"`).
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    // A span should start on a char boundary; step back rather than risk a slicing panic.
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Joins a multi-line message (some serde and cron errors have them) into one line.
pub(crate) fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_lines_and_characters() {
        let text = "a = 1\nunit = \"°C\"\nx = 2\n";
        let cases = [
            (0, (1, 1)),
            (4, (1, 5)),
            (6, (2, 1)),
            // "°" is two bytes but one column.
            (text.find("C\"").unwrap_or(0), (2, 10)),
            (text.find("x =").unwrap_or(0), (3, 1)),
            (text.len() + 10, (4, 1)),
        ];
        for (offset, expected) in cases {
            assert_eq!(line_column(text, offset), expected, "offset {offset}");
        }
        // An offset inside a multi-byte character does not panic.
        let inside = text.find('°').unwrap_or(0) + 1;
        assert_eq!(line_column(text, inside), (2, 9));
    }

    #[test]
    fn messages_become_one_line() {
        assert_eq!(
            one_line("first\n  second\n\nthird\n"),
            "first; second; third"
        );
        assert_eq!(one_line("single"), "single");
    }

    #[test]
    fn display_is_one_line_starting_with_the_path() {
        let path = PathBuf::from("outpost.toml");
        let located = ManifestError::Syntax {
            path: path.clone(),
            line: 7,
            column: 1,
            message: "unknown field `colour`".into(),
        };
        assert_eq!(
            located.to_string(),
            "outpost.toml:7:1: unknown field `colour`"
        );
        let unlocated = ManifestError::Syntax {
            path,
            line: 0,
            column: 0,
            message: "oops".into(),
        };
        assert_eq!(unlocated.to_string(), "outpost.toml: oops");
    }
}
