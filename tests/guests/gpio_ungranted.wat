;; Imports gpio_write although its manifest grants no GPIO line: refused at load time.
(module
  (import "outpost_v1" "gpio_write" (func (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "outpost_handle") (result i32) (i32.const 0)))
