;; Handles an MQTT command: emits its payload to stream "cmd" and records it in KV namespace
;; "cmds". A payload starting with 's' first spins for a while, so a test can kill the agent
;; after the message was acknowledged and before its effects are committed.
(module
  (import "outpost_v1" "payload_read" (func $payload_read (param i32 i32) (result i32)))
  (import "outpost_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
  (import "outpost_v1" "kv_set" (func $kv_set (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "cmd")
  (data (i32.const 8) "cmds")
  (func (export "outpost_handle") (result i32)
    (local $len i32)
    (local $i i32)
    (local.set $len (call $payload_read (i32.const 1024) (i32.const 1024)))
    (if (i32.gt_u (local.get $len) (i32.const 1024)) (then (return (i32.const 2))))
    (if (i32.eq (i32.load8_u (i32.const 1024)) (i32.const 115))
      (then
        (block $done
          (loop $spin
            (br_if $done (i32.ge_u (local.get $i) (i32.const 150000000)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $spin)))))
    (drop (call $emit (i32.const 0) (i32.const 3) (i32.const 1024) (local.get $len)))
    (drop (call $kv_set (i32.const 8) (i32.const 4) (i32.const 1024) (local.get $len) (i32.const 8) (i32.const 4)))
    (i32.const 0)))
