//! Reading the kernel's small text files (sysfs attributes, `/proc` tables) without trusting
//! their content, and listing numbered entries (`thermal_zone3`, `hwmon1`, `iio:device0`).
//!
//! Every error is a sentence for [`SensorError::Unavailable`](crate::SensorError) that names the
//! file and says what was wrong with it.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::LinuxError;

/// No kernel attribute comes near this; `/proc/meminfo` is about 1.5 KiB. A larger file is
/// not what we think it is, and reading it whole on every sample would be wasteful.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// How much of a garbled file an error message quotes.
const QUOTE_CHARS: usize = 40;

/// Reads a whole small text file.
pub(crate) fn read_text(path: &Path) -> Result<String, String> {
    let failed = |err: io::Error| format!("reading {}: {err}", path.display());
    let file = File::open(path).map_err(failed)?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(failed)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{} is larger than {MAX_FILE_BYTES} bytes, not a kernel attribute",
            path.display()
        ));
    }
    Ok(text)
}

/// Reads a file holding one number, as sysfs attributes do (`"48312\n"`, `"0.001220703\n"`).
pub(crate) fn read_number(path: &Path) -> Result<f64, String> {
    let text = read_text(path)?;
    parse_number(&text).ok_or_else(|| not_a_number(path, &text))
}

/// Parses one finite number surrounded by optional whitespace; `nan` and `inf` are refused.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|value| value.is_finite())
}

/// The error for a file whose content is not the number expected.
pub(crate) fn not_a_number(path: &Path, text: &str) -> String {
    format!("{} holds {}, not a number", path.display(), quote(text))
}

/// The start of `text`, quoted and escaped, for an error message.
pub(crate) fn quote(text: &str) -> String {
    let trimmed = text.trim();
    let mut shown: String = trimmed.chars().take(QUOTE_CHARS).collect();
    if shown.len() < trimmed.len() {
        shown.push_str("...");
    }
    format!("{shown:?}")
}

/// A name from a file such as `type` or `name`: trimmed, `/` and control characters replaced so
/// it fits in one segment of a sensor name. `None` if the file is missing, unreadable or blank.
pub(crate) fn read_name(path: &Path) -> Option<String> {
    let text = read_text(path).ok()?;
    let name: String = text
        .trim()
        .chars()
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect();
    (!name.is_empty()).then_some(name)
}

/// One entry of a directory whose name is a prefix and a number.
#[derive(Debug, Clone)]
pub(crate) struct Numbered {
    /// The number after the prefix (`3` for `thermal_zone3`).
    pub(crate) index: u64,
    /// The entry's path.
    pub(crate) path: PathBuf,
}

/// The entries of `dir` named `<prefix><number>`, in numeric order. A missing directory has
/// none (the kernel lacks that class); any other failure to list it is an error.
pub(crate) fn numbered_entries(dir: &Path, prefix: &str) -> Result<Vec<Numbered>, LinuxError> {
    let scan_error = |source| LinuxError::Scan {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(scan_error(err)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(scan_error)?;
        let name = entry.file_name();
        let Some(index) = name
            .to_str()
            .and_then(|name| name.strip_prefix(prefix))
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u64>().ok())
        else {
            continue;
        };
        found.push(Numbered {
            index,
            path: entry.path(),
        });
    }
    found.sort_by_key(|entry| entry.index);
    Ok(found)
}

/// The names of the files in `dir`, sorted; empty if it cannot be listed (a device that
/// vanished between listing its class and opening it).
pub(crate) fn file_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_like_the_kernel_writes_them() {
        assert_eq!(parse_number("48312\n"), Some(48312.0));
        assert_eq!(parse_number("-1500\n"), Some(-1500.0));
        assert_eq!(parse_number(" 0.001220703\n"), Some(0.001220703));
        assert_eq!(parse_number("nan\n"), None);
        assert_eq!(parse_number("inf"), None);
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("12 34"), None);
        assert_eq!(parse_number("\u{feff}1"), None);
    }

    #[test]
    fn quotes_are_short_and_escaped() {
        assert_eq!(quote("abc\n"), "\"abc\"");
        let long = "x".repeat(100);
        assert_eq!(quote(&long), format!("\"{}...\"", "x".repeat(40)));
        assert_eq!(quote("a\u{0}b"), "\"a\\0b\"");
        assert_eq!(quote("éééé"), "\"éééé\"");
    }
}
