//! The fault campaign: while a high-rate app commits, the agent is SIGKILLed, the broker
//! restarted and the link cut, in a random order; at the end every committed event (by sequence
//! number) must have arrived at an independent subscriber. It prints committed / received /
//! duplicates and the catch-up times.
//!
//! `campaign::full` (20 kills, 3 broker restarts, 10 link cuts; about half a minute) runs in CI;
//! `campaign::marathon` (100 kills, 10 restarts, 50 cuts) is for a quiet machine:
//! `cargo test -p outpost --test e2e -- --ignored campaign::marathon --nocapture`. Seed either
//! with `OUTPOST_TEST_SEED=N` to replay a run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use outpost::events::AgentEvent;
use outpost_testkit::agent::Agent;
use outpost_testkit::beacon::Beacon;
use outpost_testkit::broker::Broker;
use outpost_testkit::prefill::open_state;
use outpost_testkit::proxy::Proxy;
use outpost_testkit::subscriber::Subscriber;

use crate::OUTPOST;

/// Safety net for any single wait.
const TIMEOUT: Duration = Duration::from_secs(90);
/// The stream the beacon emits to.
const STREAM: &str = "beat";

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// SIGKILL the agent, start it again on the same state.
    KillAgent,
    /// Stop and start the broker (same port, same persistence).
    RestartBroker,
    /// Cut the agent's TCP connection at the proxy.
    CutLink,
}

/// How many of each fault.
struct Plan {
    kills: usize,
    restarts: usize,
    cuts: usize,
    /// Events delivered between two faults, so each fault hits a working pipeline.
    between: u64,
}

#[test]
fn full() {
    campaign(
        "campaign-full",
        Plan {
            kills: 20,
            restarts: 3,
            cuts: 10,
            between: 150,
        },
    );
}

#[test]
#[ignore = "minutes: cargo test -p outpost --test e2e -- --ignored campaign::marathon"]
fn marathon() {
    campaign(
        "campaign-marathon",
        Plan {
            kills: 100,
            restarts: 10,
            cuts: 50,
            between: 300,
        },
    );
}

/// The highest sequence number of `device` the subscriber has seen.
fn highest(sub: &Subscriber, device: &str) -> u64 {
    sub.with(|s| s.events_of(device).map(|a| a.seq).max().unwrap_or(0))
}

/// Waits until the subscriber has every sequence number in `1..=up_to` of `device`.
fn wait_all(sub: &Subscriber, device: &str, up_to: u64) -> bool {
    let committed = BTreeMap::from([(STREAM.to_string(), (1..=up_to).collect::<Vec<u64>>())]);
    sub.wait_for_all(device, &committed, TIMEOUT)
}

/// The sequence number the next commit of the stopped agent on `data` would get, minus one:
/// everything up to it was committed.
fn committed(data: &std::path::Path) -> u64 {
    open_state(data)
        .counters()
        .expect("counters")
        .next_seq
        .saturating_sub(1)
}

fn campaign(device: &str, plan: Plan) {
    let seed = std::env::var("OUTPOST_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("{device}: seed {seed} (rerun with OUTPOST_TEST_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut faults: Vec<Fault> = std::iter::repeat_n(Fault::KillAgent, plan.kills)
        .chain(std::iter::repeat_n(Fault::RestartBroker, plan.restarts))
        .chain(std::iter::repeat_n(Fault::CutLink, plan.cuts))
        .collect();
    rng.shuffle(&mut faults);

    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    // An event every 2 ms: the app commits all through the campaign.
    let app = Beacon::new("1.0.0", "on")
        .trigger("interval = \"2ms\"")
        .write_app(dir.path());
    let app = app.to_str().expect("utf-8 path").to_string();
    let mut broker = Broker::start();
    let proxy = Proxy::start(broker.port());
    let sub = Subscriber::start(broker.port());
    broker.wait_saved();
    let start = |data: &std::path::Path| {
        Agent::start(OUTPOST, device, &proxy.url(), data, &["--app", &app])
    };
    let mut agent = start(&data);
    let started = Instant::now();
    let mut kill_catch_up = Duration::ZERO;
    let mut resume = Duration::ZERO;
    for (n, fault) in faults.iter().enumerate() {
        let target = highest(&sub, device) + plan.between;
        assert!(
            sub.wait_for(TIMEOUT, |s| s.events_of(device).any(|a| a.seq >= target)),
            "fault {n}: no delivery up to seq {target}\n{}",
            agent.output_tail(30)
        );
        let before = highest(&sub, device);
        let at = Instant::now();
        match fault {
            Fault::KillAgent => {
                agent.kill();
                let owed = committed(&data);
                agent = start(&data);
                assert!(
                    wait_all(&sub, device, owed),
                    "fault {n}: events committed before the kill never arrived\n{}",
                    agent.output_tail(30)
                );
                kill_catch_up = kill_catch_up.max(at.elapsed());
            }
            Fault::RestartBroker => {
                broker.stop();
                broker.restart();
            }
            Fault::CutLink => {
                proxy.cut();
            }
        }
        assert!(
            sub.wait_for(TIMEOUT, |s| s.events_of(device).any(|a| a.seq > before)),
            "fault {n} ({fault:?}): delivery did not resume\n{}",
            agent.output_tail(30)
        );
        resume = resume.max(at.elapsed());
    }
    // Stop committing, then drain what is left with a sync-only agent.
    let status = agent.terminate();
    assert!(status.success(), "agent exited with {status}");
    let total = committed(&data);
    let mut drainer = Agent::start(OUTPOST, device, &proxy.url(), &data, &[]);
    let final_wait = Instant::now();
    assert!(
        wait_all(&sub, device, total),
        "not every committed event arrived: {} of {total}\n{}",
        sub.unique(device),
        drainer.output_tail(30)
    );
    assert!(drainer.wait_event(|e| matches!(e, AgentEvent::Drained), 1, TIMEOUT));
    drainer.terminate();
    let (arrivals, unique) = sub.with(|s| (s.events_of(device).count(), s.unique(device)));
    let missing = (1..=total)
        .filter(|seq| !sub.with(|s| s.has(device, STREAM, *seq)))
        .count();
    eprintln!(
        "{device}: {} kills, {} broker restarts, {} link cuts in {:?}: committed {total}, \
         received {unique} distinct ({arrivals} arrivals, {} duplicates, ratio {:.3}), missing \
         {missing}; catch-up after a kill ≤ {kill_catch_up:?}, delivery resumed after any fault \
         ≤ {resume:?}, final drain {:?}",
        plan.kills,
        plan.restarts,
        plan.cuts,
        started.elapsed(),
        arrivals - unique,
        arrivals as f64 / unique.max(1) as f64,
        final_wait.elapsed(),
    );
    assert_eq!(missing, 0);
    assert!(total > plan.between * faults.len() as u64);
}
