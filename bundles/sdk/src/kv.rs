//! Key-value storage, in namespaces the manifest grants (`kv`).
//!
//! Writes and deletes are buffered and committed in one transaction when the handler succeeds;
//! reads within the invocation already see them.

use crate::buf::{self, check, len, ptr};
use crate::{Error, ErrorCode, Result, sys};
use alloc::string::String;
use alloc::vec::Vec;

/// The value under `key` in namespace `ns`; `Ok(None)` if absent.
pub fn get(ns: &str, key: &str) -> Result<Option<Vec<u8>>> {
    let (ns, key) = (ns.as_bytes(), key.as_bytes());
    // SAFETY: `ns` and `key` are live slices; `buf::read` passes a writable buffer of `cap` bytes.
    let read = buf::read(256, |out, cap| unsafe {
        sys::kv_get(ptr(ns), len(ns), ptr(key), len(key), out, cap)
    });
    match read {
        Ok(value) => Ok(Some(value)),
        Err(Error::Host(ErrorCode::NotFound)) => Ok(None),
        Err(error) => Err(error),
    }
}

/// The value under `key` as text; `Error::Other` if it is not UTF-8.
pub fn get_string(ns: &str, key: &str) -> Result<Option<String>> {
    match get(ns, key)? {
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Error::Other("kv value is not UTF-8")),
        None => Ok(None),
    }
}

/// Sets `key` in namespace `ns` to `value` (at most 64 KiB).
pub fn set(ns: &str, key: &str, value: &[u8]) -> Result<()> {
    let (ns, key) = (ns.as_bytes(), key.as_bytes());
    // SAFETY: all three pointer/length pairs are live slices; the host only reads them.
    check(unsafe { sys::kv_set(ptr(ns), len(ns), ptr(key), len(key), ptr(value), len(value)) })?;
    Ok(())
}

/// Sets `key` to the UTF-8 bytes of `value`.
pub fn set_string(ns: &str, key: &str, value: &str) -> Result<()> {
    set(ns, key, value.as_bytes())
}

/// Deletes `key`; `Ok(true)` if it existed.
pub fn delete(ns: &str, key: &str) -> Result<bool> {
    let (ns, key) = (ns.as_bytes(), key.as_bytes());
    // SAFETY: both pointer/length pairs are live slices; the host only reads them.
    let existed = check(unsafe { sys::kv_delete(ptr(ns), len(ns), ptr(key), len(key)) })?;
    Ok(existed == 1)
}

/// The keys in `ns` that start with `prefix` (`""` for all), in key order.
pub fn list(ns: &str, prefix: &str) -> Result<Vec<String>> {
    let (ns, prefix) = (ns.as_bytes(), prefix.as_bytes());
    // SAFETY: both slices are live; `buf::read` passes a writable buffer of `cap` bytes.
    let encoded = buf::read(512, |out, cap| unsafe {
        sys::kv_list(ptr(ns), len(ns), ptr(prefix), len(prefix), out, cap)
    })?;
    decode_key_list(&encoded)
}

/// Decodes `kv_list`'s reply: for each key, a `u32` little-endian length then the key's bytes.
pub fn decode_key_list(mut encoded: &[u8]) -> Result<Vec<String>> {
    const MALFORMED: Error = Error::Other("malformed kv_list reply");
    let mut keys = Vec::new();
    while !encoded.is_empty() {
        let (head, rest) = encoded.split_at_checked(4).ok_or(MALFORMED)?;
        let head: [u8; 4] = head.try_into().map_err(|_| MALFORMED)?;
        let key_len = u32::from_le_bytes(head) as usize;
        let (key, rest) = rest.split_at_checked(key_len).ok_or(MALFORMED)?;
        let key = core::str::from_utf8(key).map_err(|_| MALFORMED)?;
        keys.push(String::from(key));
        encoded = rest;
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(keys: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for key in keys {
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(key.as_bytes());
        }
        out
    }

    #[test]
    fn decodes_keys_in_order() {
        let keys = ["a", "", "temperature/latest", "°C"];
        assert_eq!(
            decode_key_list(&encode(&keys)),
            Ok(keys.map(String::from).to_vec())
        );
        assert_eq!(decode_key_list(&[]), Ok(Vec::new()));
    }

    #[test]
    fn rejects_truncated_or_non_utf8_replies() {
        let mut encoded = encode(&["abc"]);
        encoded.pop();
        assert!(decode_key_list(&encoded).is_err());
        assert!(decode_key_list(&[1, 0, 0]).is_err());
        assert!(decode_key_list(&[1, 0, 0, 0, 0xff]).is_err());
    }
}
