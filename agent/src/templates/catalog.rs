//! The templates and their files, compiled into the operator build.
//!
//! Paths are from the agent crate's directory (`CARGO_MANIFEST_DIR`): `templates/` holds each
//! template's manifest and README, `bundles/` the SDKs and the examples whose handlers the
//! templates carry.

use super::Template;

/// A file of the repository, by its path from the repository root.
macro_rules! repo_file {
    ($($path:tt)+) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../", $($path)+))
    };
}

/// A Rust template: the shared cargo files and the vendored SDK, plus the template's manifest
/// and README and the handler of `bundles/examples/$example`.
macro_rules! rust_template {
    ($name:literal, $summary:literal, $example:literal, [$($test:literal),*], $rewrites:expr) => {
        Template {
            name: $name,
            language: "Rust",
            summary: $summary,
            files: &[
                (
                    "outpost.toml",
                    repo_file!(concat!("templates/", $name, "/outpost.toml")),
                ),
                (
                    "README.md",
                    repo_file!(concat!("templates/", $name, "/README.md")),
                ),
                (
                    "src/lib.rs",
                    repo_file!(concat!("bundles/examples/", $example, "/src/lib.rs")),
                ),
                $((
                    concat!("tests/", $test),
                    repo_file!(concat!("bundles/examples/", $example, "/tests/", $test)),
                ),)*
                ("Cargo.toml", repo_file!("templates/rust/Cargo.toml")),
                (
                    ".cargo/config.toml",
                    repo_file!("templates/rust/.cargo/config.toml"),
                ),
                (".gitignore", repo_file!("templates/rust/gitignore")),
                (
                    "vendor/outpost-sdk/Cargo.toml",
                    repo_file!("templates/rust/sdk.Cargo.toml"),
                ),
                (
                    "vendor/outpost-abi/Cargo.toml",
                    repo_file!("templates/rust/abi.Cargo.toml"),
                ),
                (
                    "vendor/outpost-abi/src/lib.rs",
                    repo_file!("abi/src/lib.rs"),
                ),
                (
                    "vendor/outpost-sdk/src/allocator.rs",
                    repo_file!("bundles/sdk/src/allocator.rs"),
                ),
                (
                    "vendor/outpost-sdk/src/buf.rs",
                    repo_file!("bundles/sdk/src/buf.rs"),
                ),
                (
                    "vendor/outpost-sdk/src/clock.rs",
                    repo_file!("bundles/sdk/src/clock.rs"),
                ),
                (
                    "vendor/outpost-sdk/src/config.rs",
                    repo_file!("bundles/sdk/src/config.rs"),
                ),
                (
                    "vendor/outpost-sdk/src/device.rs",
                    repo_file!("bundles/sdk/src/device.rs"),
                ),
                (
                    "vendor/outpost-sdk/src/error.rs",
                    repo_file!("bundles/sdk/src/error.rs"),
                ),
                (
                    "vendor/outpost-sdk/src/gpio.rs",
                    repo_file!("bundles/sdk/src/gpio.rs"),
                ),
                (
                    "vendor/outpost-sdk/src/handler.rs",
                    repo_file!("bundles/sdk/src/handler.rs"),
                ),
                (
                    "vendor/outpost-sdk/src/hex.rs",
                    repo_file!("bundles/sdk/src/hex.rs"),
                ),
                (
                    "vendor/outpost-sdk/src/kv.rs",
                    repo_file!("bundles/sdk/src/kv.rs"),
                ),
                (
                    "vendor/outpost-sdk/src/lib.rs",
                    repo_file!("bundles/sdk/src/lib.rs"),
                ),
                (
                    "vendor/outpost-sdk/src/log.rs",
                    repo_file!("bundles/sdk/src/log.rs"),
                ),
                (
                    "vendor/outpost-sdk/src/mqtt.rs",
                    repo_file!("bundles/sdk/src/mqtt.rs"),
                ),
                (
                    "vendor/outpost-sdk/src/panic.rs",
                    repo_file!("bundles/sdk/src/panic.rs"),
                ),
                (
                    "vendor/outpost-sdk/src/random.rs",
                    repo_file!("bundles/sdk/src/random.rs"),
                ),
                (
                    "vendor/outpost-sdk/src/sensor.rs",
                    repo_file!("bundles/sdk/src/sensor.rs"),
                ),
                (
                    "vendor/outpost-sdk/src/stack_str.rs",
                    repo_file!("bundles/sdk/src/stack_str.rs"),
                ),
                (
                    "vendor/outpost-sdk/src/stream.rs",
                    repo_file!("bundles/sdk/src/stream.rs"),
                ),
                (
                    "vendor/outpost-sdk/src/sys.rs",
                    repo_file!("bundles/sdk/src/sys.rs"),
                ),
                (
                    "vendor/outpost-sdk/src/trigger.rs",
                    repo_file!("bundles/sdk/src/trigger.rs"),
                ),
            ],
            rewrites: $rewrites,
        }
    };
}

/// Every template, in `--list` order.
pub(super) static TEMPLATES: &[Template] = &[
    rust_template!(
        "rust-sampler",
        "reads a sensor on a cron schedule into KV and a stream",
        "sampler",
        ["reading.toml", "slow-sensor.toml"],
        &[]
    ),
    rust_template!(
        "rust-watcher",
        "sensor trigger: counts samples, emits them, alerts on a threshold crossing",
        "watcher",
        ["crossing.toml", "threshold.toml", "bad-threshold.toml"],
        &[]
    ),
    rust_template!(
        "rust-commander",
        "MQTT command handler: answers commands sent to the device or its group",
        "commander",
        ["commands.toml"],
        // The example's test names its app in the command topics.
        &[("/commands/commander/", "/commands/{{name}}/")]
    ),
    Template {
        name: "c",
        language: "C",
        summary: "the watcher in C with the single-header SDK (clang + lld, no libc)",
        files: &[
            ("outpost.toml", repo_file!("templates/c/outpost.toml")),
            ("README.md", repo_file!("templates/c/README.md")),
            ("app.c", repo_file!("bundles/examples/watcher-c/watcher.c")),
            ("outpost.h", repo_file!("bundles/sdk-c/outpost.h")),
            (".gitignore", repo_file!("templates/c/gitignore")),
            (
                "tests/crossing.toml",
                repo_file!("bundles/examples/watcher-c/tests/crossing.toml"),
            ),
            (
                "tests/threshold.toml",
                repo_file!("bundles/examples/watcher-c/tests/threshold.toml"),
            ),
            (
                "tests/bad-threshold.toml",
                repo_file!("bundles/examples/watcher-c/tests/bad-threshold.toml"),
            ),
        ],
        rewrites: &[],
    },
    Template {
        name: "zig",
        language: "Zig",
        summary: "the watcher in Zig with the one-file SDK module (zig 0.14)",
        files: &[
            ("outpost.toml", repo_file!("templates/zig/outpost.toml")),
            ("README.md", repo_file!("templates/zig/README.md")),
            (
                "app.zig",
                repo_file!("bundles/examples/watcher-zig/app.zig"),
            ),
            ("outpost.zig", repo_file!("bundles/sdk-zig/outpost.zig")),
            (".gitignore", repo_file!("templates/zig/gitignore")),
            (
                "tests/crossing.toml",
                repo_file!("bundles/examples/watcher-zig/tests/crossing.toml"),
            ),
            (
                "tests/threshold.toml",
                repo_file!("bundles/examples/watcher-zig/tests/threshold.toml"),
            ),
            (
                "tests/bad-threshold.toml",
                repo_file!("bundles/examples/watcher-zig/tests/bad-threshold.toml"),
            ),
        ],
        rewrites: &[],
    },
    Template {
        name: "assemblyscript",
        language: "AssemblyScript",
        summary: "the watcher in AssemblyScript with the one-file SDK (asc 0.28, stub runtime)",
        files: &[
            (
                "outpost.toml",
                repo_file!("templates/assemblyscript/outpost.toml"),
            ),
            (
                "README.md",
                repo_file!("templates/assemblyscript/README.md"),
            ),
            (
                "assembly/index.ts",
                repo_file!("bundles/examples/watcher-as/assembly/index.ts"),
            ),
            ("outpost.ts", repo_file!("bundles/sdk-as/outpost.ts")),
            (
                ".gitignore",
                repo_file!("templates/assemblyscript/gitignore"),
            ),
            (
                "tests/crossing.toml",
                repo_file!("bundles/examples/watcher-as/tests/crossing.toml"),
            ),
            (
                "tests/threshold.toml",
                repo_file!("bundles/examples/watcher-as/tests/threshold.toml"),
            ),
            (
                "tests/bad-threshold.toml",
                repo_file!("bundles/examples/watcher-as/tests/bad-threshold.toml"),
            ),
        ],
        // The example imports the SDK from bundles/sdk-as; the app has it beside it.
        rewrites: &[("\"../../../sdk-as/outpost\"", "\"../outpost\"")],
    },
];
