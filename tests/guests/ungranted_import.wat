;; Imports kv_set although its manifest grants no key-value namespace: refused at load time.
(module
  (import "outpost_v1" "kv_set" (func (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "outpost_handle") (result i32) (i32.const 0)))
