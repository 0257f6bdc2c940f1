//! The checksum envelope around every stored outbox and inbox row.
//!
//! A row is `[CHECKED][table][key: u64 LE][len: u32 LE][crc: u32 LE][body]`: the body is the
//! postcard encoding of the row's own version enum, `len` its length, and the CRC covers
//! table, key, len and body. Rows written before the envelope existed are the bare postcard
//! body; their first byte is their version tag, `0`, four bit flips away from [`CHECKED`], so one
//! flipped bit can neither make an old row look checked nor a checked row look old.
//!
//! Because a row names its table and key and checks itself, it can be found in the raw bytes
//! of a file redb can no longer read ([`scan`]): salvage does not depend on the B-tree that
//! was damaged. A row that fails its checksum, sits under another key, or does not decode is
//! damage: the store moves it to quarantine instead of delivering altered bytes or stopping.
//!
//! CRC-32 (IEEE, via `crc32fast`): it detects every 1-, 2- and 3-bit error and every burst up to
//! 32 bits in rows of the sizes the outbox takes, at about a byte per cycle (SIMD on x86 and
//! aarch64). A cryptographic digest would cost ten times more per event and protects against
//! nothing a local attacker with write access to the file could not also forge.

use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

/// First byte of a checksummed row.
pub const CHECKED: u8 = 0x5C;

/// First byte of a row written before the envelope existed: layout 1's version tag.
const LEGACY: u8 = 0;

/// Bytes the envelope adds to a row.
pub const OVERHEAD: usize = 18;

/// Largest body [`scan`] recognises (rows are at most the ABI's 64 KiB payload plus names; a
/// larger `len` in a candidate is taken as noise, which keeps a scan linear).
pub const MAX_SCANNED_BODY: usize = 1024 * 1024;

/// Which table a row belongs to (stored in the envelope so a raw scan knows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Table {
    /// The outbox; the key is the sequence number.
    Outbox = 1,
    /// The inbox; the key is the inbox id.
    Inbox = 2,
}

impl Table {
    fn from_byte(byte: u8) -> Option<Table> {
        match byte {
            1 => Some(Table::Outbox),
            2 => Some(Table::Inbox),
            _ => None,
        }
    }
}

/// Why a stored row cannot be trusted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RowDamage {
    /// The row is shorter than its envelope says.
    #[error("row truncated ({len} bytes)")]
    Truncated {
        /// Its length.
        len: usize,
    },
    /// The checksum does not match: the bytes changed after they were written.
    #[error("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum {
        /// The checksum in the row.
        stored: u32,
        /// The checksum of the row as read.
        computed: u32,
    },
    /// The row is intact but was written for another table or key.
    #[error("row was written as {table:?} {key}")]
    Misplaced {
        /// The table it names.
        table: Table,
        /// The key it names.
        key: u64,
    },
    /// The body does not decode as any known layout.
    #[error("does not decode: {0}")]
    Decode(String),
}

fn crc(table: u8, key: u64, body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[table]);
    hasher.update(&key.to_le_bytes());
    hasher.update(&(body.len() as u32).to_le_bytes());
    hasher.update(body);
    hasher.finalize()
}

/// Encodes `value` with postcard inside the envelope, as row `key` of `table`.
pub fn seal<T: Serialize>(table: Table, key: u64, value: &T) -> Result<Vec<u8>, postcard::Error> {
    let mut row = postcard::to_extend(value, vec![0u8; OVERHEAD])?;
    frame(&mut row, table, key);
    Ok(row)
}

/// Writes the header of a sealed `row` for row `key` of `table` (its body is in place).
fn frame(row: &mut [u8], table: Table, key: u64) {
    let (head, body) = row.split_at_mut(OVERHEAD);
    head[0] = CHECKED;
    head[1] = table as u8;
    head[2..10].copy_from_slice(&key.to_le_bytes());
    head[10..14].copy_from_slice(&(body.len() as u32).to_le_bytes());
    head[14..18].copy_from_slice(&crc(table as u8, key, body).to_le_bytes());
}

/// Re-addresses a sealed row to `key` (the outbox learns a row's sequence number only when it
/// appends it). A row without the envelope is left as it is.
pub fn set_key(row: &mut [u8], table: Table, key: u64) {
    if row.first() == Some(&CHECKED) && row.len() >= OVERHEAD {
        frame(row, table, key);
    }
}

/// The body of a stored row `key` of `table`, checked; a row written before the envelope is
/// its own body.
pub fn body(row: &[u8], table: Table, key: u64) -> Result<&[u8], RowDamage> {
    match row.first() {
        Some(&CHECKED) => {
            let (found_table, found_key, body) = checked(row)?;
            if (found_table, found_key) != (table, key) {
                return Err(RowDamage::Misplaced {
                    table: found_table,
                    key: found_key,
                });
            }
            Ok(body)
        }
        // A row from before the envelope: its version tag, 0 (layout 1; later layouts were
        // never written bare). Any other first byte is damage — a flipped bit in the marker
        // must not turn a checked row into one nobody checks.
        Some(&LEGACY) => Ok(row),
        Some(other) => Err(RowDamage::Decode(format!(
            "unknown row marker {other:#04x} (neither checksummed nor a layout-1 row)"
        ))),
        None => Err(RowDamage::Truncated { len: 0 }),
    }
}

/// Checks a row that starts with [`CHECKED`]; returns its table, key and body.
fn checked(row: &[u8]) -> Result<(Table, u64, &[u8]), RowDamage> {
    let truncated = || RowDamage::Truncated { len: row.len() };
    let (head, rest) = row.split_at_checked(OVERHEAD).ok_or_else(truncated)?;
    let word = |at: usize| u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    let key = u64::from_le_bytes(head[2..10].try_into().map_err(|_| truncated())?);
    let len = word(10) as usize;
    let body = rest.get(..len).ok_or_else(truncated)?;
    let stored = word(14);
    let computed = crc(head[1], key, body);
    if stored != computed || rest.len() != len {
        return Err(RowDamage::Checksum { stored, computed });
    }
    let table = Table::from_byte(head[1]).ok_or(RowDamage::Checksum { stored, computed })?;
    Ok((table, key, body))
}

/// Checks and decodes stored row `key` of `table`: checksummed or written before the envelope.
pub fn open<T: DeserializeOwned>(row: &[u8], table: Table, key: u64) -> Result<T, RowDamage> {
    postcard::from_bytes(body(row, table, key)?).map_err(|e| RowDamage::Decode(e.to_string()))
}

/// One row found by [`scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found<'a> {
    /// Where it starts in the scanned bytes.
    pub offset: usize,
    /// Its table.
    pub table: Table,
    /// Its key there.
    pub key: u64,
    /// The whole sealed row.
    pub row: &'a [u8],
}

/// Every intact sealed row found in `bytes` (raw file contents, whatever redb thinks of them),
/// in the order found. Pure byte scanning, so it cannot panic on damage.
pub fn scan(bytes: &[u8]) -> Vec<Found<'_>> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = bytes[at..].iter().position(|&b| b == CHECKED) {
        let start = at + offset;
        let candidate = &bytes[start..];
        let len = candidate
            .get(10..14)
            .map(|l| u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize);
        let plausible = candidate
            .get(1)
            .and_then(|&t| Table::from_byte(t))
            .is_some()
            && len.is_some_and(|len| len <= MAX_SCANNED_BODY && OVERHEAD + len <= candidate.len());
        if let (true, Some(len)) = (plausible, len) {
            let row = &candidate[..OVERHEAD + len];
            if let Ok((table, key, _)) = checked(row) {
                found.push(Found {
                    offset: start,
                    table,
                    key,
                    row,
                });
                at = start + row.len();
                continue;
            }
        }
        at = start + 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Row {
        V1 { name: String, data: Vec<u8> },
    }

    fn sample() -> Row {
        Row::V1 {
            name: "readings".into(),
            data: (0..200u8).collect(),
        }
    }

    #[test]
    fn sealed_rows_round_trip_and_old_rows_still_open() {
        let sealed = seal(Table::Outbox, 7, &sample()).expect("seals");
        assert_eq!(sealed[0], CHECKED);
        assert_eq!(open::<Row>(&sealed, Table::Outbox, 7), Ok(sample()));
        let legacy = postcard::to_stdvec(&sample()).expect("encodes");
        assert_eq!(legacy[0], 0, "old rows start with their version tag");
        assert_eq!(open::<Row>(&legacy, Table::Outbox, 7), Ok(sample()));
    }

    #[test]
    fn a_row_under_another_key_or_table_is_misplaced() {
        let mut sealed = seal(Table::Outbox, 0, &sample()).expect("seals");
        set_key(&mut sealed, Table::Outbox, 9);
        assert_eq!(open::<Row>(&sealed, Table::Outbox, 9), Ok(sample()));
        assert!(matches!(
            open::<Row>(&sealed, Table::Outbox, 8),
            Err(RowDamage::Misplaced { key: 9, .. })
        ));
        assert!(matches!(
            open::<Row>(&sealed, Table::Inbox, 9),
            Err(RowDamage::Misplaced { .. })
        ));
    }

    #[test]
    fn every_single_bit_flip_of_a_sealed_row_is_detected() {
        let sealed = seal(Table::Inbox, 3, &sample()).expect("seals");
        for bit in 0..sealed.len() * 8 {
            let mut row = sealed.clone();
            row[bit / 8] ^= 1 << (bit % 8);
            if let Ok(value) = open::<Row>(&row, Table::Inbox, 3) {
                panic!("flip of bit {bit} went unnoticed: {value:?}");
            }
        }
    }

    #[test]
    fn a_flipped_marker_bit_is_damage_never_an_unchecked_old_row() {
        let sealed = seal(Table::Outbox, 3, &sample()).expect("seals");
        for bit in 0..8 {
            let mut row = sealed.clone();
            row[0] ^= 1 << bit;
            assert!(
                matches!(body(&row, Table::Outbox, 3), Err(RowDamage::Decode(ref m)) if m.contains("row marker")),
                "marker flip {bit} was taken for an old row"
            );
        }
    }

    #[test]
    fn short_and_empty_rows_are_damage_not_panics() {
        assert_eq!(
            open::<Row>(&[], Table::Outbox, 1),
            Err(RowDamage::Truncated { len: 0 })
        );
        assert_eq!(
            open::<Row>(&[CHECKED, 1, 2], Table::Outbox, 1),
            Err(RowDamage::Truncated { len: 3 })
        );
        assert!(matches!(
            open::<Row>(&[7, 1, 2], Table::Outbox, 1),
            Err(RowDamage::Decode(_))
        ));
    }

    #[test]
    fn a_scan_finds_intact_rows_among_garbage_and_skips_damaged_ones() {
        let a = seal(Table::Outbox, 1, &sample()).expect("seals");
        let b = seal(Table::Inbox, 2, &sample()).expect("seals");
        let mut damaged = seal(Table::Outbox, 3, &sample()).expect("seals");
        damaged[40] ^= 1;
        let mut file = vec![CHECKED, 1, 0, CHECKED];
        file.extend_from_slice(&a);
        file.extend_from_slice(&[0u8, CHECKED, 2, 9, 9]);
        file.extend_from_slice(&damaged);
        file.extend_from_slice(&b);
        file.extend_from_slice(&a[..20]);
        let found: Vec<_> = scan(&file).into_iter().map(|f| (f.table, f.key)).collect();
        assert_eq!(found, [(Table::Outbox, 1), (Table::Inbox, 2)]);
    }
}
