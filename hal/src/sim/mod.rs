//! The simulated board: sensors that follow scripted profiles, with faults scripted in their
//! specs or injected by tests. `outpost up` builds one from a manifest's `[[simulator.sensor]]`
//! tables; on a device the Linux board takes its place.
//!
//! Submodules:
//! - `spec`: [`SensorSpec`], one sensor as written in TOML, and its validation.
//! - `profile`: [`Profile`] and [`ProfileKind`]: the value over time (constant, sine, ramp,
//!   step, noise, csv); its docs give every profile's TOML keys.
//! - `fault`: [`Fault`] and [`FaultSpec`]: unavailable, stuck and spike faults.
//! - `trace`: loading and replaying CSV traces for the `csv` profile ([`TraceError`]).
//! - `board`: [`SimBoard`], the [`SensorBoard`](crate::SensorBoard) over all of the above.
//! - `error`: [`SimError`] and [`SpecError`].
//! - `duration`: humantime strings (`"500ms"`, `"60s"`) in specs.

mod board;
mod duration;
mod error;
mod fault;
mod profile;
mod spec;
mod trace;

#[cfg(test)]
mod tests;

pub use board::SimBoard;
pub use error::{SimError, SpecError};
pub use fault::{Fault, FaultSpec};
pub use profile::{Profile, ProfileKind, Step};
pub use spec::SensorSpec;
pub use trace::TraceError;
