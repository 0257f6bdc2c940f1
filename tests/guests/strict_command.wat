;; Handles an MQTT command strictly: a payload that does not start with '{' is malformed and the
;; guest aborts (wasm `unreachable`, as a Rust guest's panic would); otherwise it emits the
;; payload to stream "cmd".
(module
  (import "outpost_v1" "payload_read" (func $payload_read (param i32 i32) (result i32)))
  (import "outpost_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "cmd")
  (func (export "outpost_handle") (result i32)
    (local $len i32)
    (local.set $len (call $payload_read (i32.const 1024) (i32.const 1024)))
    (if (i32.gt_u (local.get $len) (i32.const 1024)) (then (return (i32.const 2))))
    ;; An empty payload leaves byte 1024 at zero: malformed too.
    (if (i32.ne (i32.load8_u (i32.const 1024)) (i32.const 123)) (then (unreachable)))
    (drop (call $emit (i32.const 0) (i32.const 3) (i32.const 1024) (local.get $len)))
    (i32.const 0)))
