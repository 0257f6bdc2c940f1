// The AssemblyScript SDK for Outpost components, host ABI v1 (docs/ABI.md).
//
// A component exports `outpost_handle(): i32` (0 = commit, anything else = discard) and imports
// only from `outpost_v1`. Build with the stub runtime (no GC: every invocation runs in a fresh
// instance, so memory is never worth collecting) and this file's `outpostAbort` as `abort`,
// which reports through `log` and traps (the host refuses `env.abort`):
//
//   asc assembly/index.ts -o build/app.wasm --runtime stub -Oz --noAssert \
//       --use abort=outpost/outpost/outpostAbort
//
// (`--use abort=` takes the SDK file's path without `.ts`, then the function name.)
//
// Errors: a host error other than "absent" throws, which in AssemblyScript aborts the
// invocation: `outpostAbort` logs the message and traps, and nothing is committed. Absent keys
// and unset variables are `null`. For a handler that wants to decide itself, every wrapper has a
// `try*` twin returning the raw code (>= 0 success, < 0 an `ErrorCode`). Strings are UTF-8 on
// the wire and `string` here; values of unknown length are read with a guess, then once more
// with the exact length the host reports (the ABI's too-large-buffer rule).

// ---- Raw imports --------------------------------------------------------------------------

@external("outpost_v1", "log")
declare function sys_log(level: i32, ptr: usize, len: i32): i32;
@external("outpost_v1", "clock_wall_ms")
declare function sys_clock_wall_ms(): i64;
@external("outpost_v1", "clock_monotonic_ns")
declare function sys_clock_monotonic_ns(): i64;
@external("outpost_v1", "random_fill")
declare function sys_random_fill(ptr: usize, len: i32): i32;
@external("outpost_v1", "trigger_kind")
declare function sys_trigger_kind(): i32;
@external("outpost_v1", "trigger_name")
declare function sys_trigger_name(out: usize, cap: i32): i32;
@external("outpost_v1", "payload_read")
declare function sys_payload_read(out: usize, cap: i32): i32;
@external("outpost_v1", "config_get")
declare function sys_config_get(name: usize, nameLen: i32, out: usize, cap: i32): i32;
@external("outpost_v1", "kv_get")
declare function sys_kv_get(ns: usize, nsLen: i32, key: usize, keyLen: i32, out: usize, cap: i32): i32;
@external("outpost_v1", "kv_set")
declare function sys_kv_set(ns: usize, nsLen: i32, key: usize, keyLen: i32, val: usize, valLen: i32): i32;
@external("outpost_v1", "kv_delete")
declare function sys_kv_delete(ns: usize, nsLen: i32, key: usize, keyLen: i32): i32;
@external("outpost_v1", "kv_list")
declare function sys_kv_list(ns: usize, nsLen: i32, prefix: usize, prefixLen: i32, out: usize, cap: i32): i32;
@external("outpost_v1", "emit")
declare function sys_emit(stream: usize, streamLen: i32, data: usize, len: i32): i32;
@external("outpost_v1", "sensor_read")
declare function sys_sensor_read(name: usize, len: i32, out: usize): i32;
@external("outpost_v1", "mqtt_publish")
declare function sys_mqtt_publish(topic: usize, topicLen: i32, payload: usize, len: i32, qos: i32, retain: i32): i32;
@external("outpost_v1", "gpio_read")
declare function sys_gpio_read(name: usize, len: i32): i32;
@external("outpost_v1", "gpio_write")
declare function sys_gpio_write(name: usize, len: i32, value: i32): i32;
@external("outpost_v1", "device_id")
declare function sys_device_id(out: usize, cap: i32): i32;
@external("outpost_v1", "trigger_topic")
declare function sys_trigger_topic(out: usize, cap: i32): i32;

// ---- Errors -------------------------------------------------------------------------------

/** The host's error codes (negative return values); their numbers never change. */
export enum ErrorCode {
  Denied = -1,
  NotFound = -2,
  OutOfBounds = -3,
  InvalidArgument = -4,
  TooLarge = -5,
  Unavailable = -6,
}

/** A short name for a return code, for messages. */
export function errorName(code: i32): string {
  switch (code) {
    case ErrorCode.Denied: return "denied";
    case ErrorCode.NotFound: return "not-found";
    case ErrorCode.OutOfBounds: return "out-of-bounds";
    case ErrorCode.InvalidArgument: return "invalid-argument";
    case ErrorCode.TooLarge: return "too-large";
    case ErrorCode.Unavailable: return "unavailable";
  }
  return code >= 0 ? "ok" : "unknown (" + code.toString() + ")";
}

/** Throws (aborts the invocation) when `code` is an error; returns it otherwise. */
function check(what: string, code: i32): i32 {
  if (code < 0) throw new Error(what + ": " + errorName(code));
  return code;
}

// ---- Strings and buffers ------------------------------------------------------------------

/** Bytes as a view; `ptr` and `len` as the ABI wants them. */
class Bytes {
  constructor(public buf: ArrayBuffer) {}
  get ptr(): usize { return changetype<usize>(this.buf); }
  get len(): i32 { return this.buf.byteLength; }
}

function utf8(s: string): Bytes {
  return new Bytes(String.UTF8.encode(s));
}

function raw(data: Uint8Array): Bytes {
  // A Uint8Array may be a window into a larger buffer: copy exactly its bytes.
  const copy = new ArrayBuffer(data.length);
  memory.copy(changetype<usize>(copy), data.dataStart, data.length);
  return new Bytes(copy);
}

/** Runs a buffer-filling call: a guess, then the exact length. The result code stays < 0. */
function readInto(guess: i32, fill: (out: usize, cap: i32) => i32): Uint8Array | null {
  let cap = guess;
  for (let attempt = 0; attempt < 2; attempt++) {
    const out = new Uint8Array(cap);
    const full = fill(out.dataStart, cap);
    if (full < 0) {
      lastCode = full;
      return null;
    }
    if (full <= cap) return out.subarray(0, full);
    cap = full;
  }
  lastCode = ErrorCode.Unavailable; // the value grew between two calls: the ABI rules it out
  return null;
}

/** The code of the last failed read (for the `try*` functions that return null). */
export let lastCode: i32 = 0;

// Closures cannot capture locals in AssemblyScript: the arguments of the call in flight.
let argA: Bytes = new Bytes(new ArrayBuffer(0));
let argB: Bytes = new Bytes(new ArrayBuffer(0));

// ---- Log ------------------------------------------------------------------------------------

/** Log levels. */
export enum Level { Trace = 0, Debug = 1, Info = 2, Warn = 3, Error = 4 }

/** Logs a message (over 4 KiB: truncated by the host). */
export function log(level: Level, message: string): void {
  const m = utf8(message);
  sys_log(level, m.ptr, m.len);
}
export function trace(message: string): void { log(Level.Trace, message); }
export function debug(message: string): void { log(Level.Debug, message); }
export function info(message: string): void { log(Level.Info, message); }
export function warn(message: string): void { log(Level.Warn, message); }
export function error(message: string): void { log(Level.Error, message); }

/** The `abort` to build with (`--use abort=…/outpostAbort`): logs at error level, then traps.
 *  A `throw` and a failed assertion land here. */
export function outpostAbort(message: string | null, file: string | null, line: u32, column: u32): void {
  let text = "abort: " + (message !== null ? message : "(no message)");
  if (file !== null) text += " at " + file + ":" + line.toString() + ":" + column.toString();
  error(text);
  unreachable();
}

// ---- Clocks, randomness ----------------------------------------------------------------

/** The board's wall clock, ms since the Unix epoch. */
export function wallMs(): i64 { return sys_clock_wall_ms(); }
/** A monotonic clock in ns from an arbitrary origin. */
export function monotonicNs(): i64 { return sys_clock_monotonic_ns(); }
/** `len` bytes (at most 64 KiB) from the OS CSPRNG. */
export function randomBytes(len: i32): Uint8Array {
  const out = new Uint8Array(len);
  check("random_fill", sys_random_fill(out.dataStart, len));
  return out;
}

// ---- Trigger --------------------------------------------------------------------------------

/** What started the invocation. */
export enum TriggerKind { Cron = 1, Interval = 2, Start = 3, Sensor = 4, Mqtt = 5, Manual = 6 }

export function triggerKind(): TriggerKind { return sys_trigger_kind(); }

/** The trigger's name from the manifest. */
export function triggerName(): string {
  const b = readInto(64, (o: usize, c: i32): i32 => sys_trigger_name(o, c));
  return b === null ? "" : String.UTF8.decode(b.buffer.slice(0, b.length));
}

/** The raw trigger payload (docs/ABI.md, "Trigger payloads"). */
export function payload(): Uint8Array {
  const b = readInto(64, (o: usize, c: i32): i32 => sys_payload_read(o, c));
  return b === null ? new Uint8Array(0) : b;
}

/** The topic an `mqtt` trigger's message arrived on ("" for other triggers). */
export function triggerTopic(): string {
  const b = readInto(128, (o: usize, c: i32): i32 => sys_trigger_topic(o, c));
  return b === null ? "" : String.UTF8.decode(b.buffer.slice(0, b.length));
}

/** The id of the device running the component (`local` under `outpost up`). */
export function deviceId(): string {
  const b = readInto(64, (o: usize, c: i32): i32 => sys_device_id(o, c));
  return b === null ? "" : String.UTF8.decode(b.buffer.slice(0, b.length));
}

/** A sensor trigger's sample and the sample before it (NaN on the first). */
export class SensorSample {
  constructor(public value: f64, public previous: f64) {}
}

/** The payload as a sensor sample, whatever the trigger kind (so `outpost invoke --payload`
 *  can replay samples); null when it is not 16 bytes. */
export function sensorSample(): SensorSample | null {
  const p = payload();
  if (p.length != 16) return null;
  return new SensorSample(load<f64>(p.dataStart), load<f64>(p.dataStart, 8));
}

/** The scheduled wall time (ms) of a cron or interval run; -1 for other triggers. */
export function scheduledMs(): i64 {
  const k = triggerKind();
  if (k != TriggerKind.Cron && k != TriggerKind.Interval) return -1;
  const p = payload();
  return p.length == 8 ? load<i64>(p.dataStart) : -1;
}

// ---- Config -------------------------------------------------------------------------------

/** A config variable's value, or null when it is unset. */
export function configGet(name: string): string | null {
  argA = utf8(name);
  const b = readInto(64, (o: usize, c: i32): i32 => sys_config_get(argA.ptr, argA.len, o, c));
  if (b === null) {
    if (lastCode == ErrorCode.NotFound) return null;
    check("config_get " + name, lastCode);
  }
  return String.UTF8.decode(b!.buffer.slice(0, b!.length));
}

// ---- Key-value ----------------------------------------------------------------------------

/** A value, or null when the key is absent. Sees this invocation's own writes. */
export function kvGet(ns: string, key: string): Uint8Array | null {
  argA = utf8(ns);
  argB = utf8(key);
  const b = readInto(64, (o: usize, c: i32): i32 =>
    sys_kv_get(argA.ptr, argA.len, argB.ptr, argB.len, o, c));
  if (b === null) {
    if (lastCode == ErrorCode.NotFound) return null;
    check("kv_get " + ns + "/" + key, lastCode);
  }
  return b;
}

/** A value as text, or null when the key is absent. */
export function kvGetString(ns: string, key: string): string | null {
  const b = kvGet(ns, key);
  return b === null ? null : String.UTF8.decode(b.buffer.slice(0, b.length));
}

/** Writes a value (committed with the invocation); returns the code instead of throwing. */
export function tryKvSet(ns: string, key: string, value: Uint8Array): i32 {
  const n = utf8(ns), k = utf8(key), v = raw(value);
  return sys_kv_set(n.ptr, n.len, k.ptr, k.len, v.ptr, v.len);
}
/** Writes a value (committed with the invocation). */
export function kvSet(ns: string, key: string, value: Uint8Array): void {
  check("kv_set " + ns + "/" + key, tryKvSet(ns, key, value));
}
/** Writes text (committed with the invocation). */
export function kvSetString(ns: string, key: string, value: string): void {
  kvSet(ns, key, Uint8Array.wrap(String.UTF8.encode(value)));
}
/** Deletes a key; true if it existed. */
export function kvDelete(ns: string, key: string): bool {
  const n = utf8(ns), k = utf8(key);
  return check("kv_delete " + ns + "/" + key, sys_kv_delete(n.ptr, n.len, k.ptr, k.len)) == 1;
}
/** The keys starting with `prefix`, in order. */
export function kvList(ns: string, prefix: string): string[] {
  argA = utf8(ns);
  argB = utf8(prefix);
  const b = readInto(256, (o: usize, c: i32): i32 =>
    sys_kv_list(argA.ptr, argA.len, argB.ptr, argB.len, o, c));
  if (b === null) check("kv_list " + ns, lastCode);
  const keys = new Array<string>();
  const list = b!;
  let pos = 0;
  while (pos + 4 <= list.length) {
    const n = <i32>load<u32>(list.dataStart + pos);
    if (n > list.length - pos - 4) break;
    keys.push(String.UTF8.decode(list.buffer.slice(pos + 4, pos + 4 + n)));
    pos += 4 + n;
  }
  return keys;
}

// ---- Streams, sensors, MQTT, GPIO -----------------------------------------------------------

/** Emits an event on a stream; returns the code instead of throwing. */
export function tryEmit(stream: string, data: Uint8Array): i32 {
  const s = utf8(stream), d = raw(data);
  return sys_emit(s.ptr, s.len, d.ptr, d.len);
}
/** Emits an event on a stream (committed with the invocation). */
export function emit(stream: string, data: Uint8Array): void {
  check("emit " + stream, tryEmit(stream, data));
}
/** Emits text (e.g. JSON) on a stream. */
export function emitString(stream: string, text: string): void {
  emit(stream, Uint8Array.wrap(String.UTF8.encode(text)));
}

/** Reads a sensor; throws on a fault (`unavailable`) or a missing grant. */
export function sensorRead(name: string): f64 {
  const n = utf8(name);
  const out = new ArrayBuffer(8);
  check("sensor_read " + name, sys_sensor_read(n.ptr, n.len, changetype<usize>(out)));
  return load<f64>(changetype<usize>(out));
}

/** Queues an MQTT message (QoS 0 or 1) in the outbox. */
export function mqttPublish(topic: string, data: Uint8Array, qos: i32 = 1, retain: bool = false): void {
  const t = utf8(topic), d = raw(data);
  check("mqtt_publish " + topic, sys_mqtt_publish(t.ptr, t.len, d.ptr, d.len, qos, retain ? 1 : 0));
}

/** A line's level. */
export function gpioRead(line: string): bool {
  const n = utf8(line);
  return check("gpio_read " + line, sys_gpio_read(n.ptr, n.len)) == 1;
}
/** Drives a line, after the invocation commits. */
export function gpioWrite(line: string, high: bool): void {
  const n = utf8(line);
  check("gpio_write " + line, sys_gpio_write(n.ptr, n.len, high ? 1 : 0));
}
