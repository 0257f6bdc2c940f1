/*
 * Example app (C): watches the temperature sensor. Each sample counts in KV `state`/`count`, is
 * emitted to `readings` as {"n":N,"centi":C} (C = the sample in hundredths, rounded half away
 * from zero), and an upward crossing of the `threshold_centi` variable also goes to `alerts` as
 * {"n":N,"centi":C,"threshold":T}. The Rust, Zig and AssemblyScript watchers do exactly the same,
 * and the tests check that they emit the same events for the same samples.
 */
#include "outpost.h"

static int64_t centi(double value) {
    double scaled = value * 100.0;
    return (int64_t)(scaled + (scaled < 0 ? -0.5 : 0.5));
}

static int32_t watch(void) {
    double sample, previous;
    if (!outpost_sensor_payload(&sample, &previous) || !(sample - sample == 0.0)) {
        outpost_log(OUTPOST_ERROR, OUTPOST_STR("expected a sensor payload with a finite sample"));
        return OUTPOST_E_INVALID_ARGUMENT;
    }

    int64_t threshold = 2500;
    outpost_buf text;
    int32_t rc = outpost_config_get(OUTPOST_STR("threshold_centi"), &text);
    if (rc >= 0 && !outpost_parse_i64(outpost_buf_str(text), &threshold)) {
        outpost_log(OUTPOST_ERROR, OUTPOST_STR("threshold_centi is not an integer"));
        return OUTPOST_E_INVALID_ARGUMENT;
    }
    if (rc < 0 && rc != OUTPOST_E_NOT_FOUND) return rc;

    int64_t count = 0;
    rc = outpost_kv_get(OUTPOST_STR("state"), OUTPOST_STR("count"), &text);
    if (rc >= 0 && !outpost_parse_i64(outpost_buf_str(text), &count)) count = 0;
    if (rc < 0 && rc != OUTPOST_E_NOT_FOUND) return rc;
    count += 1;

    char mem[96];
    outpost_fmt f = outpost_fmt_new(mem, sizeof mem);
    outpost_fmt_i64(&f, count);
    rc = outpost_kv_set(OUTPOST_STR("state"), OUTPOST_STR("count"), f.ptr, f.len);
    if (rc < 0) return rc;

    int64_t now = centi(sample);
    f = outpost_fmt_new(mem, sizeof mem);
    outpost_fmt_str(&f, OUTPOST_STR("{\"n\":"));
    outpost_fmt_i64(&f, count);
    outpost_fmt_str(&f, OUTPOST_STR(",\"centi\":"));
    outpost_fmt_i64(&f, now);
    outpost_fmt_str(&f, OUTPOST_STR("}"));
    rc = outpost_emit(OUTPOST_STR("readings"), f.ptr, f.len);
    if (rc < 0) return rc;

    if (previous == previous && centi(previous) < threshold && now >= threshold) {
        f.len -= 1; /* reopen the object: same fields, plus the threshold */
        outpost_fmt_str(&f, OUTPOST_STR(",\"threshold\":"));
        outpost_fmt_i64(&f, threshold);
        outpost_fmt_str(&f, OUTPOST_STR("}"));
        rc = outpost_emit(OUTPOST_STR("alerts"), f.ptr, f.len);
        if (rc < 0) return rc;
        outpost_log(OUTPOST_WARN, OUTPOST_STR("temperature crossed the threshold"));
    }
    return OUTPOST_OK;
}

OUTPOST_HANDLER(watch)
