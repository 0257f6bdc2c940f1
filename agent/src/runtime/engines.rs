//! wasmi engines and their linkers. Components share one engine; only a component that asks
//! for a different stack limit gets its own, because wasmi sets stack limits per engine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wasmi::{Config, Engine, Linker};

use super::context::InvocationContext;
use super::host;

/// Deepest wasm call nesting allowed; a guest recursing past it traps with "stack exhausted".
pub const MAX_RECURSION_DEPTH: usize = 1024;

/// An engine with the v1 host functions registered on a linker for it.
#[derive(Clone)]
pub struct EngineWithLinker {
    /// The engine modules are compiled with.
    pub engine: Engine,
    /// The host functions, shared by every instance of this engine.
    pub linker: Arc<Linker<InvocationContext>>,
}

/// Engines keyed by maximum stack height in bytes.
#[derive(Default)]
pub struct EnginePool {
    engines: Mutex<HashMap<u64, EngineWithLinker>>,
}

impl EnginePool {
    /// The engine for components with a stack limit of `stack_bytes`, made on first use.
    pub fn get(&self, stack_bytes: u64) -> Result<EngineWithLinker, wasmi::Error> {
        let mut engines = self.engines.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = engines.get(&stack_bytes) {
            return Ok(found.clone());
        }
        let engine = Engine::new(&config(stack_bytes));
        let mut linker = Linker::new(&engine);
        host::define_v1(&mut linker)?;
        let made = EngineWithLinker {
            engine,
            linker: Arc::new(linker),
        };
        engines.insert(stack_bytes, made.clone());
        Ok(made)
    }
}

fn config(stack_bytes: u64) -> Config {
    let mut config = Config::default();
    let max_stack = usize::try_from(stack_bytes).unwrap_or(usize::MAX).max(4096);
    config
        .consume_fuel(true)
        .set_min_stack_height(1024.min(max_stack))
        .set_max_stack_height(max_stack)
        .set_max_recursion_depth(MAX_RECURSION_DEPTH)
        // A handful of cached stacks serve concurrent invocations without keeping megabytes.
        .set_max_cached_stacks(4);
    config
}
