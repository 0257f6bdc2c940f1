//! Errors of loading components and of running one invocation.

use std::path::PathBuf;

use thiserror::Error;

/// Why a component could not be loaded. Each names the component and what to fix.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The wasm file is missing or unreadable.
    #[error("component '{component}': cannot read {path}: {source} (run `outpost build` first?)")]
    ReadWasm {
        /// Component id.
        component: String,
        /// The manifest's `source`.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The module does not validate or compile.
    #[error("component '{component}': {path} is not a valid WebAssembly module: {message}")]
    Compile {
        /// Component id.
        component: String,
        /// The manifest's `source`.
        path: PathBuf,
        /// What wasmi reported.
        message: String,
    },
    /// The module imports something the ABI does not define.
    #[error(
        "component '{component}' imports `{module}.{name}`, which the Outpost ABI does not define (see docs/ABI.md)"
    )]
    UnknownImport {
        /// Component id.
        component: String,
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
    },
    /// The module imports an ABI function with the wrong type.
    #[error(
        "component '{component}' imports `{name}` with type {found}, but the ABI defines {expected}"
    )]
    ImportSignature {
        /// Component id.
        component: String,
        /// The function.
        name: String,
        /// The type in the module.
        found: String,
        /// The type in the ABI.
        expected: String,
    },
    /// The module imports a function of an interface its manifest does not grant.
    #[error(
        "component '{component}' imports `{name}`, but its manifest grants no `{grant}` (add it under [component.grants])"
    )]
    NotGranted {
        /// Component id.
        component: String,
        /// The function.
        name: String,
        /// The grant key that would allow it.
        grant: &'static str,
    },
    /// A required export is missing or has the wrong type.
    #[error("component '{component}' must export {what}")]
    MissingExport {
        /// Component id.
        component: String,
        /// What is missing, e.g. "`outpost_handle: () -> i32`".
        what: &'static str,
    },
    /// wasmi refused to set up an engine (should not happen).
    #[error("cannot set up the wasm engine: {0}")]
    Engine(String),
}

/// Why an invocation failed. It committed nothing.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum InvocationError {
    /// The component is not part of the loaded app.
    #[error("no component named '{0}' in this app")]
    UnknownComponent(String),
    /// Fuel ran out: a runaway loop or simply too much work.
    #[error("ran out of fuel (limit {limit})")]
    OutOfFuel {
        /// The component's fuel limit.
        limit: u64,
    },
    /// Memory or a table tried to grow past the component's limit.
    #[error(
        "memory or table limit exceeded (memory {memory_bytes} bytes, table {table_elements} elements)"
    )]
    GrowLimit {
        /// Memory limit.
        memory_bytes: u64,
        /// Table limit.
        table_elements: u32,
    },
    /// The wasm stack overflowed (deep or unbounded recursion).
    #[error("stack exhausted (limit {limit} bytes, depth {depth})")]
    StackExhausted {
        /// Stack limit in bytes.
        limit: u64,
        /// Call depth limit.
        depth: usize,
    },
    /// The output budget was exceeded.
    #[error("{0}")]
    OutputLimit(String),
    /// Any other trap (unreachable, a guest panic, division by zero, ...).
    #[error("trapped: {0}")]
    Trap(String),
    /// Instantiation failed (e.g. the module's initial memory is over the limit).
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    /// The handler returned a non-zero status.
    #[error("handler returned error status {0}")]
    HandlerFailed(i32),
    /// The effects could not be committed.
    #[error("commit failed: {0}")]
    Commit(String),
}
