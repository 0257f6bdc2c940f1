//! Runtime benchmarks: each figure next to a baseline measured in the same run, and their ratio.
//!
//! 1. Invocation latency of a trivial handler (`noop.wasm`) through `Runtime::invoke` (fresh
//!    store + instance + call) vs bare wasmi doing the same on the same engine.
//! 2. Latency of one KV write + one emit, committed durably, through `Executor::run_blocking` vs
//!    one bare redb commit of the same bytes.
//! 3. Committed invocations per second from many threads sharing the group committer vs the same
//!    executor used from one thread (one fsync per invocation).
//!
//! Run with `cargo bench -p outpost --bench runtime` (add `-- noop`, `-- commit` or
//! `-- throughput` for one section). The guests are built from `bundles/` first.
//! Figures are wall-clock on a shared machine: compare ratios, not absolute values, across runs.

mod support;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use outpost::executor::Executor;
use outpost::runtime::engines::EngineWithLinker;
use outpost::runtime::{EnginePool, Firing, LoadedComponent, Runtime, Services, loader};
use outpost::store::committer::{self, CommitterThread};
use outpost::store::{OutboxLimits, RecordBody, RecordV1, Store, StoredRecord, tables};
use outpost_hal::sim::SimBoard;
use outpost_hal::{Clock, SystemClock};
use outpost_manifest::{ComponentSpec, Grants, Limits};
use redb::{Database, Durability};
use support::{cpu_model, load_average};

/// App name used for KV namespacing and outbox rows.
const APP: &str = "bench";
/// What `kv_emit` writes and emits (see bundles/testing/kv_emit).
const KV_EMIT_DATA: &[u8] = b"0123456789abcdef";
/// Same as the agent's `store::CACHE_BYTES` (private there): a device-sized redb cache.
const REDB_CACHE_BYTES: usize = 4 * 1024 * 1024;

/// Section 1: invocations per side, after warm-up, measured in interleaved blocks.
const NOOP_ITERS: usize = 20_000;
const NOOP_WARMUP: usize = 2_000;
/// Section 2: durable commits per side (each one is an fsync).
const COMMIT_ITERS: usize = 3_000;
const COMMIT_WARMUP: usize = 100;
/// Interleave ours/baseline in this many blocks so machine noise hits both alike.
const BLOCKS: usize = 10;
/// Section 3: client threads sharing the committer, and invocations per run (split evenly).
/// 8 is what `outpost up`/`agent` allow (`max_blocking_threads(8)`); 16-64 is the brief's range.
const THREADS: &[usize] = &[8, 16, 32, 64];
const CONCURRENT_TOTAL: usize = 64_000;
/// Section 3 baseline: one thread, at most this many invocations or this long.
const SEQ_MAX: usize = 10_000;
const SEQ_TIME: Duration = Duration::from_secs(2);
/// Safety cap for one concurrent run, so a slow disk cannot blow the time budget.
const CONCURRENT_TIME: Duration = Duration::from_secs(3);
/// Section 3 is repeated this many times (interleaved) and the median round reported.
const ROUNDS: usize = 3;

fn main() {
    let noop_wasm = read_guest("noop");
    let kv_emit_wasm = read_guest("kv_emit");
    println!(
        "outpost runtime benchmark ({} cores, {}, load average {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        load_average()
    );
    println!();

    // `cargo bench -p outpost --bench runtime -- throughput` runs only the sections named.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    if wanted("noop") {
        bench_noop(&noop_wasm);
        println!();
    }
    if wanted("commit") {
        bench_commit_latency(&kv_emit_wasm);
        println!();
    }
    if wanted("throughput") {
        bench_throughput(&kv_emit_wasm);
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Trivial invocation: Runtime::invoke vs bare wasmi.

fn bench_noop(wasm: &[u8]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let bench = BenchApp::start(dir.path(), &[("noop", wasm, Grants::default())]);
    let runtime = bench.executor.runtime().clone();

    // The baseline: the same engine (so the same config: fuel, stack limits), an empty linker
    // made once, and per call only what wasmi itself needs.
    let engine = bench.engines[0].engine.clone();
    let module = wasmi::Module::new(&engine, wasm).expect("noop compiles");
    let linker = wasmi::Linker::<()>::new(&engine);
    let fuel = Limits::default().fuel;
    let firing = Firing::manual(Vec::new());

    let ours_once = || {
        let firing = firing.clone();
        let started = Instant::now();
        let execution = runtime.invoke("noop", firing);
        let elapsed = started.elapsed();
        assert!(execution.result.is_ok(), "noop failed: {execution:?}");
        black_box(execution);
        elapsed
    };
    let bare_once = || {
        let started = Instant::now();
        let mut store = wasmi::Store::new(&engine, ());
        store.set_fuel(fuel).expect("fuel is on");
        let instance = linker
            .instantiate_and_start(&mut store, &module)
            .expect("noop instantiates");
        let handle = instance
            .get_typed_func::<(), i32>(&store, "outpost_handle")
            .expect("noop exports outpost_handle");
        let status = handle.call(&mut store, ()).expect("noop runs");
        black_box((status, store));
        let elapsed = started.elapsed();
        assert_eq!(status, 0);
        elapsed
    };

    let (ours, bare) = interleaved(NOOP_WARMUP, NOOP_ITERS, ours_once, bare_once);
    let ratio = ours.p50 / bare.p50;
    println!("invoke noop (fresh store+instance+call, {NOOP_ITERS} iters per side, same engine)");
    println!(
        "  Runtime::invoke      p50 {}  p99 {} | bare wasmi p50 {}  p99 {} | ratio p50 {ratio:.2}x  (p99 {:.2}x)  target <= 2x  {}",
        us(ours.p50),
        us(ours.p99),
        us(bare.p50),
        us(bare.p99),
        ours.p99 / bare.p99,
        verdict(ratio <= 2.0)
    );
    bench.stop();
}

// ---------------------------------------------------------------------------------------------
// 2. One KV write + one emit, durably committed: Executor::run_blocking vs one redb commit.

fn bench_commit_latency(wasm: &[u8]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let bench = BenchApp::start(dir.path().join("agent").as_path(), &[kv_emit(wasm)]);
    // A reference, not a clone: a live executor keeps the commit thread from ending in `stop`.
    let executor = &bench.executor;

    let base_dir = dir.path().join("baseline");
    std::fs::create_dir_all(&base_dir).expect("baseline dir");
    let mut builder = Database::builder();
    builder.set_cache_size(REDB_CACHE_BYTES);
    let db = builder
        .create(base_dir.join("baseline.redb"))
        .expect("baseline redb opens");
    // Exactly the row the agent writes for kv_emit's one emit.
    let row = StoredRecord::V1(RecordV1 {
        time_ms: SystemClock::new().wall_ms(),
        app: APP.into(),
        component: "kv-emit".into(),
        body: RecordBody::Event {
            stream: "bench".into(),
            data: KV_EMIT_DATA.to_vec(),
        },
    })
    .encode()
    .expect("row encodes");
    let mut seq = 0u64;

    // Where our time goes: in the sandbox, and waiting for the commit thread.
    let mut sandbox = Vec::with_capacity(COMMIT_WARMUP + COMMIT_ITERS);
    let mut commit_wait = Vec::with_capacity(COMMIT_WARMUP + COMMIT_ITERS);
    let ours_once = || {
        let firing = Firing::manual(Vec::new());
        let started = Instant::now();
        let outcome = executor.run_blocking("kv-emit", firing);
        let elapsed = started.elapsed();
        assert!(outcome.is_ok(), "kv_emit failed: {:?}", outcome.result);
        sandbox.push(outcome.duration);
        commit_wait.push(outcome.commit_wait);
        black_box(outcome);
        elapsed
    };
    let bare_once = || {
        seq += 1;
        let started = Instant::now();
        let mut txn = db.begin_write().expect("write txn");
        txn.set_durability(Durability::Immediate)
            .expect("durability");
        {
            let mut kv = txn.open_table(tables::KV).expect("kv table");
            kv.insert((APP, "bench", "k"), KV_EMIT_DATA)
                .expect("kv insert");
            let mut outbox = txn.open_table(tables::OUTBOX).expect("outbox table");
            outbox.insert(seq, row.as_slice()).expect("outbox insert");
        }
        txn.commit().expect("commit");
        started.elapsed()
    };

    let (ours, bare) = interleaved(COMMIT_WARMUP, COMMIT_ITERS, ours_once, bare_once);
    println!(
        "kv_emit committed (1 KV write + 1 emit, Durability::Immediate, {COMMIT_ITERS} iters per side)"
    );
    println!(
        "  Executor::run_blocking p50 {}  p99 {} | bare redb commit p50 {}  p99 {} | ratio p50 {:.2}x  (p99 {:.2}x)",
        us(ours.p50),
        us(ours.p99),
        us(bare.p50),
        us(bare.p99),
        ours.p50 / bare.p50,
        ours.p99 / bare.p99,
    );
    let sandbox = summarize(sandbox.split_off(COMMIT_WARMUP));
    let commit_wait = summarize(commit_wait.split_off(COMMIT_WARMUP));
    println!(
        "    of which: sandbox p50 {}  p99 {} | commit wait p50 {}  p99 {}",
        us(sandbox.p50),
        us(sandbox.p99),
        us(commit_wait.p50),
        us(commit_wait.p99),
    );
    drop(db);
    bench.stop();
}

// ---------------------------------------------------------------------------------------------
// 3. Throughput: many threads sharing the group committer vs one thread.

fn bench_throughput(wasm: &[u8]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let bench = BenchApp::start(dir.path(), &[kv_emit(wasm)]);
    let executor = &bench.executor;

    // Warm the file and the engine a little before timing anything.
    for _ in 0..50 {
        let outcome = executor.run_blocking("kv-emit", Firing::manual(Vec::new()));
        assert!(outcome.is_ok(), "kv_emit failed: {:?}", outcome.result);
    }

    // Rounds of [baseline, each thread count], so a noisy neighbour hits every configuration
    // alike; each figure is the median round.
    let mut seq_runs = Vec::with_capacity(ROUNDS);
    let mut group_runs: Vec<Vec<Run>> = THREADS.iter().map(|_| Vec::new()).collect();
    for _ in 0..ROUNDS {
        // Baseline: the same executor from one thread: every invocation waits for its own fsync.
        seq_runs.push(measure_run(&bench, 1, SEQ_MAX, SEQ_TIME));
        for (runs, &threads) in group_runs.iter_mut().zip(THREADS) {
            runs.push(measure_run(
                &bench,
                threads,
                CONCURRENT_TOTAL / threads,
                CONCURRENT_TIME,
            ));
        }
    }

    let seq = median_run(seq_runs);
    println!(
        "committed kv_emit invocations/s (group commit vs one commit per invocation, Durability::Immediate; median of {ROUNDS} rounds)"
    );
    println!(
        "   1 thread  (baseline) {:>9.0} inv/s  ({} in {:.2} s, {:.2} commits/txn, a txn every {})",
        seq.rate(),
        seq.done,
        seq.secs,
        seq.batch(),
        us(seq.cycle()),
    );
    for (runs, &threads) in group_runs.into_iter().zip(THREADS) {
        let all: Vec<String> = runs.iter().map(|r| format!("{:.0}", r.rate())).collect();
        let run = median_run(runs);
        let ratio = run.rate() / seq.rate();
        println!(
            "  {threads:>2} threads (group) {:>9.0} inv/s  ({} in {:.2} s, {:.1} commits/txn, a txn every {}) | ratio {ratio:.1}x vs 1 thread  target >= 10x  {}  [rounds: {}]",
            run.rate(),
            run.done,
            run.secs,
            run.batch(),
            us(run.cycle()),
            verdict(ratio >= 10.0),
            all.join(", ")
        );
    }
    bench.stop();
}

/// One timed run of the throughput section.
struct Run {
    done: usize,
    secs: f64,
    commits: u64,
    transactions: u64,
}

impl Run {
    fn rate(&self) -> f64 {
        self.done as f64 / self.secs
    }
    fn batch(&self) -> f64 {
        self.commits as f64 / self.transactions.max(1) as f64
    }
    /// Mean time between durable transactions, in seconds.
    fn cycle(&self) -> f64 {
        self.secs / self.transactions.max(1) as f64
    }
}

/// `threads` clients each run kv_emit `per_thread` times (or until `limit` has passed).
fn measure_run(bench: &BenchApp, threads: usize, per_thread: usize, limit: Duration) -> Run {
    let (c0, t0) = commit_stats(bench);
    let started = Instant::now();
    let deadline = started + limit;
    let done: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let executor = bench.executor.clone();
                scope.spawn(move || {
                    let mut n = 0;
                    while n < per_thread && Instant::now() < deadline {
                        let outcome = executor.run_blocking("kv-emit", Firing::manual(Vec::new()));
                        assert!(outcome.is_ok(), "kv_emit failed: {:?}", outcome.result);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).sum()
    });
    let secs = started.elapsed().as_secs_f64();
    let (c1, t1) = commit_stats(bench);
    Run {
        done,
        secs,
        commits: c1 - c0,
        transactions: t1 - t0,
    }
}

fn median_run(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    runs.swap_remove(runs.len() / 2)
}

fn commit_stats(bench: &BenchApp) -> (u64, u64) {
    let stats = bench.committer.stats();
    (
        stats.commits.load(Ordering::Relaxed),
        stats.transactions.load(Ordering::Relaxed),
    )
}

// ---------------------------------------------------------------------------------------------
// Assembling the app pieces, as `app::App::start_with` does, without a manifest file.

struct BenchApp {
    executor: Executor,
    committer: committer::Committer,
    thread: CommitterThread,
    /// The engines the components were loaded with (for the bare-wasmi baseline).
    engines: Vec<EngineWithLinker>,
}

impl BenchApp {
    fn start(dir: &Path, components: &[(&str, &[u8], Grants)]) -> BenchApp {
        let store = Store::open_dir(dir).expect("store opens");
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
        let services = Services {
            kv: Arc::new(store.clone()),
            sensors: Arc::new(SimBoard::empty(clock.clone())),
            clock: clock.clone(),
            variables: Arc::new(BTreeMap::new()),
            device: Arc::from("bench"),
            gpio: Arc::new(outpost_hal::SimGpio::new()),
            send: Arc::new(outpost::sync::batch::Planner::assumed_default()),
        };
        let pool = EnginePool::default();
        let loaded: Vec<LoadedComponent> = components
            .iter()
            .map(|(id, wasm, grants)| {
                let spec = ComponentSpec {
                    id: (*id).to_string(),
                    source: PathBuf::from(format!("{id}.wasm")),
                    build: None,
                    grants: grants.clone(),
                    limits: Limits::default(),
                    triggers: Vec::new(),
                };
                loader::load_bytes(&pool, &spec, wasm).expect("component loads")
            })
            .collect();
        let engines = loaded.iter().map(|c| c.engine.clone()).collect();
        let runtime = Arc::new(Runtime::from_components(APP, loaded, services));
        let (committer, thread) = committer::spawn(store, OutboxLimits::default());
        let executor = Executor::new(runtime, committer.clone(), clock);
        BenchApp {
            executor,
            committer,
            thread,
            engines,
        }
    }

    /// Drops every committer handle and waits for the commit thread to drain.
    fn stop(self) {
        let BenchApp {
            executor,
            committer,
            thread,
            ..
        } = self;
        drop(executor);
        drop(committer);
        thread.join();
    }
}

fn kv_emit(wasm: &[u8]) -> (&'static str, &[u8], Grants) {
    (
        "kv-emit",
        wasm,
        Grants {
            kv: vec!["bench".into()],
            streams: vec!["bench".into()],
            ..Grants::default()
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Measuring.

/// Percentiles of one side, in seconds.
struct Summary {
    p50: f64,
    p99: f64,
}

/// Value at percentile `p` (0..=100) of an ascending sample (nearest rank).
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    assert!(!sorted.is_empty(), "no samples");
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64()
}

fn summarize(mut samples: Vec<Duration>) -> Summary {
    samples.sort_unstable();
    Summary {
        p50: percentile(&samples, 50.0),
        p99: percentile(&samples, 99.0),
    }
}

/// Warms both sides up, then runs `iters` of each in `BLOCKS` alternating blocks.
fn interleaved(
    warmup: usize,
    iters: usize,
    mut ours: impl FnMut() -> Duration,
    mut bare: impl FnMut() -> Duration,
) -> (Summary, Summary) {
    for _ in 0..warmup {
        ours();
        bare();
    }
    let per_block = iters.div_ceil(BLOCKS);
    let mut a = Vec::with_capacity(iters);
    let mut b = Vec::with_capacity(iters);
    for block in 0..BLOCKS {
        let n = per_block.min(iters - a.len());
        // Alternate which side goes first, so neither always runs on a cooler cache.
        if block % 2 == 0 {
            a.extend((0..n).map(|_| ours()));
            b.extend((0..n).map(|_| bare()));
        } else {
            b.extend((0..n).map(|_| bare()));
            a.extend((0..n).map(|_| ours()));
        }
    }
    (summarize(a), summarize(b))
}

fn us(seconds: f64) -> String {
    let micros = seconds * 1e6;
    if micros < 100.0 {
        format!("{micros:>6.2} µs")
    } else {
        format!("{micros:>6.0} µs")
    }
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

// ---------------------------------------------------------------------------------------------
// Guests and machine.

/// The guest `NAME.wasm`, built from `bundles/` by the test kit (once per process).
fn read_guest(name: &str) -> Vec<u8> {
    let path = outpost_testkit::guests::guest(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}
