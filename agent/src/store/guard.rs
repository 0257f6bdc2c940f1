//! Opening a device's state directory so that damage is contained: never silent, never a crash
//! loop (`docs/design/damaged-state.md` explains the design).
//!
//! [`open_dir`] checks an existing `state.redb` before the agent opens it: a file too short to
//! be a database is damaged outright; otherwise a [`Verifier`] runs redb's integrity check and
//! reads every row — in a child process in the agent (`outpost state verify`), because redb
//! can panic on a damaged page and the release build aborts on panic. A damaged file is moved
//! aside (`state.redb.damaged-<UTC time>`, kept for forensics), the outbox and inbox rows that
//! can still be read are salvaged into a fresh store, and a note is kept in it and raised as a
//! [`StoreNotice::Replaced`]. The anti-rollback floor comes back from its copy apart from the
//! state file (`floor`), and the fresh store's new incarnation id tells consumers that its
//! sequence numbers start again.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::salvage::{self, Verdict};
use super::{STATE_FILE, Store, StoreError, StoreNotice};

/// No redb file is shorter than this (its header region alone is larger); anything shorter is
/// a zero-length or truncated file, never a database.
pub const MIN_STATE_BYTES: u64 = 1024;

/// How the state file is checked before it is trusted.
#[derive(Debug, Clone)]
pub enum Verifier {
    /// In this process, with a panic caught: right for tests and debug builds, where panics
    /// unwind; a release build (`panic = "abort"`) should use [`Verifier::Command`].
    InProcess,
    /// In a child process: `program args… FILE --salvage-to DUMP` exits 0 if the file is
    /// healthy, 2 if it is damaged (after writing what it could salvage to DUMP), 3 if another
    /// process holds it, 4 if it cannot be checked now for a reason that is not damage (full or
    /// read-only disk); any other end (a crash) means damaged. With `--salvage-only` it only
    /// salvages.
    Command {
        /// The program (the agent's own executable).
        program: PathBuf,
        /// Arguments before the file (`["state", "verify"]`).
        args: Vec<OsString>,
    },
}

impl Verifier {
    /// The agent's own executable as the verifier (`outpost state verify`); in-process if the
    /// executable cannot be found.
    pub fn this_executable() -> Verifier {
        match std::env::current_exe() {
            Ok(program) => Verifier::Command {
                program,
                args: vec!["state".into(), "verify".into()],
            },
            Err(_) => Verifier::InProcess,
        }
    }

    /// Checks `file`; if damaged, salvages what it can into `dump`.
    fn check(&self, file: &Path, dump: &Path) -> Verdict {
        match self {
            Verifier::InProcess => {
                let verdict = catch(|| salvage::verify(file))
                    .unwrap_or_else(|panic| Verdict::Damaged(format!("redb panicked: {panic}")));
                if matches!(verdict, Verdict::Damaged(_)) {
                    // What it saved before a panic stays in the dump.
                    let _ = catch(|| salvage::salvage(file, dump));
                }
                verdict
            }
            Verifier::Command { program, args } => {
                let run = |extra: &[&str]| {
                    Command::new(program)
                        .args(args)
                        .arg(file)
                        .arg("--salvage-to")
                        .arg(dump)
                        .args(extra)
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::piped())
                        .output()
                };
                let output = match run(&[]) {
                    Ok(output) => output,
                    // Cannot run the check at all: fall back to opening the file directly
                    // (the pre-checks have passed); a damaged page may then crash the agent
                    // once, and the next start's check in a working child catches it.
                    Err(_) => return Verdict::Healthy,
                };
                let said = last_words(&String::from_utf8_lossy(&output.stderr));
                match output.status.code() {
                    Some(0) => Verdict::Healthy,
                    Some(3) => Verdict::Locked,
                    Some(4) => Verdict::Unavailable(said),
                    Some(2) => Verdict::Damaged(said),
                    _ => {
                        // The check crashed (redb panicked, an abort): salvage in another
                        // child, which may crash too; what it wrote first stays.
                        let _ = run(&["--salvage-only"]);
                        Verdict::Damaged(format!(
                            "checking it crashed the verifier ({}){}",
                            output.status,
                            if said.is_empty() {
                                String::new()
                            } else {
                                format!(": {said}")
                            }
                        ))
                    }
                }
            }
        }
    }
}

/// What a verifier said last: its verdict line, or a panic's message (the line after
/// "panicked at"), never Rust's "note: run with RUST_BACKTRACE" hint.
fn last_words(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().map(str::trim).collect();
    if let Some(at) = lines.iter().position(|l| l.contains("panicked at"))
        && let Some(message) = lines.get(at + 1)
    {
        return format!("panic: {message}");
    }
    lines
        .iter()
        .rev()
        .find(|l| !l.is_empty() && !l.starts_with("note:"))
        .map_or_else(String::new, |l| (*l).to_string())
}

/// Runs `body`, turning a panic into its message.
fn catch<T>(body: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into())
    })
}

/// Why an existing file at `path` cannot be a database (zero-length or truncated), if it is.
pub fn too_short(path: &Path) -> Option<String> {
    let len = std::fs::metadata(path).ok()?.len();
    (len < MIN_STATE_BYTES).then(|| {
        if len == 0 {
            "the file is empty (0 bytes)".to_string()
        } else {
            format!("the file is truncated ({len} bytes, a database is at least {MIN_STATE_BYTES})")
        }
    })
}

/// Opens (or creates) `DIR/state.redb` for a device, creating `DIR` if needed; a damaged file
/// is moved aside and replaced as the module doc describes, and the store's listener
/// ([`Store::on_notice`]) hears about it.
pub fn open_dir(dir: &Path, verifier: &Verifier) -> Result<Store, StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
        path: dir.to_path_buf(),
        source: Box::new(e),
    })?;
    let file = dir.join(STATE_FILE);
    let dump = dir.join(format!("{STATE_FILE}.salvage"));
    let _ = std::fs::remove_file(&dump);
    if !file.exists() {
        return Store::open(&file);
    }
    let verdict = match too_short(&file) {
        Some(reason) => Verdict::Damaged(reason),
        None => verifier.check(&file, &dump),
    };
    match verdict {
        // Checked healthy: an error opening it now is the disk's or the lock's, not damage.
        Verdict::Healthy => Store::open(&file),
        Verdict::Locked => Err(StoreError::Locked { path: file }),
        // A full or read-only disk is not damage: never move a good file aside for it. The
        // agent fails to start and its service manager tries again.
        Verdict::Unavailable(reason) => Err(StoreError::Open {
            path: file,
            source: format!("cannot check it now (not damage): {reason}").into(),
        }),
        Verdict::Damaged(reason) => replace(&file, &dump, &reason),
    }
}

/// Damaged files kept for forensics; older ones are deleted, so a device that keeps meeting
/// damage never fills its disk with them.
pub const KEEP_DAMAGED: usize = 2;

/// Deletes all but the newest `keep` damaged copies of `file` (their names sort by time).
fn prune_damaged(file: &Path, keep: usize) {
    let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
        return;
    };
    let prefix = format!("{}.damaged-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut copies: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    copies.sort();
    let excess = copies.len().saturating_sub(keep);
    for old in &copies[..excess] {
        let _ = std::fs::remove_file(old);
    }
}

/// Moves the damaged `file` aside, opens a fresh store in its place, restores the rows salvaged
/// into `dump`, and records and raises what happened.
fn replace(file: &Path, dump: &Path, reason: &str) -> Result<Store, StoreError> {
    // Milliseconds, so two replacements in one second keep both copies apart.
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let aside = file.with_file_name(format!("{STATE_FILE}.damaged-{stamp}"));
    std::fs::rename(file, &aside).map_err(|e| StoreError::Open {
        path: file.to_path_buf(),
        source: format!("the file is damaged ({reason}) and cannot be moved aside: {e}").into(),
    })?;
    // Pure byte scanning of the moved file: cannot panic, finds rows behind damaged pages.
    let _ = salvage::scan_file(&aside, dump);
    prune_damaged(file, KEEP_DAMAGED);
    let store = Store::open(file)?;
    let salvaged = salvage::import(&store, dump)?;
    let _ = std::fs::remove_file(dump);
    let note = format!(
        "state file {} was damaged ({reason}); moved to {}; a fresh store (incarnation {}) took its place with {} outbox and {} inbox rows salvaged; key-value data and counters start afresh, the anti-rollback floor was restored",
        file.display(),
        aside.display(),
        store.incarnation(),
        salvaged.outbox,
        salvaged.inbox,
    );
    store.add_note(&note)?;
    store.notify(StoreNotice::Replaced { note });
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::last_words;

    #[test]
    fn a_verifier_crash_is_told_by_its_panic_message() {
        let stderr = "thread 'main' panicked at btree_cursor.rs:12:5:\ninternal error: entered unreachable code\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            last_words(stderr),
            "panic: internal error: entered unreachable code"
        );
        assert_eq!(
            last_words("bad page; 3 rows still readable\n"),
            "bad page; 3 rows still readable"
        );
        assert_eq!(last_words(""), "");
    }
}
