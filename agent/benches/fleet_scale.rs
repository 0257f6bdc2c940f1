//! Fleet-scale benchmark: N real `outpost agent` processes (default 100;
//! `OUTPOST_SCALE_DEVICES=1000` for the fleet-scale target) on one mosquitto take the same
//! 256 KiB update, and the bench prints the wall time from the spawn of `fleet publish` until
//! every device has reported it `accepted`, with the CPU time the devices and the broker used
//! for it, per device.
//!
//! Everything is the real thing, through the test kit: mosquitto on a free loopback port
//! (tuned: no persistence, no per-packet log), the `outpost` binary for `keygen`, `bundle build`
//! and `fleet publish`, and N agents in group `scale`, each with its own state directory. The
//! app is `beacon` on a 10 s interval, so the apps themselves cost next to nothing while the
//! update runs. Version 1.0.0 is installed first (not timed), then 2.0.0 is timed.
//!
//! Baseline, in the same run right after: N `mosquitto_sub` clients started together, each
//! fetching the same retained chunks of 2.0.0 at QoS 1 and exiting: the transport alone at the
//! same scale (their CPU includes their own start, so it is an upper bound of the transport's).
//!
//! CPU time is read from /proc (devices, broker, and this process's waited-for children for the
//! baseline clients), in 10 ms ticks per process: summed over N processes, fine-grained enough.
//!
//! Run with `cargo bench -p outpost --bench fleet_scale` (N = 100, ~1 min) or
//! `OUTPOST_SCALE_DEVICES=1000 cargo bench -p outpost --bench fleet_scale` (~5 min, ~5 GB of
//! memory). Needs `/usr/sbin/mosquitto` and `mosquitto_sub`.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use outpost::events::AgentEvent;
use outpost_testkit::agent::{Agent, proc_cpu_time, waited_children_cpu_time};
use outpost_testkit::beacon::Beacon;
use outpost_testkit::broker::Broker;
use outpost_testkit::fleet::Cli;
use outpost_testkit::s;
use outpost_testkit::subscriber::Subscriber;
use serde_json::Value;
use support::{cpu_model, load_average};

/// The `outpost` binary under test.
const OUTPOST: &str = env!("CARGO_BIN_EXE_outpost");
/// The fleet group every device follows.
const GROUP: &str = "scale";
/// Bytes of padding that make the bundle 256 KiB and a little more.
const PADDING: usize = 256 * 1024;
/// `fleet publish`'s default chunk size.
const CHUNK_BYTES: u64 = 32 * 1024;
/// Every device's update reports.
const REPORTS: &str = "outpost/+/updates";
/// Safety net for every wait (a whole fleet's update on a loaded 2-core machine).
const WAIT: Duration = Duration::from_secs(600);

fn main() {
    let devices: usize = std::env::var("OUTPOST_SCALE_DEVICES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    println!(
        "outpost fleet-scale benchmark: {devices} devices on one broker ({} cores, {}, load average {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        load_average(),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let cli = Cli::new(OUTPOST);
    let (key, public) = cli.keygen(dir.path(), "release");
    let bundle = |version: &str, mode: &str| {
        let beacon = Beacon::new(version, mode)
            .trigger("interval = \"10s\"")
            .padded(PADDING);
        cli.beacon_bundle(dir.path(), &key, &beacon)
    };
    let (first, second) = (bundle("1.0.0", "m1"), bundle("2.0.0", "m2"));
    let bundle_bytes = std::fs::metadata(&second).expect("bundle").len();

    let broker = Broker::start_tuned();
    let reports = Subscriber::start_with(broker.port(), &[REPORTS]);
    let started = Instant::now();
    let agents: Vec<Agent> = (0..devices)
        .map(|i| spawn_agent(&broker.url(), &dir.path().join(format!("d{i}")), i, &public))
        .collect();
    for agent in &agents {
        agent
            .wait_event_after(0, WAIT, |e| matches!(e, AgentEvent::Connected))
            .unwrap_or_else(|| panic!("a device did not connect:\n{}", agent.output_tail(20)));
    }
    println!(
        "{devices} devices connected in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let publish = |file: &Path| cli.publish(file, &key, &broker.url(), GROUP, &[]);
    publish(&first);
    let installed = wait_accepted(&reports, "1.0.0", devices);
    println!("1.0.0 installed on every device (not timed): {installed:.1} s");

    // The timed update.
    let pids: Vec<u32> = agents.iter().map(Agent::pid).collect();
    let (devices_cpu0, broker_cpu0) = (total_cpu(&pids), cpu_time(broker.pid()));
    let started = Instant::now();
    publish(&second);
    wait_accepted(&reports, "2.0.0", devices);
    let wall = started.elapsed();
    let devices_cpu = total_cpu(&pids) - devices_cpu0;
    let broker_cpu = cpu_time(broker.pid()) - broker_cpu0;

    let baseline = transport_baseline(&broker, devices, bundle_bytes.div_ceil(CHUNK_BYTES));

    let per = |d: Duration| d.as_secs_f64() * 1e3 / devices as f64;
    println!();
    println!(
        "update to 2.0.0, a {bundle_bytes}-byte bundle in 32 KiB chunks, to {devices} devices:"
    );
    println!(
        "  spawn of `fleet publish` → every device reported `accepted`   {:>8.2} s",
        wall.as_secs_f64()
    );
    println!(
        "  per device: wall {:>6.2} ms, CPU of the devices {:>6.2} ms + the broker {:>6.2} ms = {:>6.2} ms",
        per(wall),
        per(devices_cpu),
        per(broker_cpu),
        per(devices_cpu + broker_cpu)
    );
    println!(
        "baseline: {devices} mosquitto_sub clients fetching the same retained chunks at once:"
    );
    println!(
        "  spawn → every client has every chunk                          {:>8.2} s",
        baseline.wall.as_secs_f64()
    );
    println!(
        "  per device: wall {:>6.2} ms, CPU of the clients {:>6.2} ms + the broker {:>6.2} ms = {:>6.2} ms",
        per(baseline.wall),
        per(baseline.clients_cpu),
        per(baseline.broker_cpu),
        per(baseline.clients_cpu + baseline.broker_cpu)
    );
    println!(
        "  update / baseline: wall {:.1}x, CPU {:.1}x",
        wall.as_secs_f64() / baseline.wall.as_secs_f64(),
        (devices_cpu + broker_cpu).as_secs_f64()
            / (baseline.clients_cpu + baseline.broker_cpu)
                .as_secs_f64()
                .max(1e-3)
    );
    drop(agents);
}

/// `outpost agent` number `i`, following [`GROUP`], trusting `public`, state in `data`.
fn spawn_agent(broker_url: &str, data: &Path, i: usize, public: &Path) -> Agent {
    let device = format!("scale-{i}");
    Agent::spawn(
        OUTPOST,
        &[
            "--device-id",
            &device,
            "--broker",
            broker_url,
            "--data",
            s(data),
            "--trust",
            s(public),
            "--group",
            GROUP,
        ],
    )
}

/// Waits until `devices` distinct devices reported `version` accepted; returns the seconds it
/// took from the call.
fn wait_accepted(reports: &Subscriber, version: &str, devices: usize) -> f64 {
    let started = Instant::now();
    let accepted = |seen: &outpost_testkit::seen::Seen| {
        let mut who: Vec<String> = seen
            .messages
            .iter()
            .filter_map(|m| serde_json::from_slice::<Value>(&m.payload).ok())
            .filter(|r| r["result"] == "accepted" && r["to_version"] == version)
            .filter_map(|r| r["device"].as_str().map(str::to_string))
            .collect();
        who.sort();
        who.dedup();
        who.len()
    };
    assert!(
        reports.wait_for(WAIT, |seen| accepted(seen) >= devices),
        "only {} of {devices} devices reported {version} accepted",
        reports.with(accepted)
    );
    started.elapsed().as_secs_f64()
}

/// What the transport-only baseline measured.
struct Baseline {
    wall: Duration,
    clients_cpu: Duration,
    broker_cpu: Duration,
}

/// `devices` `mosquitto_sub` clients, started together, each taking the `chunks` retained chunks
/// of the current offer at QoS 1 and exiting once it has them all.
fn transport_baseline(broker: &Broker, devices: usize, chunks: u64) -> Baseline {
    let filter = format!("outpost/fleet/{GROUP}/apps/beacon/chunks/#");
    let port = broker.port().to_string();
    let clients_cpu0 = children_cpu();
    let broker_cpu0 = cpu_time(broker.pid());
    let started = Instant::now();
    let mut clients: Vec<std::process::Child> = (0..devices)
        .map(|_| {
            Command::new("mosquitto_sub")
                .args(["-h", "127.0.0.1", "-p", &port, "-q", "1", "-t", &filter])
                // Exit once it has every chunk (only the current offer's are retained).
                .args(["-C", &chunks.to_string(), "-W", "120"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("mosquitto_sub (apt-get install mosquitto-clients)")
        })
        .collect();
    for client in &mut clients {
        let status = client.wait().expect("mosquitto_sub reaped");
        assert!(
            status.success(),
            "a baseline client did not get every chunk: {status}"
        );
    }
    Baseline {
        wall: started.elapsed(),
        clients_cpu: children_cpu() - clients_cpu0,
        broker_cpu: cpu_time(broker.pid()) - broker_cpu0,
    }
}

/// CPU time process `pid` used so far.
fn cpu_time(pid: u32) -> Duration {
    proc_cpu_time(&pid.to_string()).expect("/proc/PID/stat")
}

/// CPU time of every process in `pids`.
fn total_cpu(pids: &[u32]) -> Duration {
    pids.iter().map(|&pid| cpu_time(pid)).sum()
}

/// CPU time of this process's children that have been waited for.
fn children_cpu() -> Duration {
    waited_children_cpu_time().expect("/proc/self/stat")
}
