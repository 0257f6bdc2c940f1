//! Example app (Zig): watches the temperature sensor. Each sample counts in KV `state`/`count`,
//! is emitted to `readings` as {"n":N,"centi":C} (C = the sample in hundredths, rounded half
//! away from zero), and an upward crossing of the `threshold_centi` variable also goes to
//! `alerts` as {"n":N,"centi":C,"threshold":T}. The Rust, C and AssemblyScript watchers do
//! exactly the same; the tests check that they emit the same events for the same samples.
const std = @import("std");
const outpost = @import("outpost");

pub const panic = outpost.panic;

fn centi(value: f64) i64 {
    const scaled = value * 100.0;
    return @intFromFloat(scaled + @as(f64, if (scaled < 0) -0.5 else 0.5));
}

fn watch() !void {
    const a = outpost.allocator;
    const sample = (try outpost.sensorSample()) orelse return error.InvalidArgument;
    if (!std.math.isFinite(sample.value)) return error.InvalidArgument;

    const threshold: i64 = if (try outpost.configGet(a, "threshold_centi")) |text|
        std.fmt.parseInt(i64, text, 10) catch return error.InvalidArgument
    else
        2500;

    var count: i64 = 0;
    if (try outpost.kvGet(a, "state", "count")) |text| {
        count = std.fmt.parseInt(i64, text, 10) catch 0;
    }
    count += 1;
    var digits: [24]u8 = undefined;
    try outpost.kvSet("state", "count", std.fmt.bufPrint(&digits, "{d}", .{count}) catch unreachable);

    const now = centi(sample.value);
    try outpost.emitFmt("readings", "{{\"n\":{d},\"centi\":{d}}}", .{ count, now });
    if (!std.math.isNan(sample.previous) and centi(sample.previous) < threshold and now >= threshold) {
        try outpost.emitFmt("alerts", "{{\"n\":{d},\"centi\":{d},\"threshold\":{d}}}", .{ count, now, threshold });
        outpost.log(.warn, "temperature crossed the threshold");
    }
}

export fn outpost_handle() i32 {
    return outpost.run(watch);
}
