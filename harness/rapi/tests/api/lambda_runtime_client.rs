//! `lambda_runtime` reads its configuration from the process environment and sets
//! `_X_AMZN_TRACE_ID` on every invocation, so it runs as a child process (the example
//! `echo_runtime`, which `cargo test` builds alongside this test binary), as a real environment
//! would.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use isobench_rapi::{FunctionConfig, Invocation, InvokeOutcome};
use serde_json::{Value, json};

use crate::util::start;

fn echo_runtime_binary() -> PathBuf {
    // <target>/<profile>/deps/api-<hash> -> <target>/<profile>/examples/echo_runtime
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target profile directory");
    let path = profile_dir.join("examples").join(format!("echo_runtime{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test -p isobench-rapi` (which builds examples), \
         or `cargo build -p isobench-rapi --example echo_runtime` first",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_lambda_runtime_crate_runs_unchanged() {
    let mut config = FunctionConfig::new("echo-fn", Instant::now());
    config.tenant_isolation = true;
    config.memory_mb = 256;
    let arn = config.function_arn.clone();
    let api = start(config.clone());
    let mut child = tokio::process::Command::new(echo_runtime_binary())
        .env_clear()
        .envs(config.runtime_env(&api.local_addr().to_string()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn echo_runtime");

    let init = api.wait_init(Duration::from_secs(20)).await.expect("runtime finished init");
    assert!(init > Duration::ZERO && init < Duration::from_secs(20), "{init:?}");

    let mut pids = Vec::new();
    for n in 0..5 {
        let request_id = isobench_rapi::new_request_id();
        let before_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let inv = Invocation::new(json!({ "n": n }).to_string(), Duration::from_secs(10))
            .with_tenant("tenant-green")
            .with_request_id(request_id.clone());
        let outcome = api.invoke(inv).await.expect("invoke");
        let InvokeOutcome::Ok { payload, timing } = outcome else { panic!("invoke {n}: {outcome:?}") };
        let v: Value = serde_json::from_slice(&payload).expect("JSON response");
        assert_eq!(v["echo"], json!({ "n": n }));
        assert_eq!(v["request_id"], request_id.as_str());
        assert_eq!(v["tenant_id"], "tenant-green", "the tenant id reaches Context::tenant_id");
        assert_eq!(v["invoked_function_arn"], arn.as_str());
        assert!(v["xray_trace_id"].as_str().is_some_and(|t| t.starts_with("Root=1-")), "{v}");
        assert_eq!(v["function_name"], "echo-fn");
        assert_eq!(v["memory_mb"], 256);
        let deadline = v["deadline_ms"].as_u64().unwrap();
        assert!(deadline >= before_ms + 9_000 && deadline <= before_ms + 11_000, "deadline {deadline}");
        assert!(timing.billed_ms() >= 1);
        pids.push(v["pid"].as_u64().unwrap());
    }
    // Warm: one process served them all.
    assert!(pids.windows(2).all(|w| w[0] == w[1]), "{pids:?}");

    // A handler error arrives as a function error of the handler's type.
    let outcome =
        api.invoke(Invocation::new(r#"{"fail":true}"#, Duration::from_secs(10)).with_tenant("tenant-green")).await;
    match outcome.expect("invoke") {
        InvokeOutcome::FunctionError { error_type, error_type_header, body, .. } => {
            assert_eq!(error_type, "EchoFailure");
            assert_eq!(error_type_header.as_deref(), Some("unhandled"));
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["errorMessage"], "asked to fail");
        }
        other => panic!("expected a function error, got {other:?}"),
    }

    // The environment stays usable after an error.
    let outcome = api.invoke(Invocation::new("{}", Duration::from_secs(10)).with_tenant("tenant-green")).await;
    assert!(matches!(outcome, Ok(InvokeOutcome::Ok { .. })), "{outcome:?}");

    // The process dies: the next invoke says so instead of hanging.
    child.kill().await.expect("kill runtime");
    api.environment_died();
    let outcome = api.invoke(Invocation::new("{}", Duration::from_secs(10)).with_tenant("tenant-green")).await;
    assert!(matches!(outcome, Ok(InvokeOutcome::EnvironmentGone { .. })), "{outcome:?}");
    api.shutdown().await;
}
