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
    /// Pages of linear memory every instance starts with (allocated and zeroed per invocation).
    pub initial_pages: u64,
}

impl LoadedComponent {
    /// A warning when the module's initial memory makes every invocation costly
    /// ([`initial_memory_note`]).
    pub fn cost_note(&self) -> Option<String> {
        initial_memory_note(&self.spec.id, self.initial_pages)
    }
}

/// Initial memory above this many pages earns a warning: the SDK's guests start with 1-2.
pub const COSTLY_INITIAL_PAGES: u64 = 4;

/// Says what a component starting with `pages` of linear memory costs per invocation, and how
/// to shrink it, when that is more than [`COSTLY_INITIAL_PAGES`]; `None` otherwise. Each
/// invocation's fresh instance allocates and zeroes its initial memory: ~2.4 µs per 64 KiB page
/// on a desktop x86 and several times that on a Pi (BENCHMARKS.md), so rustc's default 1 MiB
/// shadow stack (17 pages) makes a small handler ~10× dearer than it needs to be.
pub fn initial_memory_note(component: &str, pages: u64) -> Option<String> {
    (pages > COSTLY_INITIAL_PAGES).then(|| {
        format!(
            "component '{component}' starts with {pages} pages ({} KiB) of linear memory, which \
             every invocation allocates and zeroes (~{:.0} µs on a desktop, several times that on \
             a Pi); link with a small stack (`-C link-arg=-zstack-size=16384`, as the Rust SDK \
             does) and keep large buffers off static data",
            pages * PAGE_BYTES / 1024,
            pages as f64 * 2.4
        )
    })
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
    let initial_pages = check_exports(spec, &module)?;
    let loaded = LoadedComponent {
        spec: Arc::new(spec.clone()),
        module,
        engine,
        initial_pages,
    };
    if let Some(note) = loaded.cost_note() {
        tracing::warn!("{note}");
    }
    Ok(loaded)
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

/// Checks the exports; returns the initial memory's pages.
fn check_exports(spec: &ComponentSpec, module: &Module) -> Result<u64, LoadError> {
    let missing = |what| LoadError::MissingExport {
        component: spec.id.clone(),
        what,
    };
    let pages = match module.get_export(v1::EXPORT_MEMORY) {
        Some(ExternType::Memory(memory)) => {
            check_initial_memory(spec, memory.minimum())?;
            memory.minimum()
        }
        _ => return Err(missing("its linear memory as `memory`")),
    };
    match module.get_export(v1::EXPORT_HANDLE) {
        Some(ExternType::Func(ty)) if ty.params().is_empty() && ty.results() == [ValType::I32] => {
            Ok(pages)
        }
        _ => Err(missing("a function `outpost_handle: () -> i32`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_costly_initial_memory_earns_a_note_naming_the_cost_and_the_fix() {
        assert_eq!(initial_memory_note("c", 2), None);
        assert_eq!(initial_memory_note("c", COSTLY_INITIAL_PAGES), None);
        let note = initial_memory_note("sampler", 17).expect("17 pages is rustc's default stack");
        assert!(
            note.contains("'sampler' starts with 17 pages (1088 KiB)"),
            "{note}"
        );
        assert!(
            note.contains("~41 µs") && note.contains("zstack-size"),
            "{note}"
        );
    }
}
