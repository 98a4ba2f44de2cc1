//! Warm-invoke overhead of the server, against a raw HTTP/1.1 round trip on the same loopback,
//! client and runtime. Run with
//! `cargo test --release -p isobench-rapi --test api -- --ignored --nocapture latency`.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Method;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use isobench_rapi::{Invocation, InvokeOutcome, RuntimeApi, headers};

use crate::util::{Client, NEXT, config, response_path, start};

const WARMUP: usize = 200;
const SAMPLES: usize = 2_000;

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn pct(v: &[Duration], p: f64) -> Duration {
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Round trips of the same client against a trivial hyper server, `gap` apart.
async fn raw_round_trips(gap: Duration) -> Vec<Duration> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    let mut c = Client::connect(addr).await;
    let mut out = Vec::with_capacity(SAMPLES);
    for i in 0..WARMUP + SAMPLES {
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
        let t = Instant::now();
        let r = c.post("/", "{}").await;
        let dt = t.elapsed();
        assert_eq!(r.status, 200);
        if i >= WARMUP {
            out.push(dt);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing figure; run with --release --ignored --nocapture"]
async fn latency_warm_invoke_overhead() {
    // Everything is measured on worker threads (the test body's thread is not one), each figure
    // in two modes: back to back, and paced 1 ms apart so the workers go idle in between, as
    // they do under an open-loop load.
    const PACE: Duration = Duration::from_millis(1);
    let raw_b2b = tokio::spawn(raw_round_trips(Duration::ZERO)).await.unwrap();
    let raw_paced = tokio::spawn(raw_round_trips(PACE)).await.unwrap();

    let api = start(config(false));
    let addr = api.local_addr();
    // A trivial runtime: take the event, post it back.
    tokio::spawn(async move {
        let mut rt = Client::connect(addr).await;
        while let Ok(next) = rt.try_send(Method::GET, NEXT, &[], Bytes::new()).await {
            let id = next.header(headers::REQUEST_ID).unwrap().to_owned();
            if rt.try_send(Method::POST, &response_path(&id), &[], next.body).await.is_err() {
                break;
            }
        }
    });
    let on_worker = |gap| {
        let api = api.clone();
        tokio::spawn(async move { run(&api, gap).await })
    };
    // Back to back, the next invoke also waits for the runtime to read its 202 and send the next
    // GET /next (a second exchange the protocol needs per invoke). Paced, the runtime is already
    // parked on /next: the critical path is one hand-over and one result.
    let back_to_back = on_worker(Duration::ZERO).await.unwrap();
    let paced = on_worker(PACE).await.unwrap();
    api.shutdown().await;

    for (name, mut raw, mut r) in [("back to back", raw_b2b, back_to_back), ("paced 1 ms apart", raw_paced, paced)] {
        let raw_med = median(&mut raw);
        let total_med = median(&mut r.total);
        let overhead = total_med.saturating_sub(raw_med);
        println!("{name}, {SAMPLES} sequential:");
        println!("  raw HTTP round trip   median {:6.1} µs  p99 {:6.1} µs", us(raw_med), us(pct(&raw, 0.99)));
        println!(
            "  warm invoke           median {:6.1} µs  p90 {:6.1} µs  p99 {:6.1} µs",
            us(total_med),
            us(pct(&r.total, 0.90)),
            us(pct(&r.total, 0.99))
        );
        println!("    invoke -> handed over median {:6.1} µs", us(median(&mut r.to_runtime)));
        println!("    result read -> return median {:6.1} µs", us(median(&mut r.back)));
        println!("  invoke over raw round trip: median {:6.1} µs", us(overhead));
        // Generous, so it holds in debug builds too, yet fails on a real regression (a lost
        // wake-up, a timer in the path, Nagle's delayed ACKs).
        assert!(overhead < Duration::from_millis(2), "{name}: warm invoke overhead {overhead:?}");
    }
}

struct Samples {
    total: Vec<Duration>,
    to_runtime: Vec<Duration>,
    back: Vec<Duration>,
}

async fn run(api: &RuntimeApi, gap: Duration) -> Samples {
    let mut s = Samples {
        total: Vec::with_capacity(SAMPLES),
        to_runtime: Vec::with_capacity(SAMPLES),
        back: Vec::with_capacity(SAMPLES),
    };
    for i in 0..WARMUP + SAMPLES {
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
        let t = Instant::now();
        let outcome = api.invoke(Invocation::new(r#"{"k":"v"}"#, Duration::from_secs(5))).await.unwrap();
        let end = Instant::now();
        let InvokeOutcome::Ok { timing, .. } = outcome else { panic!("{outcome:?}") };
        if i >= WARMUP {
            s.total.push(end - t);
            s.to_runtime.push(timing.wait_for_runtime());
            s.back.push(end - timing.completed);
        }
    }
    s
}
