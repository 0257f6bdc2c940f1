//! The commit journal: a small preallocated file next to the state file that makes a commit
//! durable with one page write and one `fdatasync`, instead of a durable redb commit.
//!
//! redb is a copy-on-write B-tree: every durable commit rewrites its header, each changed leaf
//! and branch, the table tree and the free-page trees — about nine 4 KiB pages for one
//! invocation's KV write and event (the wear bench, BENCHMARKS.md). Here a commit is written to
//! redb *non-durably* (visible at once, on disk only with the next durable commit) and its
//! changes, as physical rows (`redo`), are appended to this journal first; an `fdatasync` of the
//! journal makes the commit durable. A durable redb commit — a *checkpoint* — is made only now
//! and then (the journal nearly full, a few minutes passed, a clean stop); it persists every
//! commit before it, and the journal starts over. After a crash, the store opens at its last
//! checkpoint and the journal's frames bring back every commit made durable after it.
//!
//! The file is written in place and never grows: it is filled with zeros once when created, so
//! an append changes no file-system metadata (an `fdatasync` then writes the data pages only) and
//! a full disk later cannot stop it.
//!
//! Frame: `[magic "OPJ1"][len: u32 LE][crc: u32 LE][tag: u64 LE][epoch: u64 LE][kind: u8][body]`;
//! the CRC-32 covers tag, epoch, kind and body. `tag` comes from the store's incarnation id, so
//! frames of a state file that was replaced (damaged, wiped) are never applied to another;
//! `epoch` counts checkpoints (kept in the counters table, written with each checkpoint), so
//! frames from before the last checkpoint — still in the file, since it is overwritten from the
//! start — are told apart from the current ones. A scan stops at the first frame that is torn,
//! zeroed, damaged or of another tag or epoch: a torn frame was never reported as committed,
//! since a commit is reported only after its frame's `fdatasync`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::redo::Op;

/// File name of the journal, next to the state file.
pub const JOURNAL_FILE: &str = "state.journal";

/// Size of the journal file. At ~0.5–1 KB per invocation frame it holds over a thousand
/// commits between checkpoints; a checkpoint is due at three quarters (`needs_checkpoint`).
pub const JOURNAL_BYTES: u64 = 1 << 20;

/// Smallest journal file taken as it is; a shorter one is filled to [`JOURNAL_BYTES`] again.
const MIN_BYTES: u64 = 64 * 1024;

const MAGIC: [u8; 4] = *b"OPJ1";
const HEADER: usize = 4 + 4 + 4 + 8 + 8 + 1;
const KIND_OPS: u8 = 1;
const KIND_CANCEL: u8 = 2;

/// What one frame says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Body {
    /// A commit's row changes.
    Ops(Vec<Op>),
    /// The commit whose frame starts at this offset did not land in redb after all (its
    /// transaction failed after the frame was written): skip it.
    Cancel(u64),
}

/// Why a journal append did not happen.
#[derive(Debug, thiserror::Error)]
pub(super) enum AppendError {
    /// No room left before a checkpoint (or the frame is larger than the journal): the caller
    /// makes this commit durable in redb itself, which is a checkpoint.
    #[error("the commit journal is full")]
    Full,
    /// The frame could not be encoded.
    #[error("cannot encode a journal frame: {0}")]
    Encode(postcard::Error),
    /// Writing or syncing the file failed.
    #[error("cannot write the commit journal {path}: {source}")]
    Io {
        /// The journal file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
}

/// The journal file's unit of writing: frames are written as whole, aligned pages.
const PAGE: usize = 4096;

/// Unsynced frames kept in memory before they are written out without a sync.
const BUFFER_BYTES: u64 = 64 * 1024;

/// One page of the journal's image in memory, aligned as `O_DIRECT` needs.
#[derive(Clone, Copy)]
#[repr(C, align(4096))]
struct Page([u8; PAGE]);

/// The open journal file and where the next frame goes.
///
/// Writes bypass the page cache (`O_DIRECT`, where the filesystem allows it) and are whole
/// aligned pages from an image of the journal's tail kept in memory: the device gets exactly
/// the pages a commit changed. (Through the page cache, a kernel with large folios writes back
/// the whole folio a frame dirtied — up to the whole file — for each `fdatasync`.) Frames
/// appended without a sync stay in that image until the next sync (or until [`BUFFER_BYTES`]
/// of them wait): a process crash loses them like a power cut would, which is what unsynced
/// means here.
pub(super) struct Journal {
    file: File,
    path: PathBuf,
    tag: u64,
    epoch: u64,
    /// Offset of the next frame.
    pos: u64,
    capacity: u64,
    /// The file's pages from `image_at` on, as they are to be: the page holding `written`
    /// through the one holding `pos`.
    image: Vec<Page>,
    /// Offset of the first page in `image` (a multiple of [`PAGE`]).
    image_at: u64,
    /// Bytes before this offset are written to the file.
    written: u64,
    /// Frames written since the last `fdatasync`.
    unsynced: bool,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("epoch", &self.epoch)
            .field("pos", &self.pos)
            .field("written", &self.written)
            .finish()
    }
}

/// The frames found after the last checkpoint.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Scan {
    /// Each commit's changes, in order, cancelled ones left out.
    pub(super) commits: Vec<Vec<Op>>,
    /// Where the scan stopped: the end of the current frames.
    pub(super) end: u64,
    /// A frame of the current epoch was found damaged (a bad checksum or body): the scan stopped
    /// there, and what follows it is not replayed.
    pub(super) damaged_at: Option<u64>,
}

/// The journal's tag for a store with incarnation id `incarnation` (FNV-1a of its text).
pub(super) fn tag_of(incarnation: &str) -> u64 {
    incarnation.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Encodes one frame.
pub(super) fn encode(tag: u64, epoch: u64, body: &Body) -> Result<Vec<u8>, postcard::Error> {
    let (kind, payload) = match body {
        Body::Ops(ops) => (KIND_OPS, postcard::to_stdvec(ops)?),
        Body::Cancel(at) => (KIND_CANCEL, at.to_le_bytes().to_vec()),
    };
    let mut frame = Vec::with_capacity(HEADER + payload.len());
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(&tag.to_le_bytes());
    frame.extend_from_slice(&epoch.to_le_bytes());
    frame.push(kind);
    frame.extend_from_slice(&payload);
    let crc = crc32fast::hash(&frame[12..]);
    frame[8..12].copy_from_slice(&crc.to_le_bytes());
    Ok(frame)
}

/// Reads the frames of `tag` and `epoch` from the start of `bytes`.
pub(super) fn scan(bytes: &[u8], tag: u64, epoch: u64) -> Scan {
    let mut found: Vec<(u64, Vec<Op>)> = Vec::new();
    let mut at = 0usize;
    let mut damaged_at = None;
    while let Some(header) = bytes.get(at..at + HEADER) {
        if header[..4] != MAGIC {
            break;
        }
        let field = |r: std::ops::Range<usize>| -> u64 {
            let mut b = [0u8; 8];
            b[..r.len()].copy_from_slice(&header[r]);
            u64::from_le_bytes(b)
        };
        let (len, crc) = (field(4..8) as usize, field(8..12) as u32);
        if field(12..20) != tag || field(20..28) != epoch {
            // A frame from before the last checkpoint, or of another state file: the end.
            break;
        }
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else {
            damaged_at = Some(at as u64);
            break;
        };
        if crc32fast::hash(&bytes[at + 12..at + HEADER + len]) != crc {
            damaged_at = Some(at as u64);
            break;
        }
        match header[28] {
            KIND_OPS => match postcard::from_bytes::<Vec<Op>>(payload) {
                Ok(ops) => found.push((at as u64, ops)),
                Err(_) => {
                    damaged_at = Some(at as u64);
                    break;
                }
            },
            KIND_CANCEL => {
                let mut b = [0u8; 8];
                if payload.len() == 8 {
                    b.copy_from_slice(payload);
                }
                let cancelled = u64::from_le_bytes(b);
                found.retain(|(start, _)| *start != cancelled);
            }
            _ => {
                damaged_at = Some(at as u64);
                break;
            }
        }
        at += HEADER + len;
    }
    Scan {
        commits: found.into_iter().map(|(_, ops)| ops).collect(),
        end: at as u64,
        damaged_at,
    }
}

/// Reads the whole journal at `path`; `None` if there is none.
pub(super) fn read(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match File::open(path) {
        Ok(mut file) => {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            Ok(Some(bytes))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Journal {
    /// Opens the journal at `path` for a store with `tag` whose last checkpoint is `epoch`,
    /// creating and zero-filling it if it is missing or too short. Call after any frames in it
    /// were replayed: writing starts at the beginning.
    pub(super) fn open(path: &Path, tag: u64, epoch: u64) -> io::Result<Journal> {
        let existing = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let capacity = if existing >= MIN_BYTES {
            existing / PAGE as u64 * PAGE as u64
        } else {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)?;
            fill_with_zeros(&file, JOURNAL_BYTES)?;
            if let Some(dir) = path.parent() {
                // The new file's directory entry must survive a power cut too.
                File::open(dir)?.sync_all()?;
            }
            JOURNAL_BYTES
        };
        Ok(Journal {
            file: open_for_writing(path)?,
            path: path.to_path_buf(),
            tag,
            epoch,
            pos: 0,
            capacity,
            image: Vec::new(),
            image_at: 0,
            written: 0,
            unsynced: false,
        })
    }

    /// The journal file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The store tag frames are written under.
    pub(super) fn tag(&self) -> u64 {
        self.tag
    }

    /// The checkpoint epoch frames are written under.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether a checkpoint should come before the next frame (three quarters used): keeps
    /// room for the frames of commits already under way.
    pub(super) fn needs_checkpoint(&self) -> bool {
        self.pos >= self.capacity / 4 * 3
    }

    /// Appends a frame; with `sync`, returns only once it (and every frame before it) is on
    /// disk. Returns the frame's offset.
    pub(super) fn append(&mut self, body: &Body, sync: bool) -> Result<u64, AppendError> {
        let frame = encode(self.tag, self.epoch, body).map_err(AppendError::Encode)?;
        let at = self.pos;
        // A frame that does not fit would leave the scan a torn tail; the caller checkpoints.
        if at + frame.len() as u64 > self.capacity {
            return Err(AppendError::Full);
        }
        let start = (at - self.image_at) as usize;
        let end = start + frame.len();
        self.image
            .resize(end.div_ceil(PAGE).max(self.image.len()), Page([0; PAGE]));
        let mut copied = 0;
        while copied < frame.len() {
            let offset = start + copied;
            let page = &mut self.image[offset / PAGE].0;
            let n = (PAGE - offset % PAGE).min(frame.len() - copied);
            page[offset % PAGE..offset % PAGE + n].copy_from_slice(&frame[copied..copied + n]);
            copied += n;
        }
        self.pos += frame.len() as u64;
        if sync {
            self.sync()?;
        } else if self.pos - self.written >= BUFFER_BYTES {
            self.write_out()?;
        }
        Ok(at)
    }

    /// Makes every frame appended so far durable: the pages not yet written, then an
    /// `fdatasync` (the file's size never changes, so only its data pages are written; after an
    /// `O_DIRECT` write it flushes the device's cache).
    pub(super) fn sync(&mut self) -> Result<(), AppendError> {
        self.write_out()?;
        if !self.unsynced {
            return Ok(());
        }
        self.file.sync_data().map_err(|source| self.io(source))?;
        self.unsynced = false;
        Ok(())
    }

    /// Writes the pages holding the frames not yet written, whole, and keeps only the last,
    /// partly filled page in the image.
    fn write_out(&mut self) -> Result<(), AppendError> {
        if self.written >= self.pos {
            return Ok(());
        }
        let first = ((self.written - self.image_at) as usize) / PAGE;
        let last = ((self.pos - self.image_at) as usize).div_ceil(PAGE);
        let pages = &self.image[first..last];
        let offset = self.image_at + (first * PAGE) as u64;
        write_pages(&self.file, pages, offset).map_err(|source| self.io(source))?;
        self.written = self.pos;
        self.unsynced = true;
        let keep_from = (self.pos - self.image_at) as usize / PAGE;
        self.image.drain(..keep_from);
        self.image_at += (keep_from * PAGE) as u64;
        Ok(())
    }

    /// Starts over after a checkpoint made every frame so far redundant: the next frame goes
    /// to the beginning under `epoch`, and older frames read as the end of the journal.
    pub(super) fn restart(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.pos = 0;
        self.written = 0;
        self.image.clear();
        self.image_at = 0;
        // Whatever was not synced is in redb's durable checkpoint now.
        self.unsynced = false;
    }

    fn io(&self, source: io::Error) -> AppendError {
        AppendError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// Opens the journal for writing, bypassing the page cache where the filesystem allows it
/// (tmpfs, for one, refuses `O_DIRECT`: then through the page cache).
fn open_for_writing(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let direct = OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(path);
    match direct {
        Ok(file) => Ok(file),
        Err(error) if error.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
            OpenOptions::new().write(true).open(path)
        }
        Err(error) => Err(error),
    }
}

/// Writes whole `pages` at `offset` in one call.
fn write_pages(file: &File, pages: &[Page], offset: u64) -> io::Result<()> {
    // SAFETY: `Page` is `repr(C)` around a byte array, so a slice of pages is `len * PAGE`
    // initialised bytes, and its 4096-byte alignment is what `O_DIRECT` asks of the buffer.
    let bytes =
        unsafe { std::slice::from_raw_parts(pages.as_ptr().cast::<u8>(), pages.len() * PAGE) };
    file.write_all_at(bytes, offset)
}

/// Writes `len` zero bytes over `file` from its start and makes them durable.
fn fill_with_zeros(mut file: &File, len: u64) -> io::Result<()> {
    file.set_len(0)?;
    let zeros = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(n: u64) -> Body {
        Body::Ops(vec![Op::Counter {
            name: "c".into(),
            value: n,
        }])
    }

    fn commits(n: &[u64]) -> Vec<Vec<Op>> {
        n.iter()
            .map(|n| match ops(*n) {
                Body::Ops(ops) => ops,
                Body::Cancel(_) => unreachable!(),
            })
            .collect()
    }

    fn journal_of(frames: &[(u64, u64, Body)], len: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (tag, epoch, body) in frames {
            bytes.extend(encode(*tag, *epoch, body).expect("encodes"));
        }
        bytes.resize(len.max(bytes.len()), 0);
        bytes
    }

    #[test]
    fn a_scan_returns_the_current_frames_and_stops_at_zeros() {
        let bytes = journal_of(&[(1, 5, ops(1)), (1, 5, ops(2))], 4096);
        let scan = scan(&bytes, 1, 5);
        assert_eq!(scan.commits, commits(&[1, 2]));
        assert_eq!(scan.damaged_at, None);
    }

    #[test]
    fn frames_of_an_older_epoch_or_another_store_end_the_scan() {
        let mut bytes = journal_of(&[(1, 6, ops(1))], 0);
        // The previous epoch's frames lie further on in the file, as after a restart.
        bytes.extend(journal_of(&[(1, 5, ops(9)), (1, 6, ops(8))], 0));
        assert_eq!(scan(&bytes, 1, 6).commits, commits(&[1]));
        assert!(scan(&bytes, 2, 6).commits.is_empty(), "another store's tag");
    }

    #[test]
    fn a_torn_or_flipped_frame_ends_the_scan_and_is_reported() {
        let bytes = journal_of(&[(1, 5, ops(1)), (1, 5, ops(2))], 0);
        let second = encode(1, 5, &ops(1)).expect("encodes").len();
        let torn = &bytes[..bytes.len() - 3];
        let scanned = scan(torn, 1, 5);
        assert_eq!(scanned.commits, commits(&[1]));
        assert_eq!(scanned.damaged_at, Some(second as u64));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        assert_eq!(scan(&flipped, 1, 5).commits, commits(&[1]));
    }

    #[test]
    fn a_cancelled_commit_is_not_replayed() {
        let first = encode(1, 5, &ops(1)).expect("encodes").len() as u64;
        let bytes = journal_of(
            &[(1, 5, ops(1)), (1, 5, ops(2)), (1, 5, Body::Cancel(first))],
            0,
        );
        assert_eq!(scan(&bytes, 1, 5).commits, commits(&[1]));
    }

    #[test]
    fn appends_go_in_place_restart_at_the_beginning_and_refuse_what_does_not_fit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(JOURNAL_FILE);
        let mut journal = Journal::open(&path, 7, 1).expect("opens");
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), JOURNAL_BYTES);
        journal.append(&ops(1), true).expect("appends");
        journal.append(&ops(2), false).expect("appends");
        journal.sync().expect("syncs");
        let bytes = read(&path).expect("reads").expect("exists");
        assert_eq!(scan(&bytes, 7, 1).commits, commits(&[1, 2]));
        journal.restart(2);
        journal.append(&ops(3), true).expect("appends");
        let bytes = read(&path).expect("reads").expect("exists");
        assert_eq!(scan(&bytes, 7, 2).commits, commits(&[3]));
        assert_eq!(
            std::fs::metadata(&path).expect("meta").len(),
            JOURNAL_BYTES,
            "never grows"
        );
        let huge = Body::Ops(vec![Op::Outbox {
            seq: 1,
            row: Some(vec![0; JOURNAL_BYTES as usize]),
        }]);
        assert!(matches!(
            journal.append(&huge, true),
            Err(AppendError::Full)
        ));
    }
}
