//! Hardware and service traits for Outpost, and the boards that implement them.
//!
//! The traits ([`Clock`], [`SensorBoard`]) know nothing of the agent; implementations depend only
//! on them. This crate ships the simulated board used by `outpost up` and the tests ([`sim`]);
//! a Linux board (sysfs, IIO, GPIO character device) implements the same traits.
//!
//! Layout:
//! - [`clock`]: wall and monotonic time, with a system clock and a manual test clock.
//! - [`sensor`]: named sensors that return scaled readings with units.
//! - [`sim`]: the simulated board: scripted sensor profiles and injectable faults.
//! - [`mqtt`]: the MQTT transport: embedded-svc's client traits plus [`mqtt::Acknowledge`] and
//!   the session factory [`mqtt::Transport`], implemented over rumqttc.

pub mod clock;
pub mod mqtt;
pub mod sensor;
pub mod sim;

pub use clock::{Clock, ManualClock, SystemClock};
pub use mqtt::{Acknowledge, MqttConfig, RumqttcTransport, Transport, TransportError};
pub use sensor::{Reading, SensorBoard, SensorError, SensorInfo};
