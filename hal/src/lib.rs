//! Hardware and service traits for Outpost, and the boards that implement them.
//!
//! The traits ([`Clock`], [`SensorBoard`], [`GpioBoard`]) know nothing of the agent;
//! implementations depend only on them. This crate ships the simulated board used by `outpost up`
//! and the tests ([`sim`], [`SimGpio`]) and the Linux board ([`linux`]: sysfs, IIO, `/proc`,
//! GPIO character device) behind the same traits.
//!
//! Layout:
//! - [`clock`]: wall and monotonic time, whether the wall clock is synchronised, and the boot
//!   id and time since boot, with a system clock and a manual test clock.
//! - [`sensor`]: named sensors that return scaled readings with units.
//! - [`gpio`]: named GPIO lines ([`GpioBoard`]) and the simulated [`SimGpio`].
//! - [`sim`]: the simulated board: scripted sensor profiles and injectable faults.
//! - [`linux`]: the Linux board: [`LinuxBoard`] reads thermal zones, hwmon, IIO and `/proc`
//!   under a filesystem root; `LinuxGpio` (Linux only) drives lines over `/dev/gpiochip*`;
//!   [`describe`] lists any board's sensors with a reading each.
//! - [`mqtt`]: the MQTT transport: embedded-svc's client traits plus [`mqtt::Acknowledge`] and
//!   the session factory [`mqtt::Transport`], implemented over rumqttc.

pub mod clock;
pub mod gpio;
pub mod linux;
pub mod mqtt;
pub mod sensor;
pub mod sim;

pub use clock::{BootInstant, Clock, ManualClock, SystemClock};
pub use gpio::{GpioBoard, GpioDirection, GpioError, GpioLineInfo, GpioWrite, SimGpio};
#[cfg(target_os = "linux")]
pub use linux::LinuxGpio;
pub use linux::{LinuxBoard, LinuxError, describe};
pub use mqtt::{Acknowledge, MqttConfig, RumqttcTransport, Transport, TransportError};
pub use sensor::{Reading, SensorBoard, SensorError, SensorInfo};
