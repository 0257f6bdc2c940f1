//! Time zone names for cron triggers (`timezone = "Europe/Berlin"`).
//!
//! Zones come from the system's tz database (Debian's `tzdata`, `/usr/share/zoneinfo`), never
//! from a copy inside the binary: the device binary has no room for one, and the system's copy
//! is the one its package manager keeps current when governments change their rules.
//!
//! The manifest checks the name's spelling always and its presence in the database when the
//! machine has one. A machine without a database at all (an operator's minimal container) only
//! checks spelling: the device that runs the app loads the zone and refuses it if it is missing.

use std::path::{Path, PathBuf};

/// Where the tz database lives unless `TZDIR` says otherwise (as for the C library).
pub const DEFAULT_ZONEINFO_DIR: &str = "/usr/share/zoneinfo";

/// The tz database directory: `$TZDIR` if set and not empty, else [`DEFAULT_ZONEINFO_DIR`].
pub fn zoneinfo_dir() -> PathBuf {
    match std::env::var_os("TZDIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_ZONEINFO_DIR),
    }
}

/// Checks that `name` is spelled like a tz database zone (`Area/Location`, `UTC`, `Etc/GMT+2`):
/// ASCII letters, digits, `_`, `-`, `+` in `/`-separated parts, none empty or `.`/`..`, so it
/// can never name a file outside the database.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid_part = |part: &str| {
        !part.is_empty()
            && !part.starts_with('.')
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.'))
    };
    if name.is_empty() || name.len() > 64 || !name.split('/').all(valid_part) {
        return Err(format!(
            "`timezone` {name:?} is not a tz database zone name (write e.g. \"Europe/Berlin\", \"America/New_York\" or \"UTC\")"
        ));
    }
    Ok(())
}

/// The file of zone `name` in the database at `dir`, after checking its spelling.
pub fn zone_path(dir: &Path, name: &str) -> Result<PathBuf, String> {
    check_name(name)?;
    Ok(dir.join(name))
}

/// Checks `name`'s spelling and, when the database at `dir` exists, that it holds the zone as
/// a TZif file.
pub fn check(dir: &Path, name: &str) -> Result<(), String> {
    let path = zone_path(dir, name)?;
    if !dir.is_dir() {
        return Ok(());
    }
    let mut magic = [0u8; 4];
    let is_tzif = std::fs::File::open(&path)
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut magic))
        .is_ok()
        && &magic == b"TZif";
    if is_tzif {
        Ok(())
    } else {
        Err(format!(
            "`timezone` {name:?} is not in the tz database at {} (check the spelling, e.g. \"Europe/Berlin\")",
            dir.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_spelled_like_zones_and_never_escape_the_database() {
        for good in [
            "UTC",
            "Europe/Berlin",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+2",
        ] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../etc/passwd",
            "Europe//Berlin",
            "Europe/..",
            "a b",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_database_that_exists_must_hold_the_zone() {
        let dir = std::env::temp_dir().join(format!("outpost-tz-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("Europe")).expect("dir");
        std::fs::write(dir.join("Europe/Berlin"), b"TZif2...").expect("zone");
        std::fs::write(dir.join("Europe/Broken"), b"not a zone").expect("file");
        assert_eq!(check(&dir, "Europe/Berlin"), Ok(()));
        let missing = check(&dir, "Europe/Berlln").expect_err("missing zone");
        assert!(missing.contains("not in the tz database"), "{missing}");
        assert!(check(&dir, "Europe/Broken").is_err());
        // No database here at all: spelling only (the device checks when it loads the zone).
        assert_eq!(check(&dir.join("absent"), "Europe/Berlin"), Ok(()));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
