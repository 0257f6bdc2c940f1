//! Component tests (`outpost test`): scenarios written next to an app (`tests/*.toml`) run
//! against the real runtime on a simulated board, a manual clock and an in-memory store, so
//! they are deterministic and take milliseconds. `docs/TESTING.md` is the format's page.
//!
//! - [`spec`]: the file format, parsed and checked (pure).

pub mod spec;
