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
    /// The module's initial linear memory (which holds its data segments) is larger than the
    /// component's memory limit: every invocation would fail, so it is refused at load.
    #[error(
        "component '{component}' needs {needs} bytes of linear memory at start ({pages} pages of 64 KiB: its data and stack), over its memory limit of {limit} bytes (raise `memory` under [component.limits], or shrink the module's initial memory)"
    )]
    MemoryTooSmall {
        /// Component id.
        component: String,
        /// Bytes of the module's initial memory.
        needs: u64,
        /// Its pages.
        pages: u64,
        /// The component's memory limit.
        limit: u64,
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
    #[error("{denied}")]
    GrowLimit {
        /// Memory limit.
        memory_bytes: u64,
        /// Table limit.
        table_elements: u32,
        /// What was asked for.
        denied: GrowDenied,
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
    /// The invocation ran past its wall-clock deadline (`limits.timeout`); the message names
    /// the deadline, the time taken and where it was (`deadline 1s exceeded after 1.000s (in
    /// sensor_read 'temperature')`).
    #[error("{0}")]
    Deadline(String),
    /// Any other trap (unreachable, a guest panic, division by zero, ...).
    #[error("trapped: {0}")]
    Trap(String),
    /// A trap after host calls were refused: the refusals usually explain it (a guest that
    /// unwraps an error code panics).
    #[error("{cause}{}", after_refusals(refusals))]
    AfterRefusals {
        /// The trap.
        cause: Box<InvocationError>,
        /// Host calls refused before it.
        refusals: Vec<String>,
    },
    /// Instantiation failed (e.g. the module's initial memory is over the limit).
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    /// The handler returned a non-zero status; `refusals` are the host calls refused before
    /// (`sensor 'humidity' is not granted (denied)`), which usually explain it.
    #[error("handler returned error status {status}{}", after_refusals(refusals))]
    HandlerFailed {
        /// The status it returned.
        status: i32,
        /// Host calls refused during the invocation (the first few).
        refusals: Vec<String>,
    },
    /// The effects could not be committed.
    #[error("commit failed: {0}")]
    Commit(String),
}

impl InvocationError {
    /// The cause itself, without the refused host calls that preceded it.
    pub fn root(&self) -> &InvocationError {
        match self {
            InvocationError::AfterRefusals { cause, .. } => cause.root(),
            other => other,
        }
    }

    /// Adds the host calls refused during the invocation to a trap, which they usually explain;
    /// other causes (fuel, limits) are their own explanation.
    pub fn after(self, refusals: Vec<String>) -> InvocationError {
        match self {
            InvocationError::Trap(_) | InvocationError::Instantiate(_) if !refusals.is_empty() => {
                InvocationError::AfterRefusals {
                    cause: Box::new(self),
                    refusals,
                }
            }
            other => other,
        }
    }
}

/// `" after: a; b"`, or nothing.
fn after_refusals(refusals: &[String]) -> String {
    if refusals.is_empty() {
        String::new()
    } else {
        format!(" after: {}", refusals.join("; "))
    }
}

/// What a memory or table grow asked for, against the component's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrowDenied {
    /// Linear memory (creating or growing it).
    Memory {
        /// Bytes asked for in all.
        asked: u64,
        /// The component's limit.
        limit: u64,
    },
    /// A table.
    Table {
        /// Elements asked for in all.
        asked: u64,
        /// The component's limit.
        limit: u32,
    },
    /// Not recorded.
    Unknown,
}

impl std::fmt::Display for GrowDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GrowDenied::Memory { asked, limit } => write!(
                f,
                "memory limit exceeded: asked for {asked} bytes of linear memory, the limit is \
                 {limit} bytes (raise `memory` under [component.limits])"
            ),
            GrowDenied::Table { asked, limit } => write!(
                f,
                "table limit exceeded: asked for {asked} elements, the limit is {limit} (raise \
                 `table_elements` under [component.limits])"
            ),
            GrowDenied::Unknown => f.write_str("memory or table limit exceeded"),
        }
    }
}
