//! Benchmarks of the load driver's hot paths that do not need a network: generating the
//! arrival schedule (the dispatcher pulls one planned request per release) and recording one
//! completion into the per-(tenant, operation) histograms, through the same channel the
//! connection tasks use, and the same for a function invoke's completion (which also feeds
//! the cold/warm histograms and the billing sums).

use std::hint::black_box;
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use isobench_core::backend::StartKind;
use isobench_load::{Arrival, Completion, InvokeFacts, MixSpec, Op, Outcome, Recorder, Schedule, ScheduleSpec};

const TENANTS: usize = 8;

fn schedule_spec(arrival: Arrival) -> ScheduleSpec {
    ScheduleSpec {
        duration: Duration::from_secs(3_600),
        rate: 100_000.0,
        arrival,
        seed: 1,
        weights: vec![1.0; TENANTS],
        mix: MixSpec::default(),
        keys_per_tenant: 64,
        shape: Default::default(),
    }
}

/// Nanoseconds per planned request, 8 tenants, the heap merge and the op/key draws included.
fn schedule_generation(c: &mut Criterion) {
    const N: u64 = 100_000;
    let mut g = c.benchmark_group("load/schedule");
    // 100k requests per iteration take ~ms; 30 samples of 3 s keep the run short and the
    // estimate within a few percent on a quiet machine.
    g.sample_size(30).measurement_time(Duration::from_secs(3)).noise_threshold(0.03);
    g.throughput(Throughput::Elements(N));
    for (name, arrival) in [("constant", Arrival::Constant), ("poisson", Arrival::Poisson)] {
        let spec = schedule_spec(arrival);
        g.bench_function(name, |b| {
            b.iter(|| {
                Schedule::new(black_box(&spec))
                    .take(N as usize)
                    .fold(0u64, |acc, p| acc ^ u64::from(p.key) ^ p.at.as_nanos() as u64)
            })
        });
    }
    g.finish();
}

/// splitmix64: enough randomness for test data without a dev-dependency on `rand`.
struct Mix(u64);

impl Mix {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// Completions with realistic spreads: ~90% ok, some errors and timeouts, latencies from
/// tens of microseconds to milliseconds. With `function`, each carries what an invoke result
/// reports: ~2% cold starts (INIT of 50-250 ms), billed duration and memory size.
fn completions(n: usize, function: bool) -> Vec<Completion> {
    let mut rng = Mix(7);
    (0..n)
        .map(|i| {
            let intended = i as u64 * 10_000;
            let sent = intended + 1_000 + rng.below(60_000);
            let done = sent + 20_000 + rng.below(3_000_000);
            let outcome = match rng.below(100) {
                0..90 => Outcome::Ok { not_found: rng.below(10) == 0 },
                90..98 => Outcome::Error(isobench_load::ErrorKind::Http5xx),
                _ => Outcome::Timeout,
            };
            let invoke = (function && outcome != Outcome::Timeout).then(|| InvokeFacts {
                start: Some(if rng.below(50) == 0 {
                    StartKind::Cold { init: Duration::from_millis(50 + rng.below(200)) }
                } else {
                    StartKind::Warm
                }),
                billed_ms: Some((done - sent).div_ceil(1_000_000)),
                memory_mb: Some(512),
                first_byte_ns: None,
            });
            Completion {
                tenant: rng.below(TENANTS as u64) as u32,
                op: Op::ALL[rng.below(3) as usize],
                intended_ns: intended,
                sent_ns: sent,
                // One request in 20 waited for its connection (a healthy run has none).
                ready_ns: if rng.below(20) == 0 { intended + (sent - intended) / 2 } else { intended },
                done_ns: done,
                outcome,
                invoke,
            }
        })
        .collect()
}

/// One completion into the histograms: directly; through an mpsc channel, one message per
/// completion (how the connection tasks handed completions over before issue 17); and through
/// the shared batch they push to now, which the calling thread swaps out whole.
fn recording(c: &mut Criterion) {
    const BATCH: usize = 1_000;
    let input = completions(64 * 1024, false);
    let function_input = completions(64 * 1024, true);
    let mut g = c.benchmark_group("load/record");
    // Tens of nanoseconds per element: 50 samples of 2 s are plenty.
    g.sample_size(50).measurement_time(Duration::from_secs(2)).noise_threshold(0.03);
    g.throughput(Throughput::Elements(BATCH as u64));

    // Histograms are warmed (allocated and grown) once, as they are after a run's first
    // second; what remains per completion is the bucket arithmetic and the counters.
    let mut recorder = Recorder::new(TENANTS, u64::MAX);
    input.iter().for_each(|c| recorder.record(c));
    let mut at = 0;
    g.bench_function("direct", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                recorder.record(black_box(&input[at]));
                at = (at + 1) % input.len();
            }
        })
    });

    // A function target's completions: the same, plus the cold/warm and billing fields.
    let mut function_recorder = Recorder::new(TENANTS, u64::MAX);
    function_input.iter().for_each(|c| function_recorder.record(c));
    let mut at_fn = 0;
    g.bench_function("function", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                function_recorder.record(black_box(&function_input[at_fn]));
                at_fn = (at_fn + 1) % function_input.len();
            }
        })
    });

    let (tx, rx) = mpsc::channel::<Completion>();
    g.bench_function("via_channel", |b| {
        b.iter_batched(
            || (),
            |()| {
                for _ in 0..BATCH {
                    tx.send(input[at]).unwrap();
                    at = (at + 1) % input.len();
                }
                black_box(recorder.drain(&rx))
            },
            BatchSize::SmallInput,
        )
    });

    let shared = Mutex::new(Vec::with_capacity(4096));
    let mut batch: Vec<Completion> = Vec::with_capacity(4096);
    g.bench_function("via_batch", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                shared.lock().unwrap().push(input[at]);
                at = (at + 1) % input.len();
            }
            batch.clear();
            std::mem::swap(&mut *shared.lock().unwrap(), &mut batch);
            batch.iter().for_each(|c| recorder.record(c));
            black_box(batch.len())
        })
    });
    g.finish();
}

criterion_group!(schedule, schedule_generation);
criterion_group!(record, recording);
