;; A handler that does nothing but starts with 17 pages (1088 KiB) of linear memory, as a Rust
;; guest linked with rustc's default 1 MiB shadow stack would: the loader warns about the cost.
(module
  (memory (export "memory") 17)
  (func (export "outpost_handle") (result i32)
    (i32.const 0)))
