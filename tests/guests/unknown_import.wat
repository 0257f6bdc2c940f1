;; Imports a function the Outpost ABI does not define: must be refused at load time.
(module
  (import "env" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "outpost_handle") (result i32) (i32.const 0)))
