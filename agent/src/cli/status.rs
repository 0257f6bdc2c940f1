//! `outpost status`, and the one way `status`, `kv` and `outbox list` read a device: ask the
//! agent running on the state directory through its control socket, or, when none answers,
//! open the state file. Both paths answer with the same types (`outpost::control::answer`),
//! so the output is the same either way.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use outpost::control::protocol::{Request, Response, StatusReport, StoreSummary};
use outpost::control::{answer, client};

/// `outpost status`
#[derive(clap::Args)]
pub struct StatusArgs {
    /// State directory.
    #[arg(long, default_value = ".outpost")]
    data: PathBuf,
    /// Print the status as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Asks the agent on `data`, or reads its state file when no agent answers; a refused
/// request is an error.
pub fn ask(data: &Path, request: Request) -> anyhow::Result<Response> {
    let response = match client::ask(data, &request)? {
        Some(response) => response,
        None => answer::answer(&super::open_store(data)?, None, &request),
    };
    match response {
        Response::Error { message } => anyhow::bail!("{message}"),
        response => Ok(response),
    }
}

/// Prints `value` as one line of JSON.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// Runs `outpost status`.
pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let Response::Status(status) = ask(&args.data, Request::Status)? else {
        anyhow::bail!("the agent answered a status request with something else");
    };
    if args.json {
        print_json(&status)?;
    } else {
        print_status(&status, &args.data);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status(status: &StatusReport, data: &Path) {
    match &status.agent {
        Some(agent) => {
            let uptime = humantime::format_duration(Duration::from_secs(agent.uptime_s));
            println!(
                "device {}: agent {} running for {uptime}",
                agent.device, agent.agent_version
            );
            let drained = match agent.last_drain_s_ago {
                Some(s) => format!("last drained {s}s ago"),
                None => "not drained yet".into(),
            };
            println!(
                "broker: {}, {drained}; {} connect(s), {} failed attempt(s), {} message(s) published",
                if agent.connected {
                    "connected"
                } else {
                    "not connected"
                },
                agent.connects,
                agent.connect_failures,
                agent.published
            );
            if let Some(error) = &agent.last_error {
                println!("last error: {error}");
            }
        }
        None => println!(
            "no agent answers on {}: read from the state file",
            data.display()
        ),
    }
    if status.apps.is_empty() {
        println!("apps: none");
    }
    for app in &status.apps {
        let mut notes = Vec::new();
        if app.on_trial {
            notes.push("on trial".to_string());
        }
        if let Some(previous) = &app.previous {
            notes.push(format!("previous {previous}"));
        }
        if let Some(update) = &app.last_update {
            notes.push(format!("last update: {update}"));
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join("; "))
        };
        println!("app {} {}{notes}", app.name, app.version);
    }
    let s = &status.store;
    print_counters(s);
    println!(
        "inbox: {} message(s), {} byte(s); {} failed invocation(s), {} skipped run(s)",
        s.inbox.records, s.inbox.bytes, s.failed_invocations, s.skipped_runs
    );
    if s.dead_letters.records > 0 {
        println!(
            "dead letters: {} record(s), {} byte(s) (outpost outbox dead --data {})",
            s.dead_letters.records,
            s.dead_letters.bytes,
            data.display()
        );
    }
}

/// The outbox and store lines `outbox list` and `status` share.
pub fn print_counters(c: &StoreSummary) {
    println!(
        "outbox: {} record(s), {} byte(s); dropped {} ({} bytes); rejected {} record(s) in {} invocation(s)",
        c.outbox.records,
        c.outbox.bytes,
        c.dropped.records,
        c.dropped.bytes,
        c.rejected_records,
        c.rejected_invocations
    );
    println!("store: incarnation {}", c.incarnation);
    for note in &c.notes {
        println!("store note: {note}");
    }
}
