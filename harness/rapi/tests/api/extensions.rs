//! The Extensions API against the published reference (ext guide: paths, headers, status codes,
//! bodies) and, where the guide names no `errorType`, against RIE's.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::Method;
use isobench_rapi::{
    InitFailure, Invocation, InvokeOutcome, ParkError, ShutdownReason, ShutdownReport, error_types, headers,
};
use serde_json::json;

use crate::util::{
    Client, EXT_EXIT_ERROR, EXT_INIT_ERROR, EXT_NEXT, EXT_REGISTER, Ext, NEXT, config, response_path, start,
    still_pending,
};

const LONG: Duration = Duration::from_secs(30);
const SHORT: Duration = Duration::from_millis(150);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

async fn register_raw(c: &mut Client, name: Option<&str>, body: &str, extra: &[(&str, &str)]) -> crate::util::Reply {
    let mut h: Vec<(&str, &str)> = extra.to_vec();
    if let Some(n) = name {
        h.push((headers::EXTENSION_NAME, n));
    }
    c.send(Method::POST, EXT_REGISTER, &h, Bytes::from(body.to_owned())).await
}

#[tokio::test]
async fn register_answers_200_with_an_identifier_and_the_function_metadata() {
    let mut cfg = config(false);
    cfg.handler = "index.handler".to_owned();
    let api = start(cfg);
    let mut c = Client::connect(api.local_addr()).await;
    let r = register_raw(&mut c, Some("ext-a"), r#"{"events":["INVOKE","SHUTDOWN"]}"#, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let id = r.header(headers::EXTENSION_IDENTIFIER).expect("Lambda-Extension-Identifier");
    assert_eq!(id.split('-').map(str::len).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "a UUID: {id}");
    // Exactly the documented fields; `accountId` only when asked for.
    assert_eq!(
        r.json(),
        json!({"functionName": "conformance-fn", "functionVersion": "$LATEST", "handler": "index.handler"})
    );
    let r = register_raw(&mut c, Some("ext-b"), "{}", &[(headers::EXTENSION_ACCEPT_FEATURE, "accountId")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["accountId"], "000000000000");
    assert_ne!(r.header(headers::EXTENSION_IDENTIFIER), Some(id));
    assert_eq!(api.extensions(), ["ext-a", "ext-b"]);
}

#[tokio::test]
async fn registration_refusals_are_403_with_the_documented_types() {
    let api = start(config(false));
    let mut c = Client::connect(api.local_addr()).await;
    register_raw(&mut c, None, "{}", &[]).await.assert_error(403, error_types::EXTENSION_INVALID_NAME);
    register_raw(&mut c, Some(""), "{}", &[]).await.assert_error(403, error_types::EXTENSION_INVALID_NAME);
    register_raw(&mut c, Some("x"), "not json", &[]).await.assert_error(403, error_types::INVALID_REQUEST_FORMAT);
    register_raw(&mut c, Some("x"), r#"{"events":["INVOKE","BOGUS"]}"#, &[])
        .await
        .assert_error(403, error_types::EXTENSION_INVALID_EVENT_TYPE);
    assert!(api.extensions().is_empty(), "refused registrations must not register");
    for n in 0..isobench_rapi::MAX_EXTENSIONS {
        let r = register_raw(&mut c, Some(&format!("ext-{n}")), "{}", &[]).await;
        assert_eq!(r.status, 200);
    }
    register_raw(&mut c, Some("ext-0"), "{}", &[]).await.assert_error(403, error_types::EXTENSION_INVALID_STATE);
    register_raw(&mut c, Some("one-too-many"), "{}", &[]).await.assert_error(403, error_types::EXTENSION_TOO_MANY);
    // The wrong method is 405, like the Runtime API's paths.
    let r = c.get(EXT_REGISTER).await;
    r.assert_error(405, error_types::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("POST"));
}

#[tokio::test]
async fn registering_after_init_is_refused_as_registration_closed() {
    let api = start(config(false));
    let rt = Client::connect(api.local_addr()).await;
    let _parked = rt.spawn_get(NEXT, &[]);
    api.wait_init(Duration::from_secs(5)).await.expect("init done");
    let mut c = Client::connect(api.local_addr()).await;
    register_raw(&mut c, Some("late"), r#"{"events":["INVOKE"]}"#, &[])
        .await
        .assert_error(403, error_types::EXTENSION_REGISTRATION_CLOSED);
    assert!(api.extensions().is_empty());
}

#[tokio::test]
async fn init_ends_only_when_the_runtime_and_every_extension_called_next() {
    let api = start(config(false));
    let a = Ext::register(api.local_addr(), "ext-a", &["INVOKE"]).await;
    let b = Ext::register(api.local_addr(), "ext-b", &[]).await;
    let _rt = Client::connect(api.local_addr()).await.spawn_get(NEXT, &[]);
    let _a = a.next();
    // The runtime and one extension wait; the other has not asked yet.
    assert!(matches!(api.wait_init(SHORT).await, Err(InitFailure::Timeout { .. })));
    assert_eq!(api.init_duration(), None);
    // An invoke meanwhile waits; it is not handed over before INIT ends.
    let inv = {
        let api = api.clone();
        tokio::spawn(async move { api.invoke(Invocation::new("{}", LONG)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before_b = Instant::now();
    let _b = b.next();
    let init = api.wait_init(Duration::from_secs(5)).await.expect("init done once every extension asked");
    assert!(api.config().start_instant + init >= before_b, "INIT ended before the last extension asked");
    drop(inv);
}

#[tokio::test]
async fn invoke_events_reach_the_extensions_subscribed_to_invoke() {
    let api = start(config(false));
    let arn = api.config().function_arn.clone();
    let a = Ext::register(api.local_addr(), "ext-invoke", &["INVOKE"]).await;
    let b = Ext::register(api.local_addr(), "ext-shutdown-only", &["SHUTDOWN"]).await;
    let mut a_next = a.next();
    let mut b_next = b.next();
    let mut rt = Client::connect(api.local_addr()).await;
    let mut inv = Invocation::new("{}", LONG).with_request_id("req-ext");
    inv.trace_id = Some("Root=1-5f35ae12-0c0fec141ab77a00bc047aa2;Parent=2be948a625588e32;Sampled=1".to_owned());
    let invoke = {
        let api = api.clone();
        tokio::spawn(async move { api.invoke(inv).await })
    };
    let next = rt.get(NEXT).await;
    assert_eq!(next.status, 200);
    let (a, ev) = (&mut a_next).await.unwrap();
    assert_eq!(ev.status, 200);
    assert_eq!(ev.header("content-type"), Some("application/json"));
    assert_eq!(ev.header(headers::EXTENSION_IDENTIFIER), Some(a.id.as_str()));
    assert!(ev.header(headers::EXTENSION_EVENT_IDENTIFIER).is_some());
    let deadline: u64 = next.header(headers::DEADLINE_MS).unwrap().parse().unwrap();
    assert_eq!(
        ev.json(),
        json!({
            "eventType": "INVOKE",
            "deadlineMs": deadline,
            "requestId": "req-ext",
            "invokedFunctionArn": arn,
            "tracing": {"type": "X-Amzn-Trace-Id",
                        "value": "Root=1-5f35ae12-0c0fec141ab77a00bc047aa2;Parent=2be948a625588e32;Sampled=1"},
        })
    );
    // Not subscribed to INVOKE: nothing arrives.
    assert!(still_pending(&mut b_next, SHORT).await, "an INVOKE event reached an extension not subscribed to it");
    rt.post(&response_path("req-ext"), "ok").await.assert_accepted();
    assert!(matches!(invoke.await.unwrap().unwrap(), InvokeOutcome::Ok { .. }));
    drop(a);
}

#[tokio::test]
async fn extension_calls_need_a_known_identifier_and_error_calls_an_error_type() {
    let api = start(config(false));
    let mut c = Client::connect(api.local_addr()).await;
    c.get(EXT_NEXT).await.assert_error(403, error_types::EXTENSION_MISSING_IDENTIFIER);
    c.send(Method::GET, EXT_NEXT, &[(headers::EXTENSION_IDENTIFIER, "not-a-uuid")], Bytes::new())
        .await
        .assert_error(403, error_types::EXTENSION_INVALID_IDENTIFIER);
    let stranger = isobench_rapi::new_request_id();
    c.send(Method::GET, EXT_NEXT, &[(headers::EXTENSION_IDENTIFIER, &stranger)], Bytes::new())
        .await
        .assert_error(403, error_types::EXTENSION_UNKNOWN_IDENTIFIER);
    let ext = Ext::register(api.local_addr(), "ext", &[]).await;
    for path in [EXT_INIT_ERROR, EXT_EXIT_ERROR] {
        c.send(Method::POST, path, &[(headers::EXTENSION_IDENTIFIER, &ext.id)], Bytes::from("{}"))
            .await
            .assert_error(403, error_types::EXTENSION_MISSING_HEADER);
        c.send(
            Method::POST,
            path,
            &[(headers::EXTENSION_IDENTIFIER, &stranger), (headers::EXTENSION_FUNCTION_ERROR_TYPE, "Extension.X")],
            Bytes::from("{}"),
        )
        .await
        .assert_error(403, error_types::EXTENSION_UNKNOWN_IDENTIFIER);
    }
}

#[tokio::test]
async fn an_extension_init_error_fails_init_and_every_invoke() {
    let api = start(config(false));
    let mut ext = Ext::register(api.local_addr(), "ext", &["INVOKE"]).await;
    let body = r#"{"errorMessage":"cannot reach the collector","errorType":"Extension.Fatal"}"#;
    let id = ext.id.clone();
    ext.client
        .send(
            Method::POST,
            EXT_INIT_ERROR,
            &[(headers::EXTENSION_IDENTIFIER, &id), (headers::EXTENSION_FUNCTION_ERROR_TYPE, "Extension.Fatal")],
            Bytes::from(body),
        )
        .await
        .assert_accepted();
    match api.wait_init(Duration::from_secs(1)).await {
        Err(InitFailure::Reported { error_type, .. }) => assert_eq!(error_type.as_deref(), Some("Extension.Fatal")),
        other => panic!("expected a reported init failure, got {other:?}"),
    }
    assert!(matches!(api.invoke(Invocation::new("{}", LONG)).await.unwrap(), InvokeOutcome::InitError { .. }));
    assert_eq!(api.wait_parked().await, Err(ParkError::InitFailed));
    // "After Lambda receives the error, no further API calls succeed."
    let (_, r) = ext.next().await.unwrap();
    r.assert_error(403, error_types::EXTENSION_INVALID_STATE);
}

#[tokio::test]
async fn an_extension_init_error_after_its_first_next_is_403() {
    let api = start(config(false));
    let ext = Ext::register(api.local_addr(), "ext", &[]).await;
    let id = ext.id.clone();
    let _parked = ext.next();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut c = Client::connect(api.local_addr()).await;
    c.send(
        Method::POST,
        EXT_INIT_ERROR,
        &[(headers::EXTENSION_IDENTIFIER, &id), (headers::EXTENSION_FUNCTION_ERROR_TYPE, "Extension.Late")],
        Bytes::new(),
    )
    .await
    .assert_error(403, error_types::EXTENSION_INVALID_STATE);
}

#[tokio::test]
async fn an_exit_error_after_init_ends_the_environment() {
    let api = start(config(false));
    let ext = Ext::register(api.local_addr(), "ext", &["INVOKE"]).await;
    let id = ext.id.clone();
    let _parked = ext.next();
    let _rt = Client::connect(api.local_addr()).await.spawn_get(NEXT, &[]);
    api.wait_init(Duration::from_secs(5)).await.unwrap();
    let mut c = Client::connect(api.local_addr()).await;
    c.send(
        Method::POST,
        EXT_EXIT_ERROR,
        &[(headers::EXTENSION_IDENTIFIER, &id), (headers::EXTENSION_FUNCTION_ERROR_TYPE, "Extension.Crash")],
        Bytes::from("{}"),
    )
    .await
    .assert_accepted();
    // A second exit error: the extension has already exited.
    c.send(
        Method::POST,
        EXT_EXIT_ERROR,
        &[(headers::EXTENSION_IDENTIFIER, &id), (headers::EXTENSION_FUNCTION_ERROR_TYPE, "Extension.Crash")],
        Bytes::from("{}"),
    )
    .await
    .assert_error(403, error_types::EXTENSION_INVALID_STATE);
    let r = api.invoke(Invocation::new("{}", LONG)).await.unwrap();
    assert!(matches!(r, InvokeOutcome::EnvironmentGone { handed_over: None }), "{r:?}");
}

#[tokio::test]
async fn shutdown_reaches_subscribers_with_reason_and_deadline_and_reports_who_did_not_finish() {
    let api = start(config(false));
    let prompt = Ext::register(api.local_addr(), "prompt", &["INVOKE", "SHUTDOWN"]).await;
    let slow = Ext::register(api.local_addr(), "slow", &["SHUTDOWN"]).await;
    let deaf = Ext::register(api.local_addr(), "invoke-only", &["INVOKE"]).await;
    let prompt_next = prompt.next();
    let slow_next = slow.next();
    let mut deaf_next = deaf.next();
    let _rt = Client::connect(api.local_addr()).await.spawn_get(NEXT, &[]);
    api.wait_init(Duration::from_secs(5)).await.unwrap();

    let budget = Duration::from_millis(400);
    let started = Instant::now();
    let shutdown = {
        let api = api.clone();
        tokio::spawn(async move { api.shutdown_extensions(ShutdownReason::Spindown, budget).await })
    };
    let sent_ms = now_ms();
    // `prompt` gets SHUTDOWN, cleans up and asks again; `slow` gets it and never asks again.
    let (prompt, ev) = prompt_next.await.unwrap();
    assert_eq!(ev.status, 200);
    let v = ev.json();
    assert_eq!(v["eventType"], "SHUTDOWN");
    assert_eq!(v["shutdownReason"], "spindown");
    let deadline = v["deadlineMs"].as_u64().expect("deadlineMs in Unix ms");
    assert!(deadline + 50 >= sent_ms + 400 && deadline <= now_ms() + 400, "deadline {deadline}, sent {sent_ms}");
    let _again = prompt.next();
    let (_slow, ev) = slow_next.await.unwrap();
    assert_eq!(ev.json()["eventType"], "SHUTDOWN");
    let report = shutdown.await.unwrap();
    assert_eq!(report, ShutdownReport { completed: vec!["prompt".into()], unfinished: vec!["slow".into()] });
    assert!(started.elapsed() >= budget, "gave up on `slow` before its budget");
    assert!(still_pending(&mut deaf_next, SHORT).await, "SHUTDOWN reached an extension not subscribed to it");
    // The environment takes no more invocations.
    let r = api.invoke(Invocation::new("{}", LONG)).await.unwrap();
    assert!(matches!(r, InvokeOutcome::EnvironmentGone { .. }), "{r:?}");
}

#[tokio::test]
async fn shutdown_without_subscribers_resolves_at_once() {
    let api = start(config(false));
    let _rt = Client::connect(api.local_addr()).await.spawn_get(NEXT, &[]);
    api.wait_init(Duration::from_secs(5)).await.unwrap();
    let started = Instant::now();
    let report = api.shutdown_extensions(ShutdownReason::Timeout, Duration::from_secs(2)).await;
    assert_eq!(report, ShutdownReport::default());
    assert!(started.elapsed() < Duration::from_secs(1));
}
