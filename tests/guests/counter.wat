;; Increments a global and emits its value: every invocation must see a fresh instance, so the
;; value is always 1.
(module
  (import "outpost_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))
  (data (i32.const 0) "count")
  (func (export "outpost_handle") (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    ;; memory[16] = '0' + calls
    (i32.store8 (i32.const 16) (i32.add (i32.const 48) (global.get $calls)))
    ;; memory[17] is changed here; a reused instance would still show it next time
    (if (i32.ne (i32.load8_u (i32.const 17)) (i32.const 0)) (then (return (i32.const 7))))
    (i32.store8 (i32.const 17) (i32.const 1))
    (drop (call $emit (i32.const 0) (i32.const 5) (i32.const 16) (i32.const 1)))
    (i32.const 0)))
