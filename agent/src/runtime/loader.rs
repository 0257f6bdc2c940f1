//! Loading a component: read, validate and compile its module once, then check every import
//! against the ABI and the component's grants, so a bad module is refused before it ever runs.

use std::sync::Arc;

use outpost_abi::v1;
use outpost_manifest::ComponentSpec;
use wasmi::{ExternType, Module, ValType};

use super::engines::{EnginePool, EngineWithLinker};
use super::error::LoadError;
use super::host;

/// A component ready to run: compiled once, instantiated fresh for every invocation.
pub struct LoadedComponent {
    /// Its manifest entry (grants, limits, triggers).
    pub spec: Arc<ComponentSpec>,
    /// The compiled module.
    pub module: Module,
    /// The engine it was compiled with, and the linker to instantiate it.
    pub engine: EngineWithLinker,
}

/// Loads the component's wasm from its `source` path.
pub fn load(pool: &EnginePool, spec: &ComponentSpec) -> Result<LoadedComponent, LoadError> {
    let wasm = std::fs::read(&spec.source).map_err(|source| LoadError::ReadWasm {
        component: spec.id.clone(),
        path: spec.source.clone(),
        source,
    })?;
    load_bytes(pool, spec, &wasm)
}

/// Loads a component from wasm bytes (or WAT text, for tests).
pub fn load_bytes(
    pool: &EnginePool,
    spec: &ComponentSpec,
    wasm: &[u8],
) -> Result<LoadedComponent, LoadError> {
    let engine = pool
        .get(spec.limits.stack_bytes)
        .map_err(|e| LoadError::Engine(e.to_string()))?;
    let module = Module::new(&engine.engine, wasm).map_err(|e| LoadError::Compile {
        component: spec.id.clone(),
        path: spec.source.clone(),
        message: e.to_string(),
    })?;
    check_imports(spec, &module)?;
    check_exports(spec, &module)?;
    Ok(LoadedComponent {
        spec: Arc::new(spec.clone()),
        module,
        engine,
    })
}

fn check_imports(spec: &ComponentSpec, module: &Module) -> Result<(), LoadError> {
    for import in module.imports() {
        let unknown = || LoadError::UnknownImport {
            component: spec.id.clone(),
            module: import.module().to_string(),
            name: import.name().to_string(),
        };
        if import.module() != v1::MODULE {
            return Err(unknown());
        }
        let name = import.name();
        let (params, result) = host::signature(name).ok_or_else(unknown)?;
        let ExternType::Func(found) = import.ty() else {
            return Err(unknown());
        };
        let expected_ok = found.params().len() == params
            && found.params().iter().all(|p| *p == ValType::I32)
            && found.results() == [result];
        if !expected_ok {
            return Err(LoadError::ImportSignature {
                component: spec.id.clone(),
                name: name.to_string(),
                found: format!("{:?} -> {:?}", found.params(), found.results()),
                expected: format!("{params} x i32 -> {result:?}"),
            });
        }
        if let Some(Some(interface)) = v1::interface_of(name)
            && !spec.grants.grants(interface)
        {
            return Err(LoadError::NotGranted {
                component: spec.id.clone(),
                name: name.to_string(),
                grant: interface.grant_key(),
            });
        }
    }
    Ok(())
}

/// Bytes of one wasm page.
const PAGE_BYTES: u64 = 64 * 1024;

/// Refuses a module whose initial memory (data segments, stack, heap start) is over the
/// component's memory limit: it could never be instantiated, so say so now, with both sizes.
fn check_initial_memory(spec: &ComponentSpec, pages: u64) -> Result<(), LoadError> {
    let needs = pages.saturating_mul(PAGE_BYTES);
    if needs > spec.limits.memory_bytes {
        return Err(LoadError::MemoryTooSmall {
            component: spec.id.clone(),
            needs,
            pages,
            limit: spec.limits.memory_bytes,
        });
    }
    Ok(())
}

fn check_exports(spec: &ComponentSpec, module: &Module) -> Result<(), LoadError> {
    let missing = |what| LoadError::MissingExport {
        component: spec.id.clone(),
        what,
    };
    match module.get_export(v1::EXPORT_MEMORY) {
        Some(ExternType::Memory(memory)) => check_initial_memory(spec, memory.minimum())?,
        _ => return Err(missing("its linear memory as `memory`")),
    }
    match module.get_export(v1::EXPORT_HANDLE) {
        Some(ExternType::Func(ty)) if ty.params().is_empty() && ty.results() == [ValType::I32] => {
            Ok(())
        }
        _ => Err(missing("a function `outpost_handle: () -> i32`")),
    }
}
