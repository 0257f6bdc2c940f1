//! The WebAssembly runtime: components compiled once, a fresh sandbox for every invocation.
//!
//! One invocation = a new wasmi `Store` (fuel, memory and table limits of the component) + a new
//! instance + one call of `outpost_handle`. Nothing survives it but the effects it returns, which
//! the caller commits. Layout:
//! - [`engines`]: shared engines and linkers.
//! - [`loader`]: compile and check a component at load time.
//! - [`host`]: the ABI v1 host functions.
//! - [`context`]: per-invocation state inside the wasmi store.
//! - [`effects`]: what an invocation buffers (KV changes, outbox records, GPIO writes).
//! - [`limiter`]: memory and table caps that remember what they denied.
//! - [`services`]: the swappable backends host functions read from.
//! - [`trigger`]: what started an invocation.
//! - [`error`]: load and invocation errors.

pub mod context;
pub mod effects;
pub mod engines;
pub mod error;
pub mod host;
pub mod limiter;
pub mod loader;
pub mod services;
pub mod trigger;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_abi::v1;
use outpost_manifest::{AppManifest, ComponentSpec, Limits};
use wasmi::{StoreLimitsBuilder, TrapCode, TypedResumableCall};

use limiter::{Denied, Limiter};

pub use context::{HostTrap, InvocationContext};
pub use effects::{Effects, GpioChange, OutboxEffect};
pub use engines::EnginePool;
pub use error::{GrowDenied, InvocationError, LoadError};
pub use loader::LoadedComponent;
pub use services::{KvError, KvReader, Outbound, SendCheck, Services, Unsendable};
pub use trigger::Firing;

/// Every component of one app, ready to invoke from any thread.
pub struct Runtime {
    /// App name, for KV namespacing and reports.
    app: Arc<str>,
    /// Loaded components by id.
    components: BTreeMap<String, LoadedComponent>,
    /// Backends shared by all invocations.
    services: Services,
    /// Key-value namespaces mirrored to the broker (`[sync] kv`): `kv_set` sizes their values.
    synced_kv: Arc<[String]>,
}

/// What running one invocation produced, before anything is committed.
#[derive(Debug)]
pub struct Execution {
    /// The effects to commit, or why there are none.
    pub result: Result<Effects, InvocationError>,
    /// Fuel the invocation consumed (instantiation included).
    pub fuel_used: u64,
    /// Wall time from creating the sandbox to the handler's return.
    pub duration: Duration,
    /// Of which creating the sandbox: a fresh instance with its initial memory allocated and
    /// zeroed, data segments copied (grows with the module's initial pages).
    pub instantiation: Duration,
}

impl Runtime {
    /// Loads every component of `manifest`; the first bad one stops the load with its error.
    pub fn load(manifest: &AppManifest, services: Services) -> Result<Runtime, LoadError> {
        let pool = EnginePool::default();
        let mut components = BTreeMap::new();
        for spec in &manifest.components {
            components.insert(spec.id.clone(), loader::load(&pool, spec)?);
        }
        Ok(Runtime {
            app: Arc::from(manifest.app.name.as_str()),
            components,
            services,
            synced_kv: manifest.sync_kv.as_slice().into(),
        })
    }

    /// Builds a runtime from already-loaded components (tests, benchmarks, bundles).
    pub fn from_components(
        app: &str,
        components: impl IntoIterator<Item = LoadedComponent>,
        services: Services,
    ) -> Runtime {
        Runtime {
            app: Arc::from(app),
            components: components
                .into_iter()
                .map(|c| (c.spec.id.clone(), c))
                .collect(),
            services,
            synced_kv: Arc::new([]),
        }
    }

    /// The app's name.
    pub fn app(&self) -> &Arc<str> {
        &self.app
    }

    /// The manifest entry of a loaded component.
    pub fn component(&self, id: &str) -> Option<&Arc<ComponentSpec>> {
        self.components.get(id).map(|c| &c.spec)
    }

    /// The pages of linear memory `component`'s instances start with.
    pub fn initial_pages(&self, component: &str) -> Option<u64> {
        self.components.get(component).map(|c| c.initial_pages)
    }

    /// The shared backends.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Runs one invocation of `component` in a fresh sandbox. Blocks for as long as the guest
    /// runs (bounded by its fuel), so call it from a blocking thread.
    pub fn invoke(&self, component: &str, firing: Firing) -> Execution {
        let started = Instant::now();
        let Some(loaded) = self.components.get(component) else {
            return Execution {
                result: Err(InvocationError::UnknownComponent(component.to_string())),
                fuel_used: 0,
                duration: started.elapsed(),
                instantiation: Duration::ZERO,
            };
        };
        let limits = loaded.spec.limits;
        let mut store = wasmi::Store::new(
            &loaded.engine.engine,
            InvocationContext {
                limits: Limiter::new(
                    StoreLimitsBuilder::new()
                        .memory_size(usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX))
                        .table_elements(limits.table_elements as usize)
                        .instances(1)
                        .memories(1)
                        .tables(4)
                        // Growing past the cap ends the invocation with a clear cause instead of
                        // handing the guest -1 to ignore until it runs out of fuel.
                        .trap_on_grow_failure(true)
                        .build(),
                ),
                app: self.app.clone(),
                component: loaded.spec.clone(),
                firing,
                services: self.services.clone(),
                effects: Effects::default(),
                output_used: 0,
                synced_kv: self.synced_kv.clone(),
                refusals: Vec::new(),
                started: self.services.clock.monotonic(),
            },
        );
        store.limiter(|ctx| &mut ctx.limits);
        let mut instantiation = Duration::ZERO;
        let mut reserve = 0;
        let result = store
            .set_fuel(limits.fuel)
            .and_then(|()| {
                let instance = loaded
                    .engine
                    .linker
                    .instantiate_and_start(&mut store, &loaded.module);
                instantiation = started.elapsed();
                instance
            })
            .map_err(|e| Stop::Wasm(e, true))
            .and_then(|instance| {
                instance
                    .get_typed_func::<(), i32>(&store, v1::EXPORT_HANDLE)
                    .map_err(|e| Stop::Wasm(e, true))
            })
            .and_then(|handle| run_sliced(&mut store, handle, &mut reserve));
        let fuel_left = store.get_fuel().unwrap_or(0).saturating_add(reserve);
        let fuel_used = limits.fuel.saturating_sub(fuel_left);
        let context = store.into_data();
        let result = match result {
            Ok(0) => Ok(context.effects),
            Ok(status) => Err(InvocationError::HandlerFailed {
                status,
                refusals: context.refusals,
            }),
            Err(Stop::Wasm(error, instantiating)) => {
                Err(
                    classify(error, &limits, context.limits.denied, instantiating)
                        .after(context.refusals),
                )
            }
            Err(Stop::Host(trap)) => Err(host_trap(&trap)),
            Err(Stop::OutOfFuel) => Err(InvocationError::OutOfFuel { limit: limits.fuel }),
        };
        Execution {
            result,
            fuel_used,
            duration: started.elapsed(),
            instantiation,
        }
    }
}

/// Fuel handed to the guest at a time: when a slice runs out the deadline is checked and, time
/// and budget remaining, the call resumes with the next. A few ms of wasm on a Pi-class CPU, so
/// a guest slow for any reason is stopped soon after its deadline; the check costs ~nothing.
pub const FUEL_SLICE: u64 = 1_000_000;

/// Why a call stopped early.
enum Stop {
    /// A wasmi error (a trap, or a failed instantiation if the flag is set).
    Wasm(wasmi::Error, bool),
    /// A host function ended the invocation (output limit, deadline).
    Host(HostTrap),
    /// The whole fuel budget is spent.
    OutOfFuel,
}

/// Calls the handler in fuel slices ([`FUEL_SLICE`]) with wasmi's resumable calls, checking
/// the deadline between slices. The store holds all the fuel left on entry; `reserve` is set
/// to the part held back from the guest, so the caller can count what was used.
fn run_sliced(
    store: &mut wasmi::Store<InvocationContext>,
    handle: wasmi::TypedFunc<(), i32>,
    reserve: &mut u64,
) -> Result<i32, Stop> {
    let left = store.get_fuel().unwrap_or(0);
    let slice = left.min(FUEL_SLICE);
    *reserve = left - slice;
    store.set_fuel(slice).map_err(|e| Stop::Wasm(e, false))?;
    let mut call = handle
        .call_resumable(&mut *store, ())
        .map_err(|e| Stop::Wasm(e, false))?;
    loop {
        match call {
            TypedResumableCall::Finished(status) => return Ok(status),
            TypedResumableCall::HostTrap(trap) => {
                let error = trap.host_error();
                return Err(match error.downcast_ref::<HostTrap>() {
                    Some(trap) => Stop::Host(trap.clone()),
                    None => Stop::Wasm(wasmi::Error::new(error.to_string()), false),
                });
            }
            TypedResumableCall::OutOfFuel(paused) => {
                let context = store.data();
                let elapsed = context.elapsed();
                let limit = context.component.limits.timeout;
                if elapsed >= limit {
                    return Err(Stop::Host(HostTrap::Deadline {
                        limit,
                        elapsed,
                        during: None,
                    }));
                }
                let needed = paused.required_fuel().max(1);
                let next = (*reserve).min(FUEL_SLICE).max(needed);
                if next > *reserve {
                    return Err(Stop::OutOfFuel);
                }
                *reserve -= next;
                let now = store.get_fuel().unwrap_or(0);
                store
                    .set_fuel(now.saturating_add(next))
                    .map_err(|e| Stop::Wasm(e, false))?;
                call = paused
                    .resume(&mut *store)
                    .map_err(|e| Stop::Wasm(e, false))?;
            }
        }
    }
}

/// The cause a person reads for a host function's trap.
fn host_trap(trap: &HostTrap) -> InvocationError {
    match trap {
        HostTrap::OutputLimit { .. } => InvocationError::OutputLimit(trap.to_string()),
        HostTrap::Deadline { .. } => InvocationError::Deadline(trap.to_string()),
    }
}

/// Turns a wasmi error into the cause a person reads; `denied` is what the limiter refused.
fn classify(
    error: wasmi::Error,
    limits: &Limits,
    denied: Option<Denied>,
    instantiating: bool,
) -> InvocationError {
    if let Some(trap) = error.downcast_ref::<HostTrap>() {
        return host_trap(trap);
    }
    let grow_limit = |denied: Option<Denied>| InvocationError::GrowLimit {
        memory_bytes: limits.memory_bytes,
        table_elements: limits.table_elements,
        denied: match denied {
            Some(Denied::Memory { asked }) => GrowDenied::Memory {
                asked,
                limit: limits.memory_bytes,
            },
            Some(Denied::Table { asked }) => GrowDenied::Table {
                asked,
                limit: limits.table_elements,
            },
            None => GrowDenied::Unknown,
        },
    };
    // Creating the module's initial memory or tables counts too: wasmi reports that denial
    // as an instantiation error with no trap code.
    if denied.is_some() {
        return grow_limit(denied);
    }
    match error.as_trap_code() {
        Some(TrapCode::OutOfFuel) => InvocationError::OutOfFuel { limit: limits.fuel },
        Some(TrapCode::GrowthOperationLimited) => grow_limit(None),
        Some(TrapCode::StackOverflow) => InvocationError::StackExhausted {
            limit: limits.stack_bytes,
            depth: engines::MAX_RECURSION_DEPTH,
        },
        Some(TrapCode::UnreachableCodeReached) => {
            InvocationError::Trap("wasm `unreachable` executed (a guest panic or abort)".into())
        }
        Some(code) => InvocationError::Trap(code.to_string()),
        None if instantiating => InvocationError::Instantiate(error.to_string()),
        None => InvocationError::Trap(error.to_string()),
    }
}

#[cfg(test)]
mod deadline_tests;
#[cfg(test)]
mod tests;
