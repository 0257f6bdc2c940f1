;; Grows memory one page at a time without end: must be stopped by the memory limit.
(module
  (memory (export "memory") 1)
  (func (export "outpost_handle") (result i32)
    (loop $grow
      (drop (memory.grow (i32.const 1)))
      (br $grow))
    (i32.const 0)))
