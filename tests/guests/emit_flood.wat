;; Emits 1 KiB events in a loop: must be stopped by the output limit, and commit none of them.
(module
  (import "outpost_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "flood")
  (func (export "outpost_handle") (result i32)
    (loop $again
      (drop (call $emit (i32.const 0) (i32.const 5) (i32.const 1024) (i32.const 1024)))
      (br $again))
    (i32.const 0)))
