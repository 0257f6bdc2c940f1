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
use wasmi::{StoreLimitsBuilder, TrapCode};

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
            },
        );
        store.limiter(|ctx| &mut ctx.limits);
        let mut instantiation = Duration::ZERO;
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
            .map_err(|e| (e, true))
            .and_then(|instance| {
                instance
                    .get_typed_func::<(), i32>(&store, v1::EXPORT_HANDLE)
                    .map_err(|e| (e, true))
            })
            .and_then(|handle| handle.call(&mut store, ()).map_err(|e| (e, false)));
        let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let context = store.into_data();
        let result = match result {
            Ok(0) => Ok(context.effects),
            Ok(status) => Err(InvocationError::HandlerFailed {
                status,
                refusals: context.refusals,
            }),
            Err((error, instantiating)) => {
                Err(
                    classify(error, &limits, context.limits.denied, instantiating)
                        .after(context.refusals),
                )
            }
        };
        Execution {
            result,
            fuel_used,
            duration: started.elapsed(),
            instantiation,
        }
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
        return InvocationError::OutputLimit(trap.to_string());
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
mod tests;
