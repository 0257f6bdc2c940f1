//! The device the component runs on.

use crate::{buf, sys};
use alloc::string::String;

/// The device's id (`device_id` in its agent.toml; `local` under `outpost up`), for topics and
/// payloads that say which device speaks.
pub fn id() -> String {
    // SAFETY: `buf::read` passes a writable buffer of `cap` bytes.
    let bytes = buf::read(64, |out, cap| unsafe { sys::device_id(out, cap) }).unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}
