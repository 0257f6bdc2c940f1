//! The Zig SDK for Outpost components, host ABI v1 (docs/ABI.md). One file; import it as the
//! module `outpost`.
//!
//! A component exports `outpost_handle` and imports only from `outpost_v1`:
//!
//!     const outpost = @import("outpost");
//!     pub const panic = outpost.panic; // log the panic message, then trap
//!     fn handle() !void {
//!         const celsius = try outpost.sensorRead("temperature");
//!         try outpost.emitFmt("readings", "{d:.2}", .{celsius});
//!     }
//!     export fn outpost_handle() i32 {
//!         return outpost.run(handle);
//!     }
//!
//!     zig build-exe -target wasm32-freestanding -O ReleaseSmall -fno-entry -rdynamic \
//!         --stack 16384 -fstrip --dep outpost -Mroot=app.zig -Moutpost=outpost.zig
//!
//! Errors are Zig errors (`outpost.Error`: one per ABI code); absent keys and unset variables
//! are `null`. Values of unknown length are read into memory from an allocator (`allocator`,
//! Zig's wasm allocator, unless you pass your own): a guess first, then once more with the exact
//! length the host reports. Freeing is optional: every invocation runs in a fresh instance.
//! Effects (kv, emit, publish, gpio writes) are committed only if the handler succeeds.

const std = @import("std");

/// The host's error codes as Zig errors, plus the SDK's own.
pub const Error = error{
    /// The manifest does not grant this interface or name.
    Denied,
    /// No such key, variable or sensor.
    NotFound,
    /// A pointer/length pair outside memory.
    OutOfBounds,
    /// Not UTF-8, an empty or over-long name, a bad level or QoS.
    InvalidArgument,
    /// Over a per-item limit, or too large for any message the device can send.
    TooLarge,
    /// The backend cannot serve the call now (sensor fault, I/O error).
    Unavailable,
    /// A code this SDK does not know (a newer host).
    Unknown,
    /// The allocator could not grow memory.
    OutOfMemory,
};

/// The raw imports, exactly as docs/ABI.md declares them.
pub const sys = struct {
    pub extern "outpost_v1" fn log(level: i32, msg: [*]const u8, len: i32) i32;
    pub extern "outpost_v1" fn clock_wall_ms() i64;
    pub extern "outpost_v1" fn clock_monotonic_ns() i64;
    pub extern "outpost_v1" fn random_fill(out: [*]u8, len: i32) i32;
    pub extern "outpost_v1" fn trigger_kind() i32;
    pub extern "outpost_v1" fn trigger_name(out: [*]u8, cap: i32) i32;
    pub extern "outpost_v1" fn payload_read(out: [*]u8, cap: i32) i32;
    pub extern "outpost_v1" fn config_get(name: [*]const u8, name_len: i32, out: [*]u8, cap: i32) i32;
    pub extern "outpost_v1" fn kv_get(ns: [*]const u8, ns_len: i32, key: [*]const u8, key_len: i32, out: [*]u8, cap: i32) i32;
    pub extern "outpost_v1" fn kv_set(ns: [*]const u8, ns_len: i32, key: [*]const u8, key_len: i32, val: [*]const u8, val_len: i32) i32;
    pub extern "outpost_v1" fn kv_delete(ns: [*]const u8, ns_len: i32, key: [*]const u8, key_len: i32) i32;
    pub extern "outpost_v1" fn kv_list(ns: [*]const u8, ns_len: i32, prefix: [*]const u8, prefix_len: i32, out: [*]u8, cap: i32) i32;
    pub extern "outpost_v1" fn emit(stream: [*]const u8, stream_len: i32, data: [*]const u8, len: i32) i32;
    pub extern "outpost_v1" fn sensor_read(name: [*]const u8, len: i32, out: [*]u8) i32;
    pub extern "outpost_v1" fn mqtt_publish(topic: [*]const u8, topic_len: i32, payload: [*]const u8, len: i32, qos: i32, retain: i32) i32;
    pub extern "outpost_v1" fn gpio_read(name: [*]const u8, len: i32) i32;
    pub extern "outpost_v1" fn gpio_write(name: [*]const u8, len: i32, value: i32) i32;
    pub extern "outpost_v1" fn device_id(out: [*]u8, cap: i32) i32;
    pub extern "outpost_v1" fn trigger_topic(out: [*]u8, cap: i32) i32;
};

/// The allocator the convenience functions use.
pub const allocator = std.heap.wasm_allocator;

/// A return value as success (`>= 0`) or its error.
pub fn check(rc: i32) Error!u32 {
    if (rc >= 0) return @intCast(rc);
    return switch (rc) {
        -1 => error.Denied,
        -2 => error.NotFound,
        -3 => error.OutOfBounds,
        -4 => error.InvalidArgument,
        -5 => error.TooLarge,
        -6 => error.Unavailable,
        else => error.Unknown,
    };
}

/// The ABI code for an error (`-100` for the SDK's own), as a handler's return value.
pub fn code(err: anyerror) i32 {
    return switch (err) {
        error.Denied => -1,
        error.NotFound => -2,
        error.OutOfBounds => -3,
        error.InvalidArgument => -4,
        error.TooLarge => -5,
        error.Unavailable => -6,
        else => -100,
    };
}

fn len(bytes: []const u8) i32 {
    // Saturates: an impossible length makes the host answer out-of-bounds, never wrap.
    return @intCast(@min(bytes.len, std.math.maxInt(i32)));
}

/// Runs a buffer-filling call `filler.fill(out, cap)`: a guess, then the exact length.
fn readAlloc(a: std.mem.Allocator, guess: usize, filler: anytype) Error![]u8 {
    var cap = guess;
    for (0..2) |_| {
        const buf = try a.alloc(u8, cap);
        const full = check(filler.fill(buf.ptr, len(buf))) catch |e| {
            a.free(buf);
            return e;
        };
        if (full <= cap) return a.realloc(buf, full) catch buf[0..full];
        a.free(buf);
        cap = full;
    }
    return error.Unavailable; // the value grew between two calls: the ABI rules it out
}

// ---- Handler --------------------------------------------------------------------------------

/// Runs a handler for `outpost_handle`: `0` on success; on an error, logs it at error level and
/// returns its code, so nothing is committed.
pub fn run(comptime handler: fn () anyerror!void) i32 {
    handler() catch |err| {
        logFmt(.err, "handler failed: {s}", .{@errorName(err)});
        return code(err);
    };
    return 0;
}

/// The panic handler to install in the root file (`pub const panic = outpost.panic;`): logs
/// the message at error level, then traps.
pub const panic = std.debug.FullPanic(panicFn);

fn panicFn(message: []const u8, _: ?usize) noreturn {
    logFmt(.err, "panic: {s}", .{message});
    @trap();
}

// ---- Log ------------------------------------------------------------------------------------

/// Log levels.
pub const Level = enum(i32) { trace = 0, debug = 1, info = 2, warn = 3, err = 4 };

/// Logs a message (over 4 KiB: truncated by the host).
pub fn log(level: Level, message: []const u8) void {
    _ = sys.log(@intFromEnum(level), message.ptr, len(message));
}

/// Logs a formatted message (up to 512 bytes; longer is cut).
pub fn logFmt(level: Level, comptime format: []const u8, args: anytype) void {
    var buf: [512]u8 = undefined;
    const text = std.fmt.bufPrint(&buf, format, args) catch buf[0..];
    log(level, text);
}

// ---- Clocks, randomness ---------------------------------------------------------------------

/// The board's wall clock, ms since the Unix epoch.
pub fn wallMs() i64 {
    return sys.clock_wall_ms();
}
/// A monotonic clock in ns from an arbitrary origin.
pub fn monotonicNs() i64 {
    return sys.clock_monotonic_ns();
}
/// Fills `out` (at most 64 KiB) from the OS CSPRNG.
pub fn randomFill(out: []u8) Error!void {
    _ = try check(sys.random_fill(out.ptr, len(out)));
}

// ---- Trigger --------------------------------------------------------------------------------

/// What started the invocation.
pub const TriggerKind = enum(i32) { cron = 1, interval = 2, start = 3, sensor = 4, mqtt = 5, manual = 6, _ };

/// The trigger's kind.
pub fn triggerKind() TriggerKind {
    return @enumFromInt(sys.trigger_kind());
}

const NoArgs = struct {
    f: *const fn ([*]u8, i32) callconv(.c) i32,
    fn fill(self: NoArgs, out: [*]u8, cap: i32) i32 {
        return self.f(out, cap);
    }
};

/// The trigger's name from the manifest.
pub fn triggerName(a: std.mem.Allocator) Error![]u8 {
    return readAlloc(a, 64, NoArgs{ .f = &sys.trigger_name });
}
/// The raw trigger payload (docs/ABI.md, "Trigger payloads").
pub fn payload(a: std.mem.Allocator) Error![]u8 {
    return readAlloc(a, 64, NoArgs{ .f = &sys.payload_read });
}
/// The topic an `mqtt` trigger's message arrived on (empty for other triggers).
pub fn triggerTopic(a: std.mem.Allocator) Error![]u8 {
    return readAlloc(a, 128, NoArgs{ .f = &sys.trigger_topic });
}
/// The id of the device running the component (`local` under `outpost up`).
pub fn deviceId(a: std.mem.Allocator) Error![]u8 {
    return readAlloc(a, 64, NoArgs{ .f = &sys.device_id });
}

/// A sensor trigger's sample and the one before it (NaN on the first).
pub const SensorSample = struct { value: f64, previous: f64 };

/// The payload as a sensor sample, whatever the trigger kind (so `outpost invoke --payload`
/// can replay samples); null when it is not 16 bytes.
pub fn sensorSample() Error!?SensorSample {
    var buf: [16]u8 = undefined;
    const full = try check(sys.payload_read(&buf, buf.len));
    if (full != 16) return null;
    return .{
        .value = @bitCast(std.mem.readInt(u64, buf[0..8], .little)),
        .previous = @bitCast(std.mem.readInt(u64, buf[8..16], .little)),
    };
}

/// The scheduled wall time (ms) of a cron or interval run; null for other triggers.
pub fn scheduledMs() Error!?i64 {
    switch (triggerKind()) {
        .cron, .interval => {},
        else => return null,
    }
    var buf: [8]u8 = undefined;
    if (try check(sys.payload_read(&buf, buf.len)) != 8) return null;
    return std.mem.readInt(i64, &buf, .little);
}

// ---- Config ---------------------------------------------------------------------------------

/// A config variable's value, or null when it is unset.
pub fn configGet(a: std.mem.Allocator, name: []const u8) Error!?[]u8 {
    const Filler = struct {
        name: []const u8,
        fn fill(self: @This(), out: [*]u8, cap: i32) i32 {
            return sys.config_get(self.name.ptr, len(self.name), out, cap);
        }
    };
    return readAlloc(a, 64, Filler{ .name = name }) catch |e| switch (e) {
        error.NotFound => null,
        else => e,
    };
}

// ---- Key-value ------------------------------------------------------------------------------

// Generic over the call, so a module imports only the functions it uses.
fn KvFiller(comptime list: bool) type {
    return struct {
        ns: []const u8,
        key: []const u8,
        fn fill(self: @This(), out: [*]u8, cap: i32) i32 {
            return if (list)
                sys.kv_list(self.ns.ptr, len(self.ns), self.key.ptr, len(self.key), out, cap)
            else
                sys.kv_get(self.ns.ptr, len(self.ns), self.key.ptr, len(self.key), out, cap);
        }
    };
}

/// A value, or null when the key is absent. Sees this invocation's own writes.
pub fn kvGet(a: std.mem.Allocator, ns: []const u8, key: []const u8) Error!?[]u8 {
    return readAlloc(a, 64, KvFiller(false){ .ns = ns, .key = key }) catch |e| switch (e) {
        error.NotFound => null,
        else => e,
    };
}
/// Writes a value (committed with the invocation).
pub fn kvSet(ns: []const u8, key: []const u8, value: []const u8) Error!void {
    _ = try check(sys.kv_set(ns.ptr, len(ns), key.ptr, len(key), value.ptr, len(value)));
}
/// Deletes a key; true if it existed.
pub fn kvDelete(ns: []const u8, key: []const u8) Error!bool {
    return try check(sys.kv_delete(ns.ptr, len(ns), key.ptr, len(key))) == 1;
}

/// The keys of a `kvList` answer, in order.
pub const KeyIterator = struct {
    list: []const u8,
    pos: usize = 0,
    /// The next key, or null at the end.
    pub fn next(self: *KeyIterator) ?[]const u8 {
        if (self.pos + 4 > self.list.len) return null;
        const n = std.mem.readInt(u32, self.list[self.pos..][0..4], .little);
        if (n > self.list.len - self.pos - 4) return null;
        const key = self.list[self.pos + 4 ..][0..n];
        self.pos += 4 + n;
        return key;
    }
};
/// The keys starting with `prefix`.
pub fn kvList(a: std.mem.Allocator, ns: []const u8, prefix: []const u8) Error!KeyIterator {
    return .{ .list = try readAlloc(a, 256, KvFiller(true){ .ns = ns, .key = prefix }) };
}

// ---- Streams, sensors, MQTT, GPIO -----------------------------------------------------------

/// Emits an event on a stream (committed with the invocation).
pub fn emit(stream: []const u8, data: []const u8) Error!void {
    _ = try check(sys.emit(stream.ptr, len(stream), data.ptr, len(data)));
}
/// Emits formatted text (up to 1 KiB) on a stream.
pub fn emitFmt(stream: []const u8, comptime format: []const u8, args: anytype) Error!void {
    var buf: [1024]u8 = undefined;
    const text = std.fmt.bufPrint(&buf, format, args) catch return error.TooLarge;
    try emit(stream, text);
}
/// Reads a sensor.
pub fn sensorRead(name: []const u8) Error!f64 {
    var out: [8]u8 = undefined;
    _ = try check(sys.sensor_read(name.ptr, len(name), &out));
    return @bitCast(std.mem.readInt(u64, &out, .little));
}
/// MQTT quality of service.
pub const Qos = enum(i32) { at_most_once = 0, at_least_once = 1 };
/// Queues an MQTT message in the outbox.
pub fn mqttPublish(topic: []const u8, data: []const u8, qos: Qos, retain: bool) Error!void {
    _ = try check(sys.mqtt_publish(topic.ptr, len(topic), data.ptr, len(data), @intFromEnum(qos), @intFromBool(retain)));
}
/// A line's level.
pub fn gpioRead(line: []const u8) Error!bool {
    return try check(sys.gpio_read(line.ptr, len(line))) == 1;
}
/// Drives a line, after the invocation commits.
pub fn gpioWrite(line: []const u8, high: bool) Error!void {
    _ = try check(sys.gpio_write(line.ptr, len(line), @intFromBool(high)));
}
