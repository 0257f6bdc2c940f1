//! The per-invocation state a wasmi `Store` carries: grants, the trigger, the effects buffer and
//! the output budget. A fresh one is made for every invocation and dropped after it.

use std::sync::Arc;
use std::time::Duration;

use super::limiter::Limiter;
use outpost_manifest::ComponentSpec;

use super::effects::Effects;
use super::services::Services;
use super::trigger::Firing;

/// A limit a host function enforces by ending the invocation (a trap), not with an error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostTrap {
    /// The invocation wrote, emitted, published, logged or changed GPIO lines for more bytes than
    /// its `output` limit (each `gpio_write` counts as a fixed few bytes).
    OutputLimit {
        /// The configured limit.
        limit: u64,
    },
    /// The invocation ran past its wall-clock deadline (`limits.timeout`), found when a host
    /// call returned or a fuel slice ran out.
    Deadline {
        /// The configured timeout.
        limit: Duration,
        /// Time since the invocation started when it was stopped.
        elapsed: Duration,
        /// The host call it was in (`sensor_read 'temperature'`), if any.
        during: Option<String>,
    },
}

impl std::fmt::Display for HostTrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostTrap::OutputLimit { limit } => {
                write!(
                    f,
                    "output limit of {limit} bytes exceeded (kv writes, events, publishes, gpio \
                     writes and logs)"
                )
            }
            HostTrap::Deadline {
                limit,
                elapsed,
                during,
            } => {
                write!(
                    f,
                    "deadline {} exceeded after {:.3}s",
                    humantime::format_duration(*limit),
                    elapsed.as_secs_f64()
                )?;
                match during {
                    Some(during) => write!(f, " (in {during})"),
                    None => f.write_str(" (running wasm)"),
                }
            }
        }
    }
}

impl wasmi::errors::HostError for HostTrap {}

/// The data inside every invocation's wasmi `Store`.
pub struct InvocationContext {
    /// Memory and table caps, consulted by wasmi on every grow; remembers what it denied.
    pub limits: Limiter,
    /// The app, for KV namespacing and outbox rows.
    pub app: Arc<str>,
    /// The component's manifest entry: grants and limits.
    pub component: Arc<ComponentSpec>,
    /// What started this invocation.
    pub firing: Firing,
    /// Backends for reads, sensors, time and config.
    pub services: Services,
    /// Buffered writes, committed only if the handler returns 0.
    pub effects: Effects,
    /// Output bytes used so far.
    pub output_used: u64,
    /// Key-value namespaces mirrored to the broker: a `kv_set` there is sized like an event.
    pub synced_kv: Arc<[String]>,
    /// Why host calls were refused in this invocation (`sensor 'humidity' is not granted`),
    /// the first few only: if the invocation fails, its error names them.
    pub refusals: Vec<String>,
    /// The services' monotonic time when the invocation started: its deadline is
    /// `started + limits.timeout`.
    pub started: Duration,
}

/// Refusals kept per invocation: the first ones explain a failure; a loop of them would only
/// cost memory.
const MAX_REFUSALS: usize = 4;

impl InvocationContext {
    /// Notes why a host call was refused and returns its ABI code, so the invocation's error
    /// can name the interface and the name the guest asked for.
    pub fn refuse(&mut self, code: outpost_abi::ErrorCode, why: impl FnOnce() -> String) -> i32 {
        if self.refusals.len() < MAX_REFUSALS {
            self.refusals.push(format!("{} ({})", why(), code.name()));
        }
        code.as_i32()
    }

    /// Whether `ns` is mirrored to the broker.
    pub fn is_synced(&self, ns: &str) -> bool {
        self.synced_kv.iter().any(|n| n == ns)
    }

    /// Time since the invocation started, on the services' clock.
    pub fn elapsed(&self) -> Duration {
        self.services.clock.monotonic().saturating_sub(self.started)
    }

    /// Time left before the deadline; zero once it has passed.
    pub fn remaining(&self) -> Duration {
        self.component.limits.timeout.saturating_sub(self.elapsed())
    }

    /// The trap that ends the invocation if its deadline has passed, naming the host call it
    /// was in; `Ok` while time remains. Host calls that can block check it when they return.
    pub fn check_deadline(&self, during: impl FnOnce() -> String) -> Result<(), wasmi::Error> {
        let elapsed = self.elapsed();
        let limit = self.component.limits.timeout;
        if elapsed < limit {
            return Ok(());
        }
        Err(wasmi::Error::host(HostTrap::Deadline {
            limit,
            elapsed,
            during: Some(during()),
        }))
    }

    /// Charges `bytes` against the output budget; a trap once it is exceeded.
    pub fn charge_output(&mut self, bytes: usize) -> Result<(), wasmi::Error> {
        let limit = self.component.limits.output_bytes;
        self.output_used = self.output_used.saturating_add(bytes as u64);
        if self.output_used > limit {
            return Err(wasmi::Error::host(HostTrap::OutputLimit { limit }));
        }
        Ok(())
    }
}
