//! `outpost test`: runs an app's component tests (`tests/*.toml`, docs/TESTING.md) and prints
//! what failed as a diff; `--json` for tools.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use outpost::devtest::{self, run::TestReport};
use serde::Serialize;

use super::manifest_path;

/// Arguments of `outpost test`.
#[derive(clap::Args)]
pub struct TestArgs {
    /// App directory (holding outpost.toml and tests/).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Only these test files (default: every DIR/tests/*.toml).
    files: Vec<PathBuf>,
    /// One JSON document on stdout instead of text.
    #[arg(long)]
    json: bool,
}

/// The `--json` document.
#[derive(Serialize)]
struct Summary<'a> {
    passed: usize,
    failed: usize,
    tests: Vec<JsonTest<'a>>,
}

#[derive(Serialize)]
struct JsonTest<'a> {
    passed: bool,
    #[serde(flatten)]
    report: &'a TestReport,
}

/// Runs `outpost test`: exit 0 if every test passed, 1 if one failed, 2 (an error) if a file
/// or the app cannot be loaded.
pub fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let manifest = outpost_manifest::load(&manifest_path(&args.dir))?;
    let base = manifest
        .path
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| args.dir.clone());
    let files = if args.files.is_empty() {
        devtest::discover(&base)
            .with_context(|| format!("listing {}", base.join("tests").display()))?
    } else {
        args.files.clone()
    };
    anyhow::ensure!(
        !files.is_empty(),
        "no tests: write scenarios in {} (docs/TESTING.md)",
        base.join("tests/*.toml").display()
    );
    let mut reports = Vec::with_capacity(files.len());
    for file in &files {
        let report = devtest::run::run_file(&manifest, file)
            .with_context(|| format!("test {}", file.display()))?;
        if !args.json {
            print_report(&report);
        }
        reports.push(report);
    }
    let failed = reports.iter().filter(|r| !r.passed()).count();
    let passed = reports.len() - failed;
    if args.json {
        let summary = Summary {
            passed,
            failed,
            tests: reports
                .iter()
                .map(|report| JsonTest {
                    passed: report.passed(),
                    report,
                })
                .collect(),
        };
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "{}: {passed} passed, {failed} failed",
            if failed == 0 { "ok" } else { "FAILED" }
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_report(report: &TestReport) {
    let status = if report.passed() { "ok" } else { "FAILED" };
    println!(
        "test {} ... {status} ({} invocation(s), {:.1} ms)",
        report.file.display(),
        report.invocations,
        report.millis
    );
    if report.passed() {
        return;
    }
    if let Some(description) = &report.description {
        println!("  ({description})");
    }
    println!("  (- expected, + actual)");
    for mismatch in &report.mismatches {
        print!("{}", mismatch.render());
    }
}
