//! The validated application model the runtime uses. Every manifest schema version converts
//! into these types, so nothing outside this crate knows which version a file was written in.
//!
//! Invariants hold by construction (see `convert`): names are valid and unique, paths are
//! resolved, limits are in range, each trigger is one well-formed kind.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use outpost_abi::Interface;
use outpost_hal::sim::SensorSpec;

use crate::topic::TopicFilter;

/// A loaded, validated `outpost.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct AppManifest {
    /// Absolute path of the manifest file; relative paths inside it were resolved against its
    /// directory.
    pub path: PathBuf,
    /// The `[app]` table.
    pub app: AppInfo,
    /// Config variables, readable by components granted them (`config_get`).
    pub variables: BTreeMap<String, String>,
    /// The components, in file order.
    pub components: Vec<ComponentSpec>,
    /// Key-value namespaces mirrored to the broker as retained messages (`[sync] kv`).
    pub sync_kv: Vec<String>,
    /// Sensors of the simulated board used by `outpost up` (`[[simulator.sensor]]`), checked by
    /// the hal's own schema; devices ignore them. CSV paths in them are left as written.
    pub simulator: Vec<SensorSpec>,
}

impl AppManifest {
    /// The component with this id, if any.
    pub fn component(&self, id: &str) -> Option<&ComponentSpec> {
        self.components.iter().find(|component| component.id == id)
    }
}

/// Identity of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppInfo {
    /// `[a-z0-9][a-z0-9-]{0,63}`: used in paths and topics, so kept to a safe alphabet.
    pub name: String,
    /// `MAJOR.MINOR.PATCH` with an optional `-pre` suffix; shown in status and compared on update.
    pub version: String,
    /// Free text for people.
    pub description: Option<String>,
}

/// One WebAssembly component and everything it may do.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentSpec {
    /// `[a-z0-9][a-z0-9-]{0,63}`, unique in the app; names the component in logs and the CLI.
    pub id: String,
    /// The `.wasm` file, resolved against the manifest's directory (it may not exist yet if
    /// `build` produces it).
    pub source: PathBuf,
    /// How to build `source`, for `outpost build`/`up`.
    pub build: Option<BuildSpec>,
    /// What the component may touch; everything else is denied.
    pub grants: Grants,
    /// Per-invocation resource caps.
    pub limits: Limits,
    /// What runs it; may be empty for components only invoked by hand.
    pub triggers: Vec<TriggerSpec>,
}

/// A build step for a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// Shell command line, run as written.
    pub command: String,
    /// Directory to run it in, resolved against the manifest's directory (default: that dir).
    pub workdir: PathBuf,
}

/// A component's allow-lists, one per grantable [`Interface`]. Default deny: an empty list means
/// the interface is not granted, and a module importing its functions is refused at load time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grants {
    /// Key-value namespaces it may read and write.
    pub kv: Vec<String>,
    /// Event streams it may emit to; names are MQTT-topic-safe (`[A-Za-z0-9_.-]`).
    pub streams: Vec<String>,
    /// Sensors it may read.
    pub sensors: Vec<String>,
    /// Config variables it may read; each is declared in `[variables]`.
    pub config: Vec<String>,
    /// MQTT topic filters it may publish to.
    pub publish: Vec<TopicFilter>,
    /// GPIO lines it may read (`in:`) or write and read back (`out:`); each line at most once.
    pub gpio: Vec<GpioGrant>,
}

impl Grants {
    /// Whether the interface is granted at all (its list is non-empty).
    pub fn grants(&self, iface: Interface) -> bool {
        match iface {
            Interface::KeyValue => !self.kv.is_empty(),
            Interface::Streams => !self.streams.is_empty(),
            Interface::Sensors => !self.sensors.is_empty(),
            Interface::Config => !self.config.is_empty(),
            Interface::Publish => !self.publish.is_empty(),
            Interface::Gpio => !self.gpio.is_empty(),
        }
    }

    /// Whether the key-value namespace is granted.
    pub fn allows_kv(&self, namespace: &str) -> bool {
        self.kv.iter().any(|granted| granted == namespace)
    }

    /// Whether emitting to the stream is granted.
    pub fn allows_stream(&self, stream: &str) -> bool {
        self.streams.iter().any(|granted| granted == stream)
    }

    /// Whether reading the sensor is granted.
    pub fn allows_sensor(&self, sensor: &str) -> bool {
        self.sensors.iter().any(|granted| granted == sensor)
    }

    /// Whether reading the config variable is granted.
    pub fn allows_config(&self, variable: &str) -> bool {
        self.config.iter().any(|granted| granted == variable)
    }

    /// Whether publishing to the concrete topic is granted by some filter (MQTT matching rules;
    /// a topic containing wildcards is never allowed).
    pub fn allows_publish(&self, topic: &str) -> bool {
        self.publish.iter().any(|filter| filter.matches(topic))
    }

    /// Whether reading the GPIO line is granted (`in:` or `out:`). The name must be spelled as
    /// in the grant: `GPIO17` and `gpiochip0:17` are different grants even on a board where they
    /// are the same line.
    pub fn allows_gpio_read(&self, line: &str) -> bool {
        self.gpio.iter().any(|grant| grant.line == line)
    }

    /// Whether writing the GPIO line is granted (`out:` only).
    pub fn allows_gpio_write(&self, line: &str) -> bool {
        self.gpio
            .iter()
            .any(|grant| grant.line == line && grant.access == GpioAccess::Out)
    }
}

/// One entry of a `gpio` grant: a line and what the component may do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpioGrant {
    /// The line as the board names it (`GPIO17`, `gpiochip0:17`, a label); 1 to 128 bytes.
    pub line: String,
    /// Read only, or write and read back.
    pub access: GpioAccess,
}

/// What a `gpio` grant entry allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpioAccess {
    /// `in:<line>`: `gpio_read` only.
    In,
    /// `out:<line>`: `gpio_write`, and `gpio_read` to read the level back.
    Out,
}

/// The default `limits.timeout`: generous for a handler that samples and emits (microseconds to
/// milliseconds, even on a Pi Zero), short enough that a stuck one frees its trigger quickly.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest `limits.timeout`: a trigger held longer than this is a design problem.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// Per-invocation caps; exceeding one ends the invocation with a trap and commits nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wasm fuel (roughly, instructions) per invocation; bounds runaway loops.
    pub fuel: u64,
    /// Linear memory cap in bytes; at most 4 GiB (the wasm32 address space).
    pub memory_bytes: u64,
    /// Table size cap in elements.
    pub table_elements: u32,
    /// Interpreter value-stack cap in bytes; bounds deep recursion.
    pub stack_bytes: u64,
    /// Bytes written, emitted, published and logged per invocation (each GPIO write counts as
    /// 16 bytes); bounds flash wear and queued work.
    pub output_bytes: u64,
    /// Wall-clock time one invocation may take, host calls (a slow sensor) included; past it
    /// the invocation ends with a trap naming the deadline and commits nothing.
    pub timeout: Duration,
}

impl Default for Limits {
    /// The defaults from `docs/MANIFEST.md`: 50M fuel, 4 MiB memory, 10,000 table elements,
    /// 512 KiB stack, 256 KiB output, 1 s timeout.
    fn default() -> Limits {
        Limits {
            fuel: 50_000_000,
            memory_bytes: 4 << 20,
            table_elements: 10_000,
            stack_bytes: 512 << 10,
            output_bytes: 256 << 10,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// One trigger of a component.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerSpec {
    /// Unique in the app; given in the manifest or `<component>#<n>` with `n` counting the
    /// component's triggers from 1. Guests read it through `trigger_name`.
    pub name: String,
    /// When it fires.
    pub kind: TriggerKind,
}

/// When a trigger fires.
#[derive(Debug, Clone, PartialEq)]
pub enum TriggerKind {
    /// On a cron schedule.
    Cron {
        /// The expression as written (validated; 6 or 7 fields, seconds first).
        expr: String,
        /// What to do about runs missed while the agent was off.
        missed: Missed,
        /// The tz database zone its fields are read in (`"Europe/Berlin"`); `None` is UTC.
        /// Spelling checked, and presence too where the manifest was read on a machine with a
        /// tz database; the device loads it from its own database when the app starts.
        timezone: Option<String>,
    },
    /// At a fixed interval.
    Interval {
        /// Time between runs; at least 1 ms.
        every: Duration,
        /// Upper bound of a random delay added to each run, so a fleet does not fire in step;
        /// less than `every`.
        jitter: Duration,
        /// What to do about runs missed while the agent was off.
        missed: Missed,
    },
    /// Once when the agent (or app) starts.
    OnStart,
    /// On every MQTT message matching a topic filter (the subscription is the grant).
    Mqtt {
        /// The topic filter subscribed to (`+` and `#` allowed).
        filter: crate::topic::TopicFilter,
    },
    /// On sensor samples.
    Sensor {
        /// The sensor to sample.
        sensor: String,
        /// Sampling period; at least 1 ms.
        sample_every: Duration,
        /// Which samples fire the trigger.
        fire: FireRule,
    },
}

/// What a scheduled trigger does about runs missed while the agent was off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Missed {
    /// Forget them (`"skip"`, the default).
    #[default]
    Skip,
    /// Run once at start if any were missed (`"run-once"`).
    RunOnce,
}

/// Which sensor samples fire a sensor trigger.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FireRule {
    /// Every sample.
    Every,
    /// When the value differs from the previous sample by more than `min_delta`.
    Change {
        /// Smallest change that counts; 0 means any change. Finite and not negative.
        min_delta: f64,
    },
    /// When the value goes from below `threshold` to at or above it.
    Rising {
        /// The level to cross; finite.
        threshold: f64,
    },
    /// When the value goes from at or above `threshold` to below it.
    Falling {
        /// The level to cross; finite.
        threshold: f64,
    },
    /// When the value crosses `threshold` either way.
    Crossing {
        /// The level to cross; finite.
        threshold: f64,
    },
}
