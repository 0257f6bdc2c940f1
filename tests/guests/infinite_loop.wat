;; Spins forever: must be stopped by the fuel limit.
(module
  (memory (export "memory") 1)
  (func (export "outpost_handle") (result i32)
    (loop $spin (br $spin))
    (i32.const 0)))
