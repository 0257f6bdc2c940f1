//! End-to-end tests of Outpost: real wasm built from `bundles/`, real redb files, a real
//! mosquitto and the real `outpost` binary, driven through the test kit (`tests/kit/`,
//! `outpost-testkit`).
//!
//! One test binary, one module per area, so the agent library is linked once rather than once per
//! area. Tests run in parallel threads of this one process: nothing here may change process-wide
//! state (environment variables, the working directory); brokers take free ports, temporary
//! directories are per test. Filter by module: `cargo test -p outpost --test e2e sync::`.

mod bounds;
mod campaign;
mod cli;
mod control;
mod crash;
mod device_policy;
mod devloop;
mod durability;
mod examples;
mod fleet;
mod isolation;
mod journey;
mod memory;
mod mqtt_triggers;
mod operator;
mod packaging;
mod perimeter;
mod poison_inbound;
mod polyglot;
mod publishing;
mod quiet_status;
mod scheduling;
mod store_damage;
mod store_recovery;
mod sync;
mod sync_faults;
mod time;
mod trust;

/// The `outpost` binary under test (built by cargo for this package's tests).
const OUTPOST: &str = env!("CARGO_BIN_EXE_outpost");
