;; Exercises gpio_read and gpio_write and emits every return code, one signed byte each, to the
;; stream "results" (in the order of the calls below). The manual payload picks a variant:
;; "crash" traps after everything (nothing may be committed or driven), "flood" writes a line
;; in a loop until the output limit stops it, anything else returns 0.
(module
  (import "outpost_v1" "gpio_read" (func $read (param i32 i32) (result i32)))
  (import "outpost_v1" "gpio_write" (func $write (param i32 i32 i32) (result i32)))
  (import "outpost_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
  (import "outpost_v1" "payload_read" (func $payload (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "door")
  (data (i32.const 8) "secret")
  (data (i32.const 16) "relay1")
  (data (i32.const 24) "ghost")
  (data (i32.const 32) "results")
  (func $record (param $index i32) (param $value i32)
    (i32.store8 (i32.add (i32.const 64) (local.get $index)) (local.get $value)))
  (func (export "outpost_handle") (result i32)
    (drop (call $payload (i32.const 128) (i32.const 16)))
    ;; "flood": 16 bytes of output per write, forever
    (if (i32.eq (i32.load8_u (i32.const 128)) (i32.const 102))
      (then (loop $again
        (drop (call $write (i32.const 16) (i32.const 6) (i32.const 1)))
        (br $again))))
    ;; 0: read of an in: line -> its level
    (call $record (i32.const 0) (call $read (i32.const 0) (i32.const 4)))
    ;; 1: read of an ungranted line -> -1
    (call $record (i32.const 1) (call $read (i32.const 8) (i32.const 6)))
    ;; 2: write of an in:-only line -> -1
    (call $record (i32.const 2) (call $write (i32.const 0) (i32.const 4) (i32.const 1)))
    ;; 3: write of an ungranted line -> -1
    (call $record (i32.const 3) (call $write (i32.const 8) (i32.const 6) (i32.const 1)))
    ;; 4: read of an out: line before writing it -> the board's level
    (call $record (i32.const 4) (call $read (i32.const 16) (i32.const 6)))
    ;; 5: write of an out: line -> 0 (buffered)
    (call $record (i32.const 5) (call $write (i32.const 16) (i32.const 6) (i32.const 1)))
    ;; 6: read it back -> 1, the pending value
    (call $record (i32.const 6) (call $read (i32.const 16) (i32.const 6)))
    ;; 7: a value that is not 0 or 1 -> -4
    (call $record (i32.const 7) (call $write (i32.const 16) (i32.const 6) (i32.const 2)))
    ;; 8: read of a granted line the board does not have -> -2
    (call $record (i32.const 8) (call $read (i32.const 24) (i32.const 5)))
    ;; 9: write of it -> 0 (buffered; applying it after the commit fails and is logged)
    (call $record (i32.const 9) (call $write (i32.const 24) (i32.const 5) (i32.const 0)))
    ;; 10: a name reaching past the end of memory -> -3
    (call $record (i32.const 10) (call $read (i32.const 65530) (i32.const 100)))
    (drop (call $emit (i32.const 32) (i32.const 7) (i32.const 64) (i32.const 11)))
    ;; "crash": trap after all the above
    (if (i32.eq (i32.load8_u (i32.const 128)) (i32.const 99)) (then unreachable))
    (i32.const 0)))
