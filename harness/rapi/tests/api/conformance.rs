use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::Method;
use isobench_rapi::{
    FunctionConfig, InitFailure, Invocation, InvokeError, InvokeOutcome, RuntimeApi, error_types, headers,
};
use isobench_testkit::ports::loopback_listener;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::util::{Client, INIT_ERROR, NEXT, config, error_path, response_path, start};

const LONG: Duration = Duration::from_secs(30);

fn spawn_invoke(api: &Arc<RuntimeApi>, inv: Invocation) -> JoinHandle<Result<InvokeOutcome, InvokeError>> {
    let api = api.clone();
    tokio::spawn(async move { api.invoke(inv).await })
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()
}

#[tokio::test]
async fn next_carries_the_payload_and_the_documented_headers() {
    let cfg = config(false);
    let arn = cfg.function_arn.clone();
    let api = start(cfg);
    let mut rt = Client::connect(api.local_addr()).await;

    let deadline = Duration::from_secs(20);
    let inv = spawn_invoke(&api, Invocation::new(r#"{"hello":"world"}"#, deadline).with_request_id("req-1"));
    let before = now_ms();
    let next = rt.get(NEXT).await;
    assert_eq!(next.status, 200);
    assert_eq!(next.body, r#"{"hello":"world"}"#);
    assert_eq!(next.header("content-type"), Some("application/json"));
    assert_eq!(next.header(headers::REQUEST_ID), Some("req-1"));
    assert_eq!(next.header(headers::INVOKED_FUNCTION_ARN), Some(arn.as_str()));
    let deadline_ms: u128 = next.header(headers::DEADLINE_MS).expect("deadline header").parse().expect("integer ms");
    assert!(deadline_ms > now_ms(), "deadline {deadline_ms} is not in the future");
    assert!(deadline_ms >= before + 19_000 && deadline_ms <= now_ms() + 20_000, "deadline {deadline_ms}, now {before}");
    let trace = next.header(headers::TRACE_ID).expect("trace header");
    assert!(trace.starts_with("Root=1-") && trace.contains(";Parent=") && trace.contains(";Sampled="), "{trace}");
    assert_eq!(next.header(headers::INVOCATION_ID).map(str::len), Some(32));
    for absent in [headers::TENANT_ID, headers::CLIENT_CONTEXT, headers::COGNITO_IDENTITY] {
        assert_eq!(next.header(absent), None, "{absent} must be absent when not set");
    }
    // The first /next ended INIT.
    let init = api.wait_init(Duration::from_secs(1)).await.expect("init done");
    assert_eq!(api.init_duration(), Some(init));

    rt.post(&response_path("req-1"), r#"{"answer":42}"#).await.assert_accepted();
    match inv.await.unwrap().unwrap() {
        InvokeOutcome::Ok { payload, timing } => {
            assert_eq!(payload, r#"{"answer":42}"#);
            assert!(timing.submitted <= timing.handed_over && timing.handed_over <= timing.completed);
            assert!(timing.billed_ms() >= 1);
            assert!(timing.duration() < Duration::from_secs(5));
        }
        other => panic!("expected Ok, got {other:?}"),
    }

    // Optional headers appear when set; a generated request id is a UUID; the connection is reused.
    let mut inv = Invocation::new("{}", deadline);
    inv.client_context = Some(r#"{"custom":{"k":"v"}}"#.to_owned());
    inv.cognito_identity = Some(r#"{"cognitoIdentityId":"id","cognitoIdentityPoolId":"pool"}"#.to_owned());
    inv.trace_id = Some("Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1".to_owned());
    let inv = spawn_invoke(&api, inv);
    let next = rt.get(NEXT).await;
    assert_eq!(next.header(headers::CLIENT_CONTEXT), Some(r#"{"custom":{"k":"v"}}"#));
    assert!(next.header(headers::COGNITO_IDENTITY).unwrap().contains("pool"));
    assert_eq!(
        next.header(headers::TRACE_ID).unwrap(),
        "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
    );
    let id = next.header(headers::REQUEST_ID).unwrap().to_owned();
    assert_eq!(id.split('-').map(str::len).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{id}");
    rt.post(&response_path(&id), "null").await.assert_accepted();
    assert!(matches!(inv.await.unwrap().unwrap(), InvokeOutcome::Ok { .. }));
}

#[tokio::test]
async fn tenant_id_header_only_in_tenant_isolation_mode() {
    let api = start(config(true));
    let mut rt = Client::connect(api.local_addr()).await;
    assert!(matches!(api.invoke(Invocation::new("{}", LONG)).await, Err(InvokeError::TenantIdRequired)));

    let inv = spawn_invoke(&api, Invocation::new("{}", LONG).with_tenant("tenant-blue"));
    let next = rt.get(NEXT).await;
    assert_eq!(next.header(headers::TENANT_ID), Some("tenant-blue"));
    let id = next.header(headers::REQUEST_ID).unwrap().to_owned();
    rt.post(&response_path(&id), "1").await.assert_accepted();
    assert!(matches!(inv.await.unwrap().unwrap(), InvokeOutcome::Ok { .. }));

    let plain = start(config(false));
    let r = plain.invoke(Invocation::new("{}", LONG).with_tenant("tenant-blue")).await;
    assert!(matches!(r, Err(InvokeError::TenantIdNotAllowed)), "{r:?}");
}

#[tokio::test]
async fn a_second_result_for_the_same_id_is_403_invalid_state_transition() {
    let api = start(config(false));
    let mut rt = Client::connect(api.local_addr()).await;
    let inv = spawn_invoke(&api, Invocation::new("{}", LONG).with_request_id("once"));
    rt.get(NEXT).await;
    rt.post(&response_path("once"), "first").await.assert_accepted();
    rt.post(&response_path("once"), "second").await.assert_error(403, error_types::INVALID_STATE_TRANSITION);
    rt.post(&error_path("once"), "{}").await.assert_error(403, error_types::INVALID_STATE_TRANSITION);
    match inv.await.unwrap().unwrap() {
        InvokeOutcome::Ok { payload, .. } => assert_eq!(payload, "first"),
        other => panic!("expected the first result, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_request_id_is_400_invalid_request_id() {
    let api = start(config(false));
    let mut rt = Client::connect(api.local_addr()).await;
    // During init there is no current invocation at all.
    rt.post(&response_path("nobody"), "x").await.assert_error(400, error_types::INVALID_REQUEST_ID);

    let inv = spawn_invoke(&api, Invocation::new("{}", LONG).with_request_id("real"));
    rt.get(NEXT).await;
    rt.post(&response_path("nobody"), "x").await.assert_error(400, error_types::INVALID_REQUEST_ID);
    rt.post(&error_path("nobody"), "{}").await.assert_error(400, error_types::INVALID_REQUEST_ID);
    // The real invocation is unaffected.
    rt.post(&response_path("real"), "ok").await.assert_accepted();
    assert!(matches!(inv.await.unwrap().unwrap(), InvokeOutcome::Ok { .. }));
}

#[tokio::test]
async fn an_oversized_response_is_413_and_the_invoke_fails_with_response_size_too_large() {
    let mut cfg = config(false);
    cfg.max_response_bytes = 1024;
    let api = start(cfg);
    let mut rt = Client::connect(api.local_addr()).await;

    // Exactly at the limit is fine.
    let inv = spawn_invoke(&api, Invocation::new("{}", LONG).with_request_id("at-limit"));
    rt.get(NEXT).await;
    rt.post(&response_path("at-limit"), vec![b'a'; 1024]).await.assert_accepted();
    assert!(matches!(inv.await.unwrap().unwrap(), InvokeOutcome::Ok { payload, .. } if payload.len() == 1024));

    // Over it, with a Content-Length.
    let inv = spawn_invoke(&api, Invocation::new("{}", LONG).with_request_id("too-big"));
    rt.get(NEXT).await;
    let r = rt.post(&response_path("too-big"), vec![b'a'; 2000]).await;
    r.assert_error(413, error_types::REQUEST_ENTITY_TOO_LARGE);
    match inv.await.unwrap().unwrap() {
        InvokeOutcome::FunctionError { error_type, body, .. } => {
            assert_eq!(error_type, error_types::RESPONSE_SIZE_TOO_LARGE);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["errorType"], error_types::RESPONSE_SIZE_TOO_LARGE);
            assert!(v["errorMessage"].as_str().unwrap().contains("2000 bytes"), "{v}");
        }
        other => panic!("expected a function error, got {other:?}"),
    }

    // Over it, chunked (no Content-Length), written on a raw socket.
    let mut rt = Client::connect(api.local_addr()).await;
    let inv = spawn_invoke(&api, Invocation::new("{}", LONG).with_request_id("chunked"));
    rt.get(NEXT).await;
    let mut raw = tokio::net::TcpStream::connect(api.local_addr()).await.unwrap();
    let chunk = "b".repeat(700);
    let req = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        response_path("chunked"),
        chunk.len(),
        chunk.len()
    );
    raw.write_all(req.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 12];
    raw.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 413", "{}", String::from_utf8_lossy(&head));
    assert!(matches!(
        inv.await.unwrap().unwrap(),
        InvokeOutcome::FunctionError { error_type, .. } if error_type == error_types::RESPONSE_SIZE_TOO_LARGE
    ));
}

#[tokio::test]
async fn an_error_post_is_a_function_error_with_its_type() {
    let api = start(config(false));
    let mut rt = Client::connect(api.local_addr()).await;

    let inv = spawn_invoke(&api, Invocation::new("{}", LONG).with_request_id("e1"));
    rt.get(NEXT).await;
    let body =
        r#"{"errorMessage":"Error parsing event data.","errorType":"InvalidEventDataException","stackTrace":[]}"#;
    let r = rt
        .send(Method::POST, &error_path("e1"), &[(headers::FUNCTION_ERROR_TYPE, "Unhandled")], Bytes::from(body))
        .await;
    r.assert_accepted();
    match inv.await.unwrap().unwrap() {
        InvokeOutcome::FunctionError { error_type, error_type_header, body: got, timing } => {
            assert_eq!(error_type, "InvalidEventDataException");
            assert_eq!(error_type_header.as_deref(), Some("Unhandled"));
            assert_eq!(got, body);
            assert!(timing.billed_ms() >= 1);
        }
        other => panic!("expected a function error, got {other:?}"),
    }

    // No JSON type: the header names it.
    let inv = spawn_invoke(&api, Invocation::new("{}", LONG).with_request_id("e2"));
    rt.get(NEXT).await;
    rt.send(Method::POST, &error_path("e2"), &[(headers::FUNCTION_ERROR_TYPE, "Runtime.Crash")], Bytes::new())
        .await
        .assert_accepted();
    assert!(matches!(
        inv.await.unwrap().unwrap(),
        InvokeOutcome::FunctionError { error_type, .. } if error_type == "Runtime.Crash"
    ));

    // Neither: Unhandled.
    let inv = spawn_invoke(&api, Invocation::new("{}", LONG).with_request_id("e3"));
    rt.get(NEXT).await;
    rt.post(&error_path("e3"), "boom").await.assert_accepted();
    assert!(matches!(
        inv.await.unwrap().unwrap(),
        InvokeOutcome::FunctionError { error_type, body, .. } if error_type == "Unhandled" && body == "boom"
    ));
}

#[tokio::test]
async fn an_init_error_fails_the_pending_and_every_later_invoke() {
    let api = start(config(false));
    let mut rt = Client::connect(api.local_addr()).await;
    // Queued before the runtime ever asks.
    let pending = spawn_invoke(&api, Invocation::new("{}", LONG));
    tokio::task::yield_now().await;

    let body = r#"{"errorMessage":"Failed to load function.","errorType":"InvalidFunctionException"}"#;
    rt.send(Method::POST, INIT_ERROR, &[(headers::FUNCTION_ERROR_TYPE, "Runtime.NoSuchHandler")], Bytes::from(body))
        .await
        .assert_accepted();

    let expect_init_error = |o: InvokeOutcome| match o {
        InvokeOutcome::InitError { error_type, body: got } => {
            assert_eq!(error_type.as_deref(), Some("Runtime.NoSuchHandler"));
            assert_eq!(got, body);
        }
        other => panic!("expected an init error, got {other:?}"),
    };
    expect_init_error(pending.await.unwrap().unwrap());
    expect_init_error(api.invoke(Invocation::new("{}", LONG)).await.unwrap());
    match api.wait_init(Duration::from_secs(1)).await {
        Err(InitFailure::Reported { error_type, .. }) => {
            assert_eq!(error_type.as_deref(), Some("Runtime.NoSuchHandler"))
        }
        other => panic!("expected a reported init failure, got {other:?}"),
    }
    assert_eq!(api.init_duration(), None);
    // The runtime may neither report again nor ask for work.
    rt.post(INIT_ERROR, "{}").await.assert_error(403, error_types::INVALID_STATE_TRANSITION);
    rt.get(NEXT).await.assert_error(403, error_types::INVALID_STATE_TRANSITION);
    // A dead process after an init error keeps reporting the init error.
    api.environment_died();
    expect_init_error(api.invoke(Invocation::new("{}", LONG)).await.unwrap());
}

#[tokio::test]
async fn init_error_after_init_ended_is_403() {
    let api = start(config(false));
    let mut rt = Client::connect(api.local_addr()).await;
    let inv = spawn_invoke(&api, Invocation::new("{}", LONG).with_request_id("a"));
    rt.get(NEXT).await;
    rt.post(INIT_ERROR, "{}").await.assert_error(403, error_types::INVALID_STATE_TRANSITION);
    rt.post(&response_path("a"), "ok").await.assert_accepted();
    assert!(matches!(inv.await.unwrap().unwrap(), InvokeOutcome::Ok { .. }));
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405() {
    let api = start(config(false));
    let mut c = Client::connect(api.local_addr()).await;
    c.get("/2018-06-01/runtime/invocation/nope/status").await.assert_error(404, error_types::NOT_FOUND);
    c.get("/2018-06-01/runtime/restore/next").await.assert_error(404, error_types::NOT_FOUND);
    c.get("/2020-01-01/runtime/invocation/next").await.assert_error(404, error_types::NOT_FOUND);
    c.get("/").await.assert_error(404, error_types::NOT_FOUND);
    c.post("/2018-06-01/runtime/invocation//response", "x").await.assert_error(404, error_types::NOT_FOUND);

    let r = c.post(NEXT, "").await;
    r.assert_error(405, error_types::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("GET"));
    let r = c.get(&response_path("x")).await;
    r.assert_error(405, error_types::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("POST"));
    c.send(Method::PUT, INIT_ERROR, &[], Bytes::new()).await.assert_error(405, error_types::METHOD_NOT_ALLOWED);
    // None of this ended INIT.
    assert_eq!(api.init_duration(), None);
}

#[tokio::test]
async fn no_result_by_the_deadline_is_a_timeout_and_retires_the_environment() {
    let api = start(config(false));
    let mut rt = Client::connect(api.local_addr()).await;
    let inv = spawn_invoke(&api, Invocation::new("{}", Duration::from_millis(150)).with_request_id("slow"));
    let next = rt.get(NEXT).await;
    assert_eq!(next.status, 200);
    let outcome = tokio::time::timeout(Duration::from_secs(5), inv).await.expect("invoke did not time out");
    match outcome.unwrap().unwrap() {
        InvokeOutcome::Timeout { handed_over: Some(_) } => {}
        other => panic!("expected a timeout after hand-over, got {other:?}"),
    }
    // The late result no longer matches anything.
    rt.post(&response_path("slow"), "late").await.assert_error(400, error_types::INVALID_REQUEST_ID);
    let r = api.invoke(Invocation::new("{}", LONG)).await.unwrap();
    assert!(matches!(r, InvokeOutcome::EnvironmentGone { .. }), "{r:?}");

    // A runtime that never asks: the wait is bounded by the same deadline.
    let idle = start(config(false));
    let started = std::time::Instant::now();
    let r =
        tokio::time::timeout(Duration::from_secs(5), idle.invoke(Invocation::new("{}", Duration::from_millis(100))))
            .await
            .expect("invoke did not time out")
            .unwrap();
    assert_eq!(r, InvokeOutcome::Timeout { handed_over: None });
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn one_invocation_at_a_time() {
    let api = start(config(false));
    let mut rt = Client::connect(api.local_addr()).await;
    let first = spawn_invoke(&api, Invocation::new("{}", LONG).with_request_id("first"));
    tokio::task::yield_now().await;
    // Queued, not yet handed over.
    let r = api.invoke(Invocation::new("{}", LONG)).await;
    assert!(matches!(&r, Err(InvokeError::Busy { in_flight }) if in_flight == "first"), "{r:?}");
    rt.get(NEXT).await;
    // Handed over, not yet answered.
    assert!(matches!(api.invoke(Invocation::new("{}", LONG)).await, Err(InvokeError::Busy { .. })));
    // A second /next for an unanswered invocation is refused.
    let mut other = Client::connect(api.local_addr()).await;
    other.get(NEXT).await.assert_error(403, error_types::INVALID_STATE_TRANSITION);
    rt.post(&response_path("first"), "done").await.assert_accepted();
    assert!(matches!(first.await.unwrap().unwrap(), InvokeOutcome::Ok { .. }));
    // Answered: the next one may go, before the runtime even asks.
    let second = spawn_invoke(&api, Invocation::new("{}", LONG).with_request_id("second"));
    let next = rt.get(NEXT).await;
    assert_eq!(next.header(headers::REQUEST_ID), Some("second"));
    rt.post(&response_path("second"), "done").await.assert_accepted();
    assert!(matches!(second.await.unwrap().unwrap(), InvokeOutcome::Ok { .. }));
}

#[tokio::test]
async fn environment_died_fails_the_pending_invoke() {
    let api = start(config(false));
    let mut rt = Client::connect(api.local_addr()).await;
    let inv = spawn_invoke(&api, Invocation::new("{}", LONG));
    rt.get(NEXT).await;
    api.environment_died();
    assert!(matches!(inv.await.unwrap().unwrap(), InvokeOutcome::EnvironmentGone { handed_over: Some(_) }));
    assert!(matches!(api.invoke(Invocation::new("{}", LONG)).await.unwrap(), InvokeOutcome::EnvironmentGone { .. }));

    // Died during init.
    let api = start(config(false));
    let waiter = {
        let api = api.clone();
        tokio::spawn(async move { api.wait_init(LONG).await })
    };
    tokio::task::yield_now().await;
    api.environment_died();
    assert!(matches!(waiter.await.unwrap(), Err(InitFailure::EnvironmentGone)));
}

#[tokio::test]
async fn a_stale_result_carrying_an_old_invocation_id_is_410() {
    let api = start(config(false));
    let mut rt = Client::connect(api.local_addr()).await;
    // Invoke A, then the caller gives up on it (cancels) after hand-over.
    let a = spawn_invoke(&api, Invocation::new("a", LONG).with_request_id("dup"));
    let next_a = rt.get(NEXT).await;
    let a_id = next_a.header(headers::INVOCATION_ID).unwrap().to_owned();
    a.abort();
    let _ = a.await;
    // Invoke B reuses the request id.
    let b = spawn_invoke(&api, Invocation::new("b", LONG).with_request_id("dup"));
    let next_b = rt.get(NEXT).await;
    assert_eq!(next_b.body, "b");
    let b_id = next_b.header(headers::INVOCATION_ID).unwrap().to_owned();
    assert_ne!(a_id, b_id);
    // A's late result, echoing A's invocation id, must not complete B.
    rt.send(Method::POST, &response_path("dup"), &[(headers::INVOCATION_ID, &a_id)], Bytes::from("from a"))
        .await
        .assert_error(410, error_types::INVOKE_TIMEOUT);
    rt.send(Method::POST, &response_path("dup"), &[(headers::INVOCATION_ID, &b_id)], Bytes::from("from b"))
        .await
        .assert_accepted();
    match b.await.unwrap().unwrap() {
        InvokeOutcome::Ok { payload, .. } => assert_eq!(payload, "from b"),
        other => panic!("expected B's own result, got {other:?}"),
    }
}

#[tokio::test]
async fn invalid_caller_input_is_refused_before_sending() {
    let api = start(config(false));
    let r = api.invoke(Invocation::new("{}", LONG).with_request_id("a/b")).await;
    assert!(matches!(r, Err(InvokeError::InvalidRequestId(_))), "{r:?}");
    let mut inv = Invocation::new("{}", LONG);
    inv.client_context = Some("line\nbreak".to_owned());
    assert!(matches!(api.invoke(inv).await, Err(InvokeError::InvalidHeader { field: "client context" })));
    let mut bad = FunctionConfig::new("f", std::time::Instant::now());
    bad.function_arn = "arn\n".to_owned();
    assert!(RuntimeApi::start(loopback_listener(), bad).is_err());
}

#[tokio::test]
async fn shutdown_fails_the_pending_invoke_and_closes_the_socket() {
    let api = start(config(false));
    let addr = api.local_addr();
    let mut rt = Client::connect(addr).await;
    let inv = spawn_invoke(&api, Invocation::new("{}", LONG));
    rt.get(NEXT).await;
    api.shutdown().await;
    assert!(matches!(inv.await.unwrap().unwrap(), InvokeOutcome::EnvironmentGone { .. }));
    assert!(matches!(api.invoke(Invocation::new("{}", LONG)).await, Err(InvokeError::ShutDown)));
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "listener still open after shutdown");
    api.shutdown().await; // idempotent
}

#[test]
fn start_needs_a_tokio_runtime() {
    assert!(matches!(RuntimeApi::start(loopback_listener(), config(false)), Err(isobench_rapi::StartError::NoRuntime)));
}

#[tokio::test]
async fn a_payload_over_the_6_mb_request_limit_is_refused_before_reaching_the_runtime() {
    let api = start(config(false));
    let limit = isobench_rapi::DEFAULT_MAX_REQUEST_BYTES;
    assert_eq!(limit, 6 * 1024 * 1024, "Lambda's synchronous request limit");
    assert_eq!(api.config().max_request_bytes, limit);
    let r = api.invoke(Invocation::new(vec![b'a'; limit + 1], LONG)).await;
    assert!(
        matches!(r, Err(InvokeError::RequestTooLarge { size, limit: l }) if size == limit + 1 && l == limit),
        "{r:?}"
    );
    // Nothing was queued: the runtime gets the next, at-limit payload.
    let inv = spawn_invoke(&api, Invocation::new(vec![b'b'; limit], LONG).with_request_id("at-limit"));
    let mut rt = Client::connect(api.local_addr()).await;
    let next = rt.get(NEXT).await;
    assert_eq!(next.header(headers::REQUEST_ID), Some("at-limit"));
    assert_eq!(next.body.len(), limit);
    rt.post(&response_path("at-limit"), "ok").await.assert_accepted();
    assert!(matches!(inv.await.unwrap().unwrap(), InvokeOutcome::Ok { .. }));
}
