//! The runtime's errors name the fix: limits with the size asked for, refused host calls with
//! the interface and the name, and a module too large for its memory limit at load. Guests are
//! WAT, compiled here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use outpost_hal::ManualClock;
use outpost_hal::sim::SimBoard;
use outpost_manifest::{ComponentSpec, Grants, Limits};

use super::*;
use crate::sync::batch::Planner;

fn spec(id: &str, grants: Grants, limits: Limits) -> ComponentSpec {
    ComponentSpec {
        id: id.to_string(),
        source: PathBuf::from(format!("{id}.wasm")),
        build: None,
        grants,
        limits,
        triggers: Vec::new(),
    }
}

fn services(max_packet_bytes: usize) -> Services {
    let clock: Arc<ManualClock> = Arc::new(ManualClock::new(1_000));
    Services {
        kv: Arc::new(NoKv),
        sensors: Arc::new(SimBoard::empty(clock.clone())),
        clock,
        variables: Arc::new(BTreeMap::new()),
        device: Arc::from("test-device"),
        gpio: Arc::new(outpost_hal::SimGpio::new()),
        send: Arc::new(Planner {
            max_packet_bytes,
            ..Planner::assumed_default()
        }),
    }
}

fn load(spec: &ComponentSpec, wat: &str) -> Result<LoadedComponent, LoadError> {
    let wasm = wat::parse_str(wat).expect("wat compiles");
    loader::load_bytes(&EnginePool::default(), spec, &wasm)
}

fn invoke(spec: ComponentSpec, wat: &str, max_packet_bytes: usize) -> Execution {
    let loaded = load(&spec, wat).expect("loads");
    Runtime::from_components("app", [loaded], services(max_packet_bytes))
        .invoke(&spec.id, Firing::manual(Vec::new()))
}

#[test]
fn a_module_whose_initial_memory_is_over_its_limit_is_refused_at_load() {
    let limits = Limits {
        memory_bytes: 128 * 1024,
        ..Limits::default()
    };
    let wat = r#"(module (memory (export "memory") 3)
        (data (i32.const 150000) "x")
        (func (export "outpost_handle") (result i32) (i32.const 0)))"#;
    let error = load(&spec("fat", Grants::default(), limits), wat)
        .err()
        .expect("refused");
    let message = error.to_string();
    assert!(
        message.contains("needs 196608 bytes of linear memory")
            && message.contains("(3 pages of 64 KiB")
            && message.contains("over its memory limit of 131072 bytes"),
        "{message}"
    );
}

#[test]
fn growing_past_the_memory_limit_names_the_size_asked_and_the_limit() {
    let limits = Limits {
        memory_bytes: 2 * 65_536,
        ..Limits::default()
    };
    let wat = r#"(module (memory (export "memory") 1)
        (func (export "outpost_handle") (result i32)
          (drop (memory.grow (i32.const 4)))
          (i32.const 0)))"#;
    let error = invoke(spec("grower", Grants::default(), limits), wat, 1 << 20)
        .result
        .expect_err("limited");
    assert_eq!(
        error,
        InvocationError::GrowLimit {
            memory_bytes: 131_072,
            table_elements: limits.table_elements,
            denied: GrowDenied::Memory {
                asked: 5 * 65_536,
                limit: 131_072,
            },
        }
    );
    assert!(
        error
            .to_string()
            .contains("asked for 327680 bytes of linear memory, the limit is 131072 bytes"),
        "{error}"
    );
}

#[test]
fn a_denied_or_missing_host_call_names_the_interface_and_the_name() {
    let grants = Grants {
        sensors: vec!["temperature".into()],
        ..Grants::default()
    };
    // Reads "humidity" (not granted), then "temperature" (granted, not on this board), and
    // fails with the first code.
    let wat = r#"(module
        (import "outpost_v1" "sensor_read" (func $read (param i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 0) "humidity")
        (data (i32.const 16) "temperature")
        (func (export "outpost_handle") (result i32)
          (local $rc i32)
          (local.set $rc (call $read (i32.const 0) (i32.const 8) (i32.const 64)))
          (drop (call $read (i32.const 16) (i32.const 11) (i32.const 64)))
          (local.get $rc)))"#;
    let error = invoke(spec("reader", grants, Limits::default()), wat, 1 << 20)
        .result
        .expect_err("fails");
    assert_eq!(
        error.to_string(),
        "handler returned error status -1 after: sensor 'humidity' is not granted (denied); \
         sensor 'temperature' does not exist on this board (not-found)"
    );
}

#[test]
fn an_emit_too_large_for_the_packet_is_refused_with_too_large_and_a_trap_names_it() {
    let grants = Grants {
        streams: vec!["s".into()],
        ..Grants::default()
    };
    // Emits 3,000 bytes under a 2 KiB packet limit; traps if refused.
    let wat = r#"(module
        (import "outpost_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 0) "s")
        (func (export "outpost_handle") (result i32)
          (if (i32.eq (call $emit (i32.const 0) (i32.const 1) (i32.const 64) (i32.const 3000))
                      (i32.const -5))
            (then (unreachable)))
          (i32.const 0)))"#;
    let execution = invoke(
        spec("emitter", grants.clone(), Limits::default()),
        wat,
        2_048,
    );
    let error = execution.result.expect_err("refused");
    let message = error.to_string();
    assert!(
        message.starts_with("trapped: wasm `unreachable`")
            && message.contains("emit to stream 's': 3000 bytes needs a")
            && message.contains("over the device's limit of 2048 bytes (too-large)"),
        "{message}"
    );
    // Under the default limit the same emit is taken.
    let execution = invoke(spec("emitter", grants, Limits::default()), wat, 256 * 1024);
    assert_eq!(execution.result.expect("commits").records.len(), 1);
}

/// A key-value backend with nothing in it: these tests are about limits, not data (and the
/// runtime's tests stay clear of the store).
struct NoKv;

impl crate::runtime::KvReader for NoKv {
    fn get(
        &self,
        _app: &str,
        _ns: &str,
        _key: &str,
    ) -> Result<Option<Vec<u8>>, crate::runtime::KvError> {
        Ok(None)
    }

    fn keys(
        &self,
        _app: &str,
        _ns: &str,
        _prefix: &str,
        _limit: usize,
    ) -> Result<Vec<String>, crate::runtime::KvError> {
        Ok(Vec::new())
    }
}
