;; Emits its config variable `mode` to the stream `beat` on every run, so each app version's
;; behaviour shows in the events; a mode starting with "t" ("trap") traps instead.
(module
  (import "outpost_v1" "config_get" (func $config_get (param i32 i32 i32 i32) (result i32)))
  (import "outpost_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "beat")
  (data (i32.const 8) "mode")
  (func (export "outpost_handle") (result i32)
    (local $len i32)
    (local.set $len (call $config_get (i32.const 8) (i32.const 4) (i32.const 64) (i32.const 256)))
    (if (i32.lt_s (local.get $len) (i32.const 1)) (then (return (i32.const 1))))
    (if (i32.eq (i32.load8_u (i32.const 64)) (i32.const 116)) (then unreachable))
    (drop (call $emit (i32.const 0) (i32.const 4) (i32.const 64) (local.get $len)))
    (i32.const 0)))
