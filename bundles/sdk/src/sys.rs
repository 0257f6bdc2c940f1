//! The raw `outpost_v1` host imports, exactly as `docs/ABI.md` declares them.
//!
//! Pointers and lengths are `i32` offsets/counts into the guest's exported `memory`. A return
//! value `>= 0` is success (for buffer-filling calls: the value's full length, and nothing is
//! written when it exceeds `out_cap`); `< 0` is an [`crate::ErrorCode`]. Prefer the safe wrappers
//! in the other modules; these are here for guests that need something the wrappers don't offer.
//! The module links only the imports a guest actually calls.
//!
//! Functions that take no pointers cannot break memory safety and are declared `safe`.

#[link(wasm_import_module = "outpost_v1")]
unsafe extern "C" {
    /// Logs `msg` at `level` (0 trace … 4 error). Returns `0`, or `-4` for an unknown level.
    pub fn log(level: i32, msg_ptr: i32, msg_len: i32) -> i32;
    /// The board's wall clock, milliseconds since the Unix epoch.
    pub safe fn clock_wall_ms() -> i64;
    /// A monotonic clock, nanoseconds from an arbitrary origin.
    pub safe fn clock_monotonic_ns() -> i64;
    /// Fills `len` bytes at `ptr` from the OS CSPRNG; `-5` if `len` > 64 KiB.
    pub fn random_fill(ptr: i32, len: i32) -> i32;
    /// The trigger kind (1 cron, 2 interval, 3 start, 4 sensor, 5 mqtt, 6 manual).
    pub safe fn trigger_kind() -> i32;
    /// Copies the trigger's name; returns its length.
    pub fn trigger_name(out_ptr: i32, out_cap: i32) -> i32;
    /// Copies the trigger payload; returns its length.
    pub fn payload_read(out_ptr: i32, out_cap: i32) -> i32;
    /// Copies a config variable's value; returns its length, `-2` if unset.
    pub fn config_get(name_ptr: i32, name_len: i32, out_ptr: i32, out_cap: i32) -> i32;
    /// Copies a value; returns its length, `-2` if the key is absent.
    pub fn kv_get(
        ns_ptr: i32,
        ns_len: i32,
        key_ptr: i32,
        key_len: i32,
        out_ptr: i32,
        out_cap: i32,
    ) -> i32;
    /// Buffers a write of `val` under `key`; returns `0`.
    pub fn kv_set(
        ns_ptr: i32,
        ns_len: i32,
        key_ptr: i32,
        key_len: i32,
        val_ptr: i32,
        val_len: i32,
    ) -> i32;
    /// Buffers a delete; returns `1` if the key existed, `0` if not.
    pub fn kv_delete(ns_ptr: i32, ns_len: i32, key_ptr: i32, key_len: i32) -> i32;
    /// Copies the keys starting with `prefix`, each as a `u32` LE length then the bytes; returns
    /// the total length.
    pub fn kv_list(
        ns_ptr: i32,
        ns_len: i32,
        prefix_ptr: i32,
        prefix_len: i32,
        out_ptr: i32,
        out_cap: i32,
    ) -> i32;
    /// Buffers an event on `stream`; returns `0`.
    pub fn emit(stream_ptr: i32, stream_len: i32, data_ptr: i32, data_len: i32) -> i32;
    /// Reads a sensor: returns `0` and writes an `f64` LE (8 bytes) at `out_ptr`; `-6` on a fault.
    pub fn sensor_read(name_ptr: i32, name_len: i32, out_ptr: i32) -> i32;
    /// Queues an MQTT message in the outbox; `qos` 0 or 1, `retain` 0 or 1. Returns `0`.
    pub fn mqtt_publish(
        topic_ptr: i32,
        topic_len: i32,
        payload_ptr: i32,
        payload_len: i32,
        qos: i32,
        retain: i32,
    ) -> i32;
    /// Reads a GPIO line: returns its level, `0` low or `1` high; `-2` if the board has no such
    /// line, `-6` on a line fault. A line written in this invocation reads back the pending level.
    pub fn gpio_read(name_ptr: i32, name_len: i32) -> i32;
    /// Buffers driving a GPIO line to `value` (`0` low, `1` high); the board changes only after
    /// the invocation commits. Returns `0`.
    pub fn gpio_write(name_ptr: i32, name_len: i32, value: i32) -> i32;
    /// Copies the id of the device running the component; returns its length. Hosts before
    /// agent 0.3 do not have it: a module importing it is refused there at install.
    pub fn device_id(out_ptr: i32, out_cap: i32) -> i32;
    /// Copies the topic an `mqtt` trigger's message arrived on; returns its length (0 for
    /// other triggers). Agent 0.3 and later.
    pub fn trigger_topic(out_ptr: i32, out_cap: i32) -> i32;
}
