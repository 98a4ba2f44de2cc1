use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::compute::thread_cpu_time;

fn state_with(hygiene: Hygiene, tmp: &Path, faults: FaultConfig, tenant: Option<&str>) -> State {
    State::new(Config {
        hygiene,
        tenant: tenant.map(str::to_owned),
        tmp_dir: tmp.to_owned(),
        faults,
        max_record_bytes: 64,
        probes: ProbeConfig::default(),
    })
    .unwrap()
}

fn state(hygiene: Hygiene, tmp: &Path) -> State {
    state_with(hygiene, tmp, FaultConfig::default(), None)
}

fn put<'a>(tenant: &'a str, key: &'a str, body: &'static [u8]) -> Request<'a> {
    Request { key, body: Bytes::from_static(body), ..Request::new(Op::Put, tenant) }
}

fn get<'a>(tenant: &'a str, key: &'a str) -> Request<'a> {
    Request { key, ..Request::new(Op::Get, tenant) }
}

fn compute(tenant: &str, us: u64) -> Request<'_> {
    Request { compute_us: us, ..Request::new(Op::Compute, tenant) }
}

async fn status(state: &State, req: Request<'_>) -> u16 {
    handle(state, req).await.status
}

fn error_kind(resp: &Response) -> String {
    let v: serde_json::Value = serde_json::from_slice(&resp.body).expect("error body is JSON");
    v["kind"].as_str().expect("kind").to_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn scoped_isolates_tenants_in_cache_and_files() {
    let tmp = tempfile::tempdir().unwrap();
    let s = state(Hygiene::Scoped, tmp.path());
    assert_eq!(status(&s, put("alpha", "k", b"secret-a")).await, 201);
    let miss = handle(&s, get("beta", "k")).await;
    assert_eq!((miss.status, error_kind(&miss).as_str()), (404, "not_found"));
    assert_eq!(status(&s, put("beta", "k", b"secret-b")).await, 201);
    assert_eq!(handle(&s, get("alpha", "k")).await.body, &b"secret-a"[..]);
    assert_eq!(handle(&s, get("beta", "k")).await.body, &b"secret-b"[..]);

    // A fresh process on the same temp dir finds each tenant's file, and only its own.
    let next = state(Hygiene::Scoped, tmp.path());
    assert_eq!(handle(&next, get("alpha", "k")).await.body, &b"secret-a"[..]);
    assert_eq!(status(&next, get("gamma", "k")).await, 404);
}

#[tokio::test]
async fn naive_leaks_a_record_across_tenants_under_the_same_key() {
    let tmp = tempfile::tempdir().unwrap();
    let s = state(Hygiene::Naive, tmp.path());
    assert_eq!(status(&s, put("alpha", "k", b"secret-a")).await, 201);
    let leaked = handle(&s, get("beta", "k")).await;
    assert_eq!((leaked.status, &leaked.body[..]), (200, &b"secret-a"[..]));

    // And through the left-behind file, into the next process that shares the temp dir.
    let next = state(Hygiene::Naive, tmp.path());
    assert_eq!(handle(&next, get("gamma", "k")).await.body, &b"secret-a"[..]);
}

#[tokio::test]
async fn scoped_files_are_private_and_purge_removes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let s = state(Hygiene::Scoped, tmp.path());
    handle(&s, put("alpha", "k", b"a")).await;
    handle(&s, put("beta", "k", b"b")).await;
    let file = tmp.path().join("tenants/alpha/k");
    assert_eq!(s.store().record_path("alpha", "k"), file);
    assert_eq!(std::fs::read(&file).unwrap(), b"a");
    assert_eq!(mode(&tmp.path().join("tenants/alpha")), 0o700);
    assert_eq!(mode(&file), 0o600);

    assert_eq!(status(&s, Request::new(Op::Purge, "alpha")).await, 204);
    assert!(!tmp.path().join("tenants/alpha").exists(), "tenant dir survived the purge");
    assert_eq!(status(&s, get("alpha", "k")).await, 404, "cache entry survived the purge");
    assert_eq!(handle(&s, get("beta", "k")).await.body, &b"b"[..], "purge touched another tenant");
    // Purging a tenant with nothing stored is fine too.
    assert_eq!(status(&s, Request::new(Op::Purge, "gamma")).await, 204);
}

#[tokio::test]
async fn naive_leaves_files_behind_and_purge_does_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let s = state(Hygiene::Naive, tmp.path());
    handle(&s, put("alpha", "k", b"a")).await;
    let file = tmp.path().join("cache-k");
    assert_eq!(s.store().record_path("alpha", "k"), file);
    assert_eq!(std::fs::read(&file).unwrap(), b"a");
    assert_eq!(status(&s, Request::new(Op::Purge, "alpha")).await, 204);
    assert!(file.exists(), "naive purge removed the file");
    assert_eq!(status(&s, get("alpha", "k")).await, 200, "naive purge emptied the cache");
    // No temp files of the atomic write are left next to it.
    let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["cache-k"]);
}

#[tokio::test]
async fn tenant_identity_is_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let s = state(Hygiene::Scoped, tmp.path());
    let cases = [
        (Request { claimed_tenant: None, ..get("alpha", "k") }, 400, "tenant_mismatch"),
        (Request { claimed_tenant: Some("beta"), ..get("alpha", "k") }, 400, "tenant_mismatch"),
        (get("Alpha", "k"), 400, "bad_tenant"),
        (get("-alpha", "k"), 400, "bad_tenant"),
        (get("alpha", "../k"), 400, "bad_key"),
        (get("alpha", ""), 400, "bad_key"),
        (compute("alpha", MAX_COMPUTE_US + 1), 400, "bad_compute"),
        (put("alpha", "k", &[b'x'; 65]), 413, "too_large"),
    ];
    for (req, want_status, want_kind) in cases {
        let desc = format!("{req:?}");
        let resp = handle(&s, req).await;
        assert_eq!((resp.status, error_kind(&resp).as_str()), (want_status, want_kind), "{desc}");
        assert_eq!(resp.content_type, CONTENT_JSON);
        assert_eq!(resp.error.map(ErrorKind::kind), Some(want_kind), "{desc}");
    }
    assert_eq!(status(&s, put("alpha", "k", &[b'x'; 64])).await, 201, "a record of exactly the limit");
}

#[tokio::test]
async fn a_silo_serves_only_its_tenant() {
    let tmp = tempfile::tempdir().unwrap();
    let s = state_with(Hygiene::Scoped, tmp.path(), FaultConfig::default(), Some("alpha"));
    assert_eq!(status(&s, put("alpha", "k", b"a")).await, 201);
    for req in [get("beta", "k"), put("beta", "k", b"b"), compute("beta", 1), Request::new(Op::Purge, "beta")] {
        let resp = handle(&s, req).await;
        assert_eq!((resp.status, error_kind(&resp).as_str()), (403, "wrong_tenant"));
    }
    assert_eq!(s.identity().tenant.as_deref(), Some("alpha"));
    assert!(State::new(Config { tenant: Some("Bad".into()), ..Config::default() }).is_err());
}

#[tokio::test]
async fn injected_errors_hit_tenant_traffic_only() {
    let tmp = tempfile::tempdir().unwrap();
    let faults = FaultConfig { error_rate: 1.0, seed: Some(1), ..FaultConfig::default() };
    let s = state_with(Hygiene::Scoped, tmp.path(), faults, None);
    for req in [put("alpha", "k", b"a"), get("alpha", "k"), compute("alpha", 1)] {
        let resp = handle(&s, req).await;
        assert_eq!((resp.status, error_kind(&resp).as_str()), (500, "injected"));
    }
    assert_eq!(status(&s, Request::new(Op::Health, "")).await, 200);
    assert_eq!(status(&s, Request::new(Op::WhoAmI, "")).await, 200);
    assert_eq!(status(&s, Request::new(Op::Purge, "alpha")).await, 204);
    // Validation comes first: a malformed request is a 400, not an injected 500.
    assert_eq!(status(&s, get("alpha", "..")).await, 400);
}

#[tokio::test]
async fn injected_error_rate_is_roughly_honoured_and_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |seed| {
        let faults = FaultConfig { error_rate: 0.2, seed: Some(seed), ..FaultConfig::default() };
        state_with(Hygiene::Scoped, tmp.path(), faults, None)
    };
    let mut sequences = Vec::new();
    for s in [run(5), run(5)] {
        let mut statuses = Vec::new();
        for _ in 0..2_000 {
            statuses.push(status(&s, get("alpha", "missing")).await);
        }
        let injected = statuses.iter().filter(|&&st| st == 500).count();
        let absent = statuses.iter().filter(|&&st| st == 404).count();
        assert_eq!(injected + absent, 2_000);
        // Binomial(2000, 0.2): sd ~18; allow 5 sd.
        assert!((310..=490).contains(&injected), "{injected} of 2000 injected");
        sequences.push(statuses);
    }
    assert_eq!(sequences[0], sequences[1], "same seed, different outcomes");
}

#[tokio::test]
async fn stalls_delay_then_answer_normally() {
    let tmp = tempfile::tempdir().unwrap();
    let stall = Duration::from_millis(60);
    let faults = FaultConfig { stall_rate: 1.0, stall, seed: Some(3), ..FaultConfig::default() };
    let s = state_with(Hygiene::Scoped, tmp.path(), faults, None);
    let started = Instant::now();
    assert_eq!(status(&s, put("alpha", "k", b"a")).await, 201);
    assert!(started.elapsed() >= stall, "no stall: {:?}", started.elapsed());
    let started = Instant::now();
    assert_eq!(status(&s, Request::new(Op::Health, "")).await, 200);
    assert!(started.elapsed() < stall, "health check stalled");
}

#[tokio::test]
async fn compute_burns_at_least_n_microseconds_of_thread_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let s = state(Hygiene::Scoped, tmp.path());
    let us = 30_000;
    // The current-thread test runtime runs the handler on this thread, so its clock counts.
    let before = thread_cpu_time();
    let resp = handle(&s, compute("alpha", us)).await;
    let used = thread_cpu_time() - before;
    assert_eq!(resp.status, 200);
    assert!(used >= Duration::from_micros(us), "thread used only {used:?}");
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert!(v["cpu_us"].as_u64().unwrap() >= us, "{v}");
    assert_eq!(v["sha256"].as_str().unwrap().len(), 64);
    // Different tenants start different chains.
    assert_ne!(handle(&s, compute("alpha", 0)).await.body, handle(&s, compute("beta", 0)).await.body);
}

#[tokio::test]
async fn whoami_tells_processes_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let a = state(Hygiene::Naive, tmp.path());
    let b = state(Hygiene::Naive, tmp.path());
    let who = |s: &State| serde_json::from_slice::<serde_json::Value>(&s.whoami()).unwrap();
    let (wa, wb) = (who(&a), who(&b));
    assert_eq!(wa["pid"], std::process::id());
    assert_eq!(wa["hygiene"], "naive");
    assert!(wa["tenant"].is_null());
    let nonce = wa["instance_nonce"].as_str().unwrap();
    assert!(nonce.len() == 32 && nonce.bytes().all(|c| c.is_ascii_hexdigit()), "{nonce}");
    assert_ne!(wa["instance_nonce"], wb["instance_nonce"]);
    assert!(wa["started_unix_ns"].as_u64().unwrap() > 1_700_000_000_000_000_000);
    assert_eq!(wa["invocations"], 0);
    let resp = handle(&a, Request::new(Op::WhoAmI, "")).await;
    assert_eq!((resp.status, resp.content_type, resp.error), (200, CONTENT_JSON, None));
    assert_eq!(resp.body, a.whoami());
}

#[tokio::test]
async fn whoami_counts_invocations_and_keeps_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let s = state(Hygiene::Scoped, tmp.path());
    let before = serde_json::from_slice::<serde_json::Value>(&s.whoami()).unwrap();
    assert_eq!((s.count_invocation(), s.count_invocation(), s.invocations()), (1, 2, 2));
    // Counting is the front end's business: handling does not count.
    handle(&s, put("alpha", "k", b"a")).await;
    let after =
        serde_json::from_slice::<serde_json::Value>(&handle(&s, Request::new(Op::WhoAmI, "")).await.body).unwrap();
    assert_eq!(after["invocations"], 2);
    let mut fixed = after.as_object().unwrap().clone();
    fixed.remove("invocations");
    let mut fixed_before = before.as_object().unwrap().clone();
    fixed_before.remove("invocations");
    assert_eq!(fixed, fixed_before, "identity changed between calls");
}

#[test]
fn every_error_body_is_json_naming_its_kind() {
    for &kind in ErrorKind::ALL {
        let resp = Response::error(kind);
        let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(v["kind"], kind.kind());
        assert_eq!(v["error"], kind.message());
        assert_eq!(resp.error, Some(kind));
        assert!((400..600).contains(&resp.status));
    }
}
