//! `outpost kv` and `outpost outbox`: read a state directory. `kv` and `outbox list` ask the
//! running agent through its control socket and read the file only when none answers
//! (`super::status::ask`); `outbox quarantine|dead` read the file (while no agent holds it).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use outpost::control::protocol::Request;
use outpost::report;

use super::open_store;
use super::status::ask;

/// `outpost kv ...`
#[derive(clap::Subcommand)]
pub enum KvCommand {
    /// List entries, optionally of one app and namespace.
    List {
        /// State directory.
        #[arg(long, default_value = ".outpost")]
        data: PathBuf,
        /// Only this app.
        #[arg(long)]
        app: Option<String>,
        /// Only this namespace.
        #[arg(long)]
        ns: Option<String>,
        /// Print `{"reply":"kv","entries":[{app, namespace, key, value_base64, text?}]}` as one
        /// JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Print one value.
    Get {
        /// Namespace.
        ns: String,
        /// Key.
        key: String,
        /// App (needed when the state holds several).
        #[arg(long)]
        app: Option<String>,
        /// State directory.
        #[arg(long, default_value = ".outpost")]
        data: PathBuf,
    },
}

/// `outpost state ...` (hidden: the agent runs it on itself).
#[derive(clap::Subcommand)]
pub enum StateCommand {
    /// Check a state file: exit 0 if healthy, 2 if damaged (after salvaging its outbox and
    /// inbox rows into the dump), 3 if another process holds it, 4 if it cannot be checked now
    /// (full or read-only disk: not damage). Run in a child process because
    /// redb may panic (abort) on a damaged page.
    Verify {
        /// The state file.
        file: PathBuf,
        /// Where to write the rows still readable if it is damaged.
        #[arg(long)]
        salvage_to: PathBuf,
        /// Only salvage (the check already failed).
        #[arg(long)]
        salvage_only: bool,
    },
}

/// `outpost outbox ...`
#[derive(clap::Subcommand)]
pub enum OutboxCommand {
    /// List queued records, oldest first, and the outbox counters.
    List {
        /// State directory.
        #[arg(long, default_value = ".outpost")]
        data: PathBuf,
        /// First sequence number to show.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Most records to show.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print `{"reply":"outbox","entries":[...],"counters":{...}}` as one JSON line.
        #[arg(long)]
        json: bool,
    },
    /// List rows moved to quarantine because they failed their checksum or did not decode.
    Quarantine {
        /// State directory.
        #[arg(long, default_value = ".outpost")]
        data: PathBuf,
        /// Most rows to show.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// List dead letters: committed records that can never be sent (larger than the packet
    /// limit), moved out of the outbox and counted, with why.
    Dead {
        /// State directory.
        #[arg(long, default_value = ".outpost")]
        data: PathBuf,
        /// First sequence number to show.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Most records to show.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

/// Runs an `outpost state` command; the exit code is the verdict.
pub fn state(command: StateCommand) -> anyhow::Result<ExitCode> {
    use outpost::store::salvage::{self, Verdict};
    let StateCommand::Verify {
        file,
        salvage_to,
        salvage_only,
    } = command;
    let verdict = if salvage_only {
        Verdict::Damaged("salvage only".into())
    } else {
        salvage::verify(&file)
    };
    Ok(match verdict {
        Verdict::Healthy => ExitCode::SUCCESS,
        Verdict::Locked => {
            eprintln!("{} is in use by another process", file.display());
            ExitCode::from(3)
        }
        Verdict::Unavailable(reason) => {
            eprintln!("{reason}");
            ExitCode::from(4)
        }
        Verdict::Damaged(reason) => {
            // The last stderr line is the reason the agent keeps in its note.
            match salvage::salvage(&file, &salvage_to) {
                Ok(rows) => eprintln!("{reason}; {rows} rows still readable through redb"),
                Err(_) => eprintln!("{reason}; no rows readable through redb"),
            }
            ExitCode::from(2)
        }
    })
}

/// Runs an `outpost kv` command.
pub fn kv(command: KvCommand) -> anyhow::Result<ExitCode> {
    let out = match command {
        KvCommand::List {
            data,
            app,
            ns,
            json,
        } => ask(&data, Request::KvList { app, namespace: ns }, json)?,
        KvCommand::Get { ns, key, app, data } => ask(
            &data,
            Request::KvGet {
                app,
                namespace: ns,
                key,
            },
            false,
        )?,
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// Runs an `outpost outbox` command.
pub fn outbox(command: OutboxCommand) -> anyhow::Result<ExitCode> {
    let out = match command {
        OutboxCommand::List {
            data,
            from,
            limit,
            json,
        } => ask(&data, Request::OutboxList { from, limit }, json)?,
        OutboxCommand::Quarantine { data, limit } => return quarantine(&data, limit),
        OutboxCommand::Dead { data, from, limit } => return dead_letters(&data, from, limit),
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// `outpost outbox quarantine`: the damaged rows set aside, with why and their bytes' size.
fn quarantine(data: &std::path::Path, limit: usize) -> anyhow::Result<ExitCode> {
    let store = open_store(data)?;
    let file = store.path().display().to_string();
    let rows = store
        .quarantined(limit)
        .with_context(|| format!("reading the quarantine of {file}"))?;
    for row in &rows {
        println!(
            "q{} {} {} row {}: {} ({} bytes: {})",
            row.id,
            report::clock_time(row.at_ms),
            row.table,
            row.key,
            row.reason,
            row.bytes.len(),
            report::preview(&row.bytes)
        );
    }
    println!("quarantine: {} row(s) in {file}", rows.len());
    Ok(ExitCode::SUCCESS)
}

/// `outpost outbox dead`: each dead letter with its reason, then the counters.
fn dead_letters(data: &std::path::Path, from: u64, limit: usize) -> anyhow::Result<ExitCode> {
    let store = open_store(data)?;
    for dead in store.dead_letters(from, limit)? {
        let what = match dead.record() {
            Some(record) => format!(
                "{} {}/{} {}",
                report::clock_time(record.time_ms),
                record.app,
                record.component,
                report::record_line(&record.body.into())
            ),
            None => format!("({} stored bytes that do not decode)", dead.row.len()),
        };
        println!("#{} {what} — {}", dead.seq, dead.reason);
    }
    let c = store.counters()?;
    println!(
        "dead letters: {} record(s), {} byte(s) over the device's life",
        c.dead_records, c.dead_bytes
    );
    Ok(ExitCode::SUCCESS)
}
