use std::path::Path;

use serde_json::json;

use super::*;
use crate::fault::FaultConfig;
use crate::handler::Config;
use crate::probe::ProbeConfig;
use crate::response::{CONTENT_BYTES, CONTENT_JSON};
use crate::store::Hygiene;

fn state_with(tmp: &Path, faults: FaultConfig) -> State {
    State::new(Config {
        hygiene: Hygiene::Scoped,
        tenant: None,
        tmp_dir: tmp.to_owned(),
        faults,
        max_record_bytes: 64,
        probes: ProbeConfig::default(),
    })
    .unwrap()
}

fn state(tmp: &Path) -> State {
    state_with(tmp, FaultConfig::default())
}

/// Invokes and expects a payload (not a function error).
async fn ok(state: &State, event: Value, invoke_tenant: Option<&str>) -> EventResponse {
    let desc = event.to_string();
    invoke(state, event, invoke_tenant).await.unwrap_or_else(|e| panic!("{desc}: function error {e:?}"))
}

fn invalid(e: Result<EventResponse, FunctionError>) -> String {
    match e {
        Err(FunctionError::InvalidEvent(message)) => message,
        other => panic!("expected InvalidEvent, got {other:?}"),
    }
}

#[test]
fn parses_the_documented_event() {
    let event = Event::parse(json!({
        "tenant": "acme", "op": "put", "key": "k1", "body": "hello", "us": 200
    }))
    .unwrap();
    assert_eq!(event.tenant.as_deref(), Some("acme"));
    assert_eq!(
        (event.op, event.key.as_deref(), event.body.as_deref(), event.us),
        (EventOp::Put, Some("k1"), Some("hello"), Some(200))
    );
    for (name, op) in [
        ("put", Op::Put),
        ("get", Op::Get),
        ("compute", Op::Compute),
        ("purge", Op::Purge),
        ("whoami", Op::WhoAmI),
        ("health", Op::Health),
    ] {
        assert_eq!(Event::parse(json!({ "op": name })).unwrap().op().unwrap(), op, "{name}");
    }
    // Optional fields may also be null.
    assert_eq!(Event::parse(json!({"op": "health", "tenant": null, "key": null})).unwrap().tenant, None);
}

#[tokio::test]
async fn malformed_events_are_function_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let s = state(tmp.path());
    for (event, needle) in [
        (json!({"tenant": "acme"}), "missing field `op`"),
        (json!({"op": "frobnicate"}), "unknown variant `frobnicate`"),
        (json!({"op": "PUT"}), "unknown variant `PUT`"),
        (json!({"op": "get", "bodyb64": "aGk="}), "unknown field `bodyb64`"),
        (json!({"op": "compute", "us": -1}), "invalid value"),
        (json!({"op": "compute", "us": "10"}), "invalid type"),
        (json!({"op": "put", "tenant": 7}), "invalid type"),
        (json!(["acme", "get", "k", null, null, null]), "not an array"),
        (json!("get"), "not a string"),
        (json!(null), "not null"),
        (json!({"op": "put", "tenant": "acme", "key": "k", "body": "a", "body_b64": "YQ=="}), "not both"),
        (json!({"op": "put", "tenant": "acme", "key": "k", "body_b64": "not base64!"}), "not base64"),
    ] {
        let desc = event.to_string();
        let message = invalid(invoke(&s, event, None).await);
        assert!(message.contains(needle), "{desc}: {message}");
    }
    let diagnostic = Diagnostic::from(FunctionError::InvalidEvent("x".into()));
    assert_eq!(
        (diagnostic.error_type.as_str(), diagnostic.error_message.as_str()),
        ("InvalidEvent", "invalid event: x")
    );
    // A malformed put stored nothing.
    assert_eq!(ok(&s, json!({"op": "get", "tenant": "acme", "key": "k"}), None).await.status, 404);
}

#[tokio::test]
async fn state_survives_between_invocations() {
    let tmp = tempfile::tempdir().unwrap();
    let s = state(tmp.path());
    let put = ok(&s, json!({"tenant": "acme", "op": "put", "key": "k1", "body": "hello ✓"}), None).await;
    assert_eq!((put.status, put.text(), put.kind), (201, Some(""), None));
    let got = ok(&s, json!({"tenant": "acme", "op": "get", "key": "k1"}), None).await;
    assert_eq!((got.status, got.text(), got.body_b64.as_deref()), (200, Some("hello ✓"), None));
    assert_eq!(got.content_type, "application/octet-stream");
    let missing = ok(&s, json!({"tenant": "acme", "op": "get", "key": "nope"}), None).await;
    assert_eq!((missing.status, missing.kind), (404, Some("not_found")));
    assert_eq!(ok(&s, json!({"tenant": "acme", "op": "purge"}), None).await.status, 204);
    assert_eq!(ok(&s, json!({"tenant": "acme", "op": "get", "key": "k1"}), None).await.status, 404);
}

#[tokio::test]
async fn binary_records_travel_as_base64_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let s = state(tmp.path());
    let bytes = [0u8, 0xff, 0xfe, b'a', 0x80];
    let b64 = BASE64.encode(bytes);
    let put = ok(&s, json!({"tenant": "acme", "op": "put", "key": "bin", "body_b64": b64}), None).await;
    assert_eq!(put.status, 201);
    let got = ok(&s, json!({"tenant": "acme", "op": "get", "key": "bin"}), None).await;
    assert_eq!((got.status, got.body.is_none()), (200, true));
    assert_eq!(BASE64.decode(got.body_b64.as_deref().unwrap()).unwrap(), bytes);
    // A UTF-8 record sent as base64 comes back as text.
    ok(&s, json!({"tenant": "acme", "op": "put", "key": "txt", "body_b64": BASE64.encode("héllo")}), None).await;
    assert_eq!(ok(&s, json!({"tenant": "acme", "op": "get", "key": "txt"}), None).await.text(), Some("héllo"));
    // Limits apply to the decoded record.
    let big =
        ok(&s, json!({"tenant": "acme", "op": "put", "key": "big", "body_b64": BASE64.encode([1u8; 65])}), None).await;
    assert_eq!((big.status, big.kind), (413, Some("too_large")));
}

#[tokio::test]
async fn tenant_comes_from_the_event_or_the_invoke_and_the_invoke_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let s = state(tmp.path());
    // Only the invoke's tenant id: it is the tenant.
    let put = ok(&s, json!({"op": "put", "key": "k", "body": "from-invoke"}), Some("acme")).await;
    assert_eq!(put.status, 201);
    // Only the event's tenant: the same record.
    let got = ok(&s, json!({"tenant": "acme", "op": "get", "key": "k"}), None).await;
    assert_eq!(got.text(), Some("from-invoke"));
    // Both, agreeing.
    assert_eq!(ok(&s, json!({"tenant": "acme", "op": "get", "key": "k"}), Some("acme")).await.status, 200);
    // Both, differing: the invoke's tenant id is authoritative, so this is a mismatch, not a
    // read of acme's record by globex (nor the other way round).
    for (event_tenant, invoke_tenant) in [("acme", "globex"), ("globex", "acme")] {
        let event = json!({"tenant": event_tenant, "op": "get", "key": "k"});
        let mismatch = ok(&s, event, Some(invoke_tenant)).await;
        assert_eq!(
            (mismatch.status, mismatch.kind),
            (400, Some("tenant_mismatch")),
            "{event_tenant} vs {invoke_tenant}"
        );
        assert_eq!(mismatch.content_type, "application/json");
        let body: Value = serde_json::from_str(mismatch.text().unwrap()).unwrap();
        assert_eq!(body["kind"], "tenant_mismatch");
    }
    let put = ok(&s, json!({"tenant": "globex", "op": "put", "key": "k", "body": "x"}), Some("acme")).await;
    assert_eq!(put.status, 400);
    assert_eq!(ok(&s, json!({"op": "get", "key": "k"}), Some("globex")).await.status, 404, "a mismatched put stored");
    // Neither: tenant operations have no claim; health and whoami need none.
    for op in ["put", "get", "compute", "purge"] {
        let r = ok(&s, json!({"op": op, "key": "k", "us": 1}), None).await;
        assert_eq!((r.status, r.kind), (400, Some("tenant_mismatch")), "{op}");
    }
    assert_eq!(ok(&s, json!({"op": "health"}), None).await.status, 200);
    assert_eq!(ok(&s, json!({"op": "whoami"}), Some("acme")).await.status, 200);
    // A malformed invoke tenant id is reported as such.
    let bad = ok(&s, json!({"op": "get", "key": "k"}), Some("Not_Valid")).await;
    assert_eq!((bad.status, bad.kind), (400, Some("bad_tenant")));
}

#[tokio::test]
async fn compute_needs_us() {
    let tmp = tempfile::tempdir().unwrap();
    let s = state(tmp.path());
    let r = ok(&s, json!({"tenant": "acme", "op": "compute", "us": 100}), None).await;
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_str(r.text().unwrap()).unwrap();
    assert!(v["cpu_us"].as_u64().unwrap() >= 100, "{v}");
    for event in
        [json!({"tenant": "acme", "op": "compute"}), json!({"tenant": "acme", "op": "compute", "us": 1_000_001})]
    {
        let r = ok(&s, event, None).await;
        assert_eq!((r.status, r.kind), (400, Some("bad_compute")));
    }
}

#[tokio::test]
async fn injected_faults_are_function_errors_and_other_errors_are_payloads() {
    let tmp = tempfile::tempdir().unwrap();
    let faults = FaultConfig { error_rate: 1.0, seed: Some(1), ..FaultConfig::default() };
    let s = state_with(tmp.path(), faults);
    for event in [
        json!({"tenant": "acme", "op": "put", "key": "k", "body": "a"}),
        json!({"tenant": "acme", "op": "get", "key": "k"}),
        json!({"tenant": "acme", "op": "compute", "us": 1}),
    ] {
        let desc = event.to_string();
        assert_eq!(invoke(&s, event, None).await, Err(FunctionError::InjectedFault), "{desc}");
    }
    let diagnostic = Diagnostic::from(FunctionError::InjectedFault);
    assert_eq!(
        (diagnostic.error_type.as_str(), diagnostic.error_message.as_str()),
        ("InjectedFault", "injected fault")
    );
    // Validation still comes first, as a payload; probes and clean-up are never faulted.
    let bad_key = ok(&s, json!({"tenant": "acme", "op": "get", "key": ".."}), None).await;
    assert_eq!((bad_key.status, bad_key.kind), (400, Some("bad_key")));
    assert_eq!(ok(&s, json!({"op": "health"}), None).await.status, 200);
    assert_eq!(ok(&s, json!({"tenant": "acme", "op": "purge"}), None).await.status, 204);
}

#[tokio::test]
async fn whoami_counts_every_invocation_of_the_process() {
    let tmp = tempfile::tempdir().unwrap();
    let s = state(tmp.path());
    let first: Value = serde_json::from_str(ok(&s, json!({"op": "whoami"}), None).await.text().unwrap()).unwrap();
    assert_eq!(first["invocations"], 1);
    // Payloads, function errors and errors in the payload all count.
    ok(&s, json!({"tenant": "acme", "op": "put", "key": "k", "body": "a"}), None).await;
    let _ = invoke(&s, json!({"op": "nope"}), None).await;
    ok(&s, json!({"tenant": "acme", "op": "get", "key": ".."}), None).await;
    let who = ok(&s, json!({"op": "whoami"}), None).await;
    assert_eq!(who.content_type, "application/json");
    let who: Value = serde_json::from_str(who.text().unwrap()).unwrap();
    assert_eq!(who["invocations"], 5);
    assert_eq!(who["pid"], std::process::id());
    assert_eq!(who["instance_nonce"], first["instance_nonce"]);
}

#[test]
fn responses_serialise_to_the_documented_shape() {
    let text = EventResponse::from(Response::new(200, CONTENT_JSON, Bytes::from_static(b"{\"a\":1}")));
    assert_eq!(
        serde_json::to_value(&text).unwrap(),
        json!({"status": 200, "body": "{\"a\":1}", "content_type": "application/json"})
    );
    let empty = EventResponse::from(Response::empty(201));
    assert_eq!(
        serde_json::to_value(&empty).unwrap(),
        json!({"status": 201, "body": "", "content_type": "text/plain; charset=utf-8"})
    );
    let binary = EventResponse::from(Response::new(200, CONTENT_BYTES, Bytes::from_static(&[0xff, 0])));
    assert_eq!(
        serde_json::to_value(&binary).unwrap(),
        json!({"status": 200, "body_b64": "/wA=", "content_type": "application/octet-stream"})
    );
    let error = EventResponse::from(Response::error(ErrorKind::NotFound));
    assert_eq!(
        serde_json::to_value(&error).unwrap(),
        json!({"status": 404, "body": "{\"error\":\"no such record\",\"kind\":\"not_found\"}",
               "content_type": "application/json", "kind": "not_found"})
    );
}

#[test]
fn lambda_environment_is_checked_before_lambda_runtime_would_panic() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
    };
    let full: &[(&str, &str)] = &[
        ("AWS_LAMBDA_FUNCTION_NAME", "f"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
    ];
    assert!(check_function_env(env(full)).is_ok());
    let err = check_function_env(env(&full[1..])).unwrap_err();
    assert!(matches!(err, LambdaError::Environment { name: "AWS_LAMBDA_FUNCTION_NAME", .. }), "{err}");
    let bad_memory: &[(&str, &str)] = &[
        ("AWS_LAMBDA_FUNCTION_NAME", "f"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "1"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "lots"),
    ];
    assert!(check_function_env(env(bad_memory)).unwrap_err().to_string().contains("not an integer"));

    assert!(matches!(runtime_api(None), Err(LambdaError::NoRuntimeApi)));
    assert!(matches!(runtime_api(Some(String::new())), Err(LambdaError::NoRuntimeApi)));
    assert!(matches!(runtime_api(Some("not a uri".into())), Err(LambdaError::BadRuntimeApi(_))));
    assert_eq!(runtime_api(Some("127.0.0.1:9001".into())).unwrap().authority().unwrap().as_str(), "127.0.0.1:9001");
}

#[tokio::test]
async fn probe_events_reach_the_probe_agent_only_when_enabled() {
    let tmp = tempfile::tempdir().unwrap();
    let canary = "isobench-canary:v1:unit:lambda:tmp";
    let plant = json!({"tenant": "acme", "op": "probe", "channel": "tmp", "action": "plant", "canary": canary});
    let off = state(tmp.path());
    for invoke_tenant in [None, Some("acme")] {
        let r = ok(&off, json!({"op": "probe", "channel": "tmp", "action": "sweep"}), invoke_tenant).await;
        assert_eq!((r.status, r.kind), (404, Some("no_route")), "{invoke_tenant:?}");
    }
    assert_eq!(ok(&off, plant.clone(), None).await.kind, Some("no_route"));

    let on = State::new(Config {
        hygiene: Hygiene::Scoped,
        tenant: None,
        tmp_dir: tmp.path().to_owned(),
        faults: FaultConfig::default(),
        max_record_bytes: 64,
        probes: ProbeConfig { enabled: true, ..ProbeConfig::default() },
    })
    .unwrap();
    let planted = ok(&on, plant, None).await;
    assert_eq!((planted.status, planted.content_type), (200, "application/json"));
    let body: Value = serde_json::from_str(planted.text().unwrap()).unwrap();
    assert_eq!((body["channel"].as_str(), body["planted"].as_bool()), (Some("tmp"), Some(true)));
    // Another tenant's invocation of the same environment sweeps it up; params travel as JSON.
    let sweep = json!({"op": "probe", "channel": "tmp", "action": "sweep", "params": {"timeout_ms": 100}});
    let swept = ok(&on, sweep, Some("globex")).await;
    let body: Value = serde_json::from_str(swept.text().unwrap()).unwrap();
    assert_eq!(body["found"], json!([canary]), "{body}");
    let sweep = json!({"tenant": "globex", "op": "probe", "channel": "tmp", "action": "sweep", "params": null});
    assert_eq!(ok(&on, sweep, None).await.status, 200);

    for (event, invoke_tenant, want) in [
        (json!({"op": "probe", "channel": "tmp", "action": "sweep"}), None, "tenant_mismatch"),
        (
            json!({"tenant": "acme", "op": "probe", "channel": "tmp", "action": "sweep"}),
            Some("globex"),
            "tenant_mismatch",
        ),
        (json!({"op": "probe", "channel": "disk", "action": "sweep"}), Some("acme"), "bad_channel"),
        (json!({"op": "probe", "action": "sweep"}), Some("acme"), "bad_channel"),
        (json!({"op": "probe", "channel": "env", "action": "plant"}), Some("acme"), "bad_canary"),
        (
            json!({"op": "probe", "channel": "net", "action": "sweep", "params": {"peers": "10.0.0.1:1"}}),
            Some("acme"),
            "bad_params",
        ),
        (json!({"op": "probe", "channel": "net", "action": "sweep", "params": [1]}), Some("acme"), "bad_params"),
    ] {
        let desc = event.to_string();
        let r = ok(&on, event, invoke_tenant).await;
        assert_eq!((r.status, r.kind), (400, Some(want)), "{desc}");
    }
    for (event, needle) in [
        (json!({"tenant": "acme", "op": "probe", "channel": "tmp"}), "needs `action`"),
        (json!({"tenant": "acme", "op": "probe", "channel": "tmp", "action": "peek"}), "unknown variant `peek`"),
        (json!({"tenant": "acme", "op": "probe", "channel": "tmp", "action": "sweep", "canary": 1}), "invalid type"),
    ] {
        let desc = event.to_string();
        let message = invalid(invoke(&on, event, None).await);
        assert!(message.contains(needle), "{desc}: {message}");
    }
}
