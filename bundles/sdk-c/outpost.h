/*
 * outpost.h: the C SDK for Outpost components, host ABI v1 (docs/ABI.md). One header, no libc.
 *
 * A component is a wasm32 module that imports `outpost_v1` and exports `memory` and
 * `outpost_handle`. Write a handler returning 0 (or a negative OUTPOST_E_* code), name it with
 * OUTPOST_HANDLER, and build freestanding:
 *
 *   #include "outpost.h"
 *   static int32_t handle(void) {
 *       double celsius;
 *       int32_t rc = outpost_sensor_read(OUTPOST_STR("temperature"), &celsius);
 *       if (rc < 0) return rc;                       // errors are the ABI's negative codes
 *       return outpost_emit(OUTPOST_STR("readings"), "hi", 2);
 *   }
 *   OUTPOST_HANDLER(handle)
 *
 *   clang --target=wasm32 -O2 -ffreestanding -nostdlib -Wl,--no-entry \
 *         -Wl,-z,stack-size=16384 -Wl,--strip-all -o app.wasm app.c
 *
 * Conventions:
 * - Every call returns int32_t: >= 0 success (a length, a level, 1/0), < 0 an error code
 *   (OUTPOST_E_*); outpost_strerror names it. The SDK adds one code of its own,
 *   OUTPOST_E_NO_MEMORY, when its allocator cannot grow memory.
 * - Strings are (pointer, length) pairs, `outpost_str`; OUTPOST_STR("literal") and
 *   outpost_cstr(p) make them. Nothing needs a terminating NUL.
 * - Values of unknown length (KV values, config, payloads, names) come back in an `outpost_buf`
 *   allocated by the SDK's bump allocator: it asks with a guess and retries once with the exact
 *   length when the host reports a larger one, as the ABI prescribes. Memory is never freed:
 *   every invocation runs in a fresh instance, so the heap starts empty each time.
 * - Effects (kv_set, kv_delete, emit, mqtt_publish, gpio_write) are committed only if the
 *   handler returns 0.
 *
 * Freestanding helpers: compilers may emit calls to memcpy, memmove, memset and memcmp even in
 * code that never names them (struct copies, zeroing arrays). This header defines them as weak
 * symbols, so a module links without libc and a libc (wasi-libc) still wins if you link one.
 * `long double` arithmetic needs compiler-rt's soft-float routines: avoid it.
 *
 * All functions are `static inline`: include the header in as many files as you like.
 */
#ifndef OUTPOST_H
#define OUTPOST_H

/* Compiler headers (clang's resource directory), not libc. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Errors ------------------------------------------------------------------------------ */

/** The host's error codes (negative return values); their numbers never change. */
enum outpost_error {
    OUTPOST_OK = 0,
    OUTPOST_E_DENIED = -1,           /* the manifest does not grant this interface or name */
    OUTPOST_E_NOT_FOUND = -2,        /* no such key, variable or sensor */
    OUTPOST_E_OUT_OF_BOUNDS = -3,    /* a pointer/length pair outside memory */
    OUTPOST_E_INVALID_ARGUMENT = -4, /* not UTF-8, empty or over-long name, bad level or QoS */
    OUTPOST_E_TOO_LARGE = -5,        /* over a per-item limit or any message the device sends */
    OUTPOST_E_UNAVAILABLE = -6,      /* the backend cannot serve the call now */
    OUTPOST_E_NO_MEMORY = -100       /* the SDK's own: memory.grow failed */
};

/** A short name for an error code, for logs. */
static inline const char *outpost_strerror(int32_t code) {
    switch (code) {
    case OUTPOST_OK: return "ok";
    case OUTPOST_E_DENIED: return "denied";
    case OUTPOST_E_NOT_FOUND: return "not-found";
    case OUTPOST_E_OUT_OF_BOUNDS: return "out-of-bounds";
    case OUTPOST_E_INVALID_ARGUMENT: return "invalid-argument";
    case OUTPOST_E_TOO_LARGE: return "too-large";
    case OUTPOST_E_UNAVAILABLE: return "unavailable";
    case OUTPOST_E_NO_MEMORY: return "no-memory";
    default: return code >= 0 ? "ok" : "unknown";
    }
}

/* ---- Strings and buffers ----------------------------------------------------------------- */

/** A borrowed UTF-8 string or byte slice: pointer and length, no NUL needed. */
typedef struct {
    const char *ptr;
    size_t len;
} outpost_str;

/** Bytes the SDK allocated for a value read from the host (never freed; see above). */
typedef struct {
    uint8_t *ptr;
    size_t len;
} outpost_buf;

/** An outpost_str from a string literal, without counting at run time. */
#define OUTPOST_STR(literal) ((outpost_str){(literal), sizeof(literal) - 1})

/** An outpost_str from a NUL-terminated string. */
static inline outpost_str outpost_cstr(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return (outpost_str){s, n};
}

/** A buffer's bytes as a string. */
static inline outpost_str outpost_buf_str(outpost_buf b) {
    return (outpost_str){(const char *)b.ptr, b.len};
}

/** Whether two strings hold the same bytes. */
static inline bool outpost_str_eq(outpost_str a, outpost_str b) {
    if (a.len != b.len) return false;
    for (size_t i = 0; i < a.len; i++)
        if (a.ptr[i] != b.ptr[i]) return false;
    return true;
}

/* ---- Raw imports (module outpost_v1), exactly as docs/ABI.md declares them -------------- */

#define OUTPOST__IMPORT(name) __attribute__((import_module("outpost_v1"), import_name(#name)))
OUTPOST__IMPORT(log) int32_t outpost_sys_log(int32_t level, const void *msg, int32_t len);
OUTPOST__IMPORT(clock_wall_ms) int64_t outpost_sys_clock_wall_ms(void);
OUTPOST__IMPORT(clock_monotonic_ns) int64_t outpost_sys_clock_monotonic_ns(void);
OUTPOST__IMPORT(random_fill) int32_t outpost_sys_random_fill(void *ptr, int32_t len);
OUTPOST__IMPORT(trigger_kind) int32_t outpost_sys_trigger_kind(void);
OUTPOST__IMPORT(trigger_name) int32_t outpost_sys_trigger_name(void *out, int32_t cap);
OUTPOST__IMPORT(payload_read) int32_t outpost_sys_payload_read(void *out, int32_t cap);
OUTPOST__IMPORT(config_get)
int32_t outpost_sys_config_get(const void *name, int32_t name_len, void *out, int32_t cap);
OUTPOST__IMPORT(kv_get)
int32_t outpost_sys_kv_get(const void *ns, int32_t ns_len, const void *key, int32_t key_len,
                           void *out, int32_t cap);
OUTPOST__IMPORT(kv_set)
int32_t outpost_sys_kv_set(const void *ns, int32_t ns_len, const void *key, int32_t key_len,
                           const void *val, int32_t val_len);
OUTPOST__IMPORT(kv_delete)
int32_t outpost_sys_kv_delete(const void *ns, int32_t ns_len, const void *key, int32_t key_len);
OUTPOST__IMPORT(kv_list)
int32_t outpost_sys_kv_list(const void *ns, int32_t ns_len, const void *prefix, int32_t prefix_len,
                            void *out, int32_t cap);
OUTPOST__IMPORT(emit)
int32_t outpost_sys_emit(const void *stream, int32_t stream_len, const void *data, int32_t len);
OUTPOST__IMPORT(sensor_read) int32_t outpost_sys_sensor_read(const void *name, int32_t len, void *out);
OUTPOST__IMPORT(mqtt_publish)
int32_t outpost_sys_mqtt_publish(const void *topic, int32_t topic_len, const void *payload,
                                 int32_t payload_len, int32_t qos, int32_t retain);
OUTPOST__IMPORT(gpio_read) int32_t outpost_sys_gpio_read(const void *name, int32_t len);
OUTPOST__IMPORT(gpio_write) int32_t outpost_sys_gpio_write(const void *name, int32_t len, int32_t value);
OUTPOST__IMPORT(device_id) int32_t outpost_sys_device_id(void *out, int32_t cap);
OUTPOST__IMPORT(trigger_topic) int32_t outpost_sys_trigger_topic(void *out, int32_t cap);
#undef OUTPOST__IMPORT

/* A length as the ABI's i32; saturates so an impossible length reads as out-of-bounds. */
static inline int32_t outpost__len(size_t n) {
    return n > 0x7fffffff ? 0x7fffffff : (int32_t)n;
}

/* ---- Memory: a bump allocator over memory.grow ------------------------------------------ */

extern unsigned char __heap_base; /* provided by wasm-ld: the first byte after data and stack */
/* Weak, so every file including this header shares one heap top. */
__attribute__((weak)) uintptr_t outpost__heap_top = 0;

/** Allocates `size` bytes (8-byte aligned), growing memory as needed; NULL if it cannot. Never
 *  freed: the instance is discarded after the invocation. */
static inline void *outpost_alloc(size_t size) {
    if (outpost__heap_top == 0) outpost__heap_top = (uintptr_t)&__heap_base;
    uintptr_t start = (outpost__heap_top + 7u) & ~(uintptr_t)7u;
    if (size > SIZE_MAX - start) return NULL;
    uintptr_t end = start + size;
    uintptr_t have = (uintptr_t)__builtin_wasm_memory_size(0) * 65536u;
    if (end > have) {
        size_t pages = (size_t)((end - have + 65535u) / 65536u);
        if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) return NULL;
    }
    outpost__heap_top = end;
    return (void *)start;
}

/* Runs a buffer-filling call: a guess first, then once more with the exact length. */
typedef int32_t (*outpost__fill_fn)(const void *ctx, void *out, int32_t cap);
static inline int32_t outpost__read(size_t guess, outpost__fill_fn fill, const void *ctx,
                                    outpost_buf *out) {
    size_t cap = guess;
    for (int attempt = 0; attempt < 2; attempt++) {
        uint8_t *mem = (uint8_t *)outpost_alloc(cap ? cap : 1);
        if (!mem) return OUTPOST_E_NO_MEMORY;
        int32_t full = fill(ctx, mem, outpost__len(cap));
        if (full < 0) return full;
        if ((size_t)full <= cap) {
            out->ptr = mem;
            out->len = (size_t)full;
            return full;
        }
        cap = (size_t)full;
    }
    return OUTPOST_E_UNAVAILABLE; /* the value grew between two calls: the ABI rules it out */
}

/* ---- Log ---------------------------------------------------------------------------------- */

/** Log levels. */
typedef enum {
    OUTPOST_TRACE = 0,
    OUTPOST_DEBUG = 1,
    OUTPOST_INFO = 2,
    OUTPOST_WARN = 3,
    OUTPOST_ERROR = 4
} outpost_level;

/** Logs a message (longer than 4 KiB: truncated by the host). */
static inline int32_t outpost_log(outpost_level level, outpost_str msg) {
    return outpost_sys_log((int32_t)level, msg.ptr, outpost__len(msg.len));
}

/* ---- Clocks and randomness ---------------------------------------------------------------- */

/** The board's wall clock, ms since the Unix epoch. */
static inline int64_t outpost_wall_ms(void) { return outpost_sys_clock_wall_ms(); }
/** A monotonic clock in ns from an arbitrary origin. */
static inline int64_t outpost_monotonic_ns(void) { return outpost_sys_clock_monotonic_ns(); }
/** Fills `len` bytes (at most 64 KiB) from the OS CSPRNG. */
static inline int32_t outpost_random(void *out, size_t len) {
    return outpost_sys_random_fill(out, outpost__len(len));
}

/* ---- Trigger ------------------------------------------------------------------------------ */

/** What started the invocation. */
typedef enum {
    OUTPOST_CRON = 1,
    OUTPOST_INTERVAL = 2,
    OUTPOST_START = 3,
    OUTPOST_SENSOR = 4,
    OUTPOST_MQTT = 5,
    OUTPOST_MANUAL = 6
} outpost_trigger;

/** The trigger's kind. */
static inline outpost_trigger outpost_trigger_kind(void) {
    return (outpost_trigger)outpost_sys_trigger_kind();
}

static inline int32_t outpost__fill_name(const void *c, void *o, int32_t n) {
    (void)c;
    return outpost_sys_trigger_name(o, n);
}
static inline int32_t outpost__fill_payload(const void *c, void *o, int32_t n) {
    (void)c;
    return outpost_sys_payload_read(o, n);
}
static inline int32_t outpost__fill_topic(const void *c, void *o, int32_t n) {
    (void)c;
    return outpost_sys_trigger_topic(o, n);
}
static inline int32_t outpost__fill_device(const void *c, void *o, int32_t n) {
    (void)c;
    return outpost_sys_device_id(o, n);
}

/** The trigger's name from the manifest. */
static inline int32_t outpost_trigger_name(outpost_buf *out) {
    return outpost__read(64, outpost__fill_name, NULL, out);
}
/** The raw trigger payload (docs/ABI.md, "Trigger payloads"). */
static inline int32_t outpost_payload(outpost_buf *out) {
    return outpost__read(64, outpost__fill_payload, NULL, out);
}
/** The topic an `mqtt` trigger's message arrived on (empty for other triggers). */
static inline int32_t outpost_trigger_topic(outpost_buf *out) {
    return outpost__read(128, outpost__fill_topic, NULL, out);
}
/** The id of the device running the component (`local` under `outpost up`). */
static inline int32_t outpost_device_id(outpost_buf *out) {
    return outpost__read(64, outpost__fill_device, NULL, out);
}

static inline double outpost__f64_le(const uint8_t *b) {
    uint64_t bits = 0;
    for (int i = 7; i >= 0; i--) bits = (bits << 8) | b[i];
    double value;
    __builtin_memcpy(&value, &bits, sizeof value);
    return value;
}

/** Decodes a sensor payload (the sample, and the previous one: NaN on the first) from the
 *  trigger payload; false when the payload is not 16 bytes. Reads the payload whatever the
 *  trigger kind, so `outpost invoke --payload` can replay samples. */
static inline bool outpost_sensor_payload(double *sample, double *previous) {
    outpost_buf p;
    if (outpost_payload(&p) != 16) return false;
    *sample = outpost__f64_le(p.ptr);
    *previous = outpost__f64_le(p.ptr + 8);
    return true;
}

/** The scheduled wall time (ms) of a cron or interval run; false for other triggers. */
static inline bool outpost_scheduled_ms(int64_t *ms) {
    outpost_trigger k = outpost_trigger_kind();
    if (k != OUTPOST_CRON && k != OUTPOST_INTERVAL) return false;
    outpost_buf p;
    if (outpost_payload(&p) != 8) return false;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p.ptr[i];
    *ms = (int64_t)v;
    return true;
}

/* ---- Config ------------------------------------------------------------------------------- */

static inline int32_t outpost__fill_config(const void *c, void *o, int32_t n) {
    const outpost_str *name = (const outpost_str *)c;
    return outpost_sys_config_get(name->ptr, outpost__len(name->len), o, n);
}
/** A config variable's value; OUTPOST_E_NOT_FOUND if unset. */
static inline int32_t outpost_config_get(outpost_str name, outpost_buf *out) {
    return outpost__read(64, outpost__fill_config, &name, out);
}

/* ---- Key-value ---------------------------------------------------------------------------- */

typedef struct {
    outpost_str ns, key;
} outpost__kv_ctx;
static inline int32_t outpost__fill_kv(const void *c, void *o, int32_t n) {
    const outpost__kv_ctx *k = (const outpost__kv_ctx *)c;
    return outpost_sys_kv_get(k->ns.ptr, outpost__len(k->ns.len), k->key.ptr,
                              outpost__len(k->key.len), o, n);
}
static inline int32_t outpost__fill_list(const void *c, void *o, int32_t n) {
    const outpost__kv_ctx *k = (const outpost__kv_ctx *)c;
    return outpost_sys_kv_list(k->ns.ptr, outpost__len(k->ns.len), k->key.ptr,
                               outpost__len(k->key.len), o, n);
}

/** A value; OUTPOST_E_NOT_FOUND if the key is absent. Sees this invocation's own writes. */
static inline int32_t outpost_kv_get(outpost_str ns, outpost_str key, outpost_buf *out) {
    outpost__kv_ctx ctx = {ns, key};
    return outpost__read(64, outpost__fill_kv, &ctx, out);
}
/** Writes a value (committed with the invocation). */
static inline int32_t outpost_kv_set(outpost_str ns, outpost_str key, const void *val, size_t len) {
    return outpost_sys_kv_set(ns.ptr, outpost__len(ns.len), key.ptr, outpost__len(key.len), val,
                              outpost__len(len));
}
/** Deletes a key: 1 if it existed, 0 if not. */
static inline int32_t outpost_kv_delete(outpost_str ns, outpost_str key) {
    return outpost_sys_kv_delete(ns.ptr, outpost__len(ns.len), key.ptr, outpost__len(key.len));
}
/** The keys starting with `prefix`, encoded as the ABI lists them; walk with outpost_kv_next. */
static inline int32_t outpost_kv_list(outpost_str ns, outpost_str prefix, outpost_buf *out) {
    outpost__kv_ctx ctx = {ns, prefix};
    return outpost__read(256, outpost__fill_list, &ctx, out);
}
/** The next key of a list at `*pos` (start at 0); false at the end or on a malformed list. */
static inline bool outpost_kv_next(outpost_buf list, size_t *pos, outpost_str *key) {
    if (*pos + 4 > list.len) return false;
    const uint8_t *p = list.ptr + *pos;
    size_t n = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 | (size_t)p[3] << 24;
    if (n > list.len - *pos - 4) return false;
    key->ptr = (const char *)p + 4;
    key->len = n;
    *pos += 4 + n;
    return true;
}

/* ---- Streams, sensors, MQTT, GPIO ---------------------------------------------------------- */

/** Emits an event on a stream (committed with the invocation). */
static inline int32_t outpost_emit(outpost_str stream, const void *data, size_t len) {
    return outpost_sys_emit(stream.ptr, outpost__len(stream.len), data, outpost__len(len));
}
/** Reads a sensor into `*value`; OUTPOST_E_UNAVAILABLE on a sensor fault. */
static inline int32_t outpost_sensor_read(outpost_str name, double *value) {
    uint8_t raw[8];
    int32_t rc = outpost_sys_sensor_read(name.ptr, outpost__len(name.len), raw);
    if (rc >= 0) *value = outpost__f64_le(raw);
    return rc;
}
/** Queues an MQTT message (QoS 0 or 1) in the outbox. */
static inline int32_t outpost_mqtt_publish(outpost_str topic, const void *payload, size_t len,
                                           int32_t qos, bool retain) {
    return outpost_sys_mqtt_publish(topic.ptr, outpost__len(topic.len), payload, outpost__len(len),
                                    qos, retain ? 1 : 0);
}
/** A line's level (0 or 1), or an error. */
static inline int32_t outpost_gpio_read(outpost_str line) {
    return outpost_sys_gpio_read(line.ptr, outpost__len(line.len));
}
/** Drives a line (0 low, 1 high) after the invocation commits. */
static inline int32_t outpost_gpio_write(outpost_str line, int32_t level) {
    return outpost_sys_gpio_write(line.ptr, outpost__len(line.len), level);
}

/* ---- Text: a fixed-capacity writer and number parsing ------------------------------------ */

/** Text built into caller-provided memory; writes past `cap` set `overflow` and are dropped. */
typedef struct {
    char *ptr;
    size_t len, cap;
    bool overflow;
} outpost_fmt;

/** A writer over `cap` bytes at `mem`. */
static inline outpost_fmt outpost_fmt_new(char *mem, size_t cap) {
    return (outpost_fmt){mem, 0, cap, false};
}
/** Appends a string. */
static inline void outpost_fmt_str(outpost_fmt *f, outpost_str s) {
    for (size_t i = 0; i < s.len; i++) {
        if (f->len == f->cap) {
            f->overflow = true;
            return;
        }
        f->ptr[f->len++] = s.ptr[i];
    }
}
/** Appends a signed decimal. */
static inline void outpost_fmt_i64(outpost_fmt *f, int64_t v) {
    char digits[20];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) outpost_fmt_str(f, OUTPOST_STR("-"));
    while (n) {
        char c = digits[--n];
        outpost_fmt_str(f, (outpost_str){&c, 1});
    }
}
/** What has been written. */
static inline outpost_str outpost_fmt_view(const outpost_fmt *f) {
    return (outpost_str){f->ptr, f->len};
}

/** Parses an optionally signed decimal integer (the whole string); false if it is not one. */
static inline bool outpost_parse_i64(outpost_str s, int64_t *out) {
    size_t i = 0;
    bool negative = false;
    if (s.len && (s.ptr[0] == '-' || s.ptr[0] == '+')) negative = s.ptr[i++] == '-';
    if (i == s.len) return false;
    uint64_t v = 0;
    for (; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9') return false;
        uint64_t next = v * 10 + (uint64_t)(s.ptr[i] - '0');
        if (next / 10 != v || next > (uint64_t)INT64_MAX + (negative ? 1u : 0u)) return false;
        v = next;
    }
    *out = negative ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

/* ---- The export ---------------------------------------------------------------------------- */

/** Exports `outpost_handle` calling `int32_t fn(void)`: 0 commits the invocation's effects, a
 *  negative code discards them. */
#define OUTPOST_HANDLER(fn)                                                                        \
    __attribute__((export_name("outpost_handle"))) int32_t outpost_handle(void) { return fn(); }

/* ---- Freestanding helpers a compiler may call (weak: a linked libc wins) ------------------- */

__attribute__((weak, no_builtin("memcpy"))) void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    while (n--) *d++ = *s++;
    return dst;
}
__attribute__((weak, no_builtin("memmove"))) void *memmove(void *dst, const void *src, size_t n) {
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    if (d < s) {
        while (n--) *d++ = *s++;
    } else {
        while (n--) d[n] = s[n];
    }
    return dst;
}
__attribute__((weak, no_builtin("memset"))) void *memset(void *dst, int c, size_t n) {
    unsigned char *d = (unsigned char *)dst;
    while (n--) *d++ = (unsigned char)c;
    return dst;
}
__attribute__((weak, no_builtin("memcmp"))) int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    for (; n; n--, x++, y++)
        if (*x != *y) return *x - *y;
    return 0;
}

#ifdef __cplusplus
}
#endif
#endif /* OUTPOST_H */
