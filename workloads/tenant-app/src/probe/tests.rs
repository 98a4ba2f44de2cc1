//! The probe agent through the front-end-neutral handler: admission, errors and reply shapes.
//! Each channel's own behaviour is tested in its module.

use std::net::TcpListener;
use std::path::Path;

use serde_json::Value;

use super::*;
use crate::fault::FaultConfig;
use crate::handler::{Config, Op, Request, State, handle};
use crate::store::Hygiene;

fn closed_endpoint() -> Endpoint {
    Endpoint { addr: TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap() }
}

fn state_with(tmp: &Path, enabled: bool, silo: Option<&str>) -> State {
    State::new(Config {
        hygiene: Hygiene::Scoped,
        tenant: silo.map(str::to_owned),
        tmp_dir: tmp.to_owned(),
        // Probes are never faulted.
        faults: FaultConfig { error_rate: 1.0, seed: Some(1), ..FaultConfig::default() },
        max_record_bytes: 16,
        probes: ProbeConfig { enabled, ecs_endpoint: closed_endpoint(), imds_endpoint: closed_endpoint() },
    })
    .unwrap()
}

fn probe<'a>(tenant: &'a str, channel: &'a str, action: Action, body: &str) -> Request<'a> {
    Request { channel, body: Bytes::from(body.to_owned()), ..Request::new(Op::Probe(action), tenant) }
}

async fn json(state: &State, req: Request<'_>) -> Value {
    let resp = handle(state, req).await;
    assert_eq!((resp.status, resp.content_type), (200, CONTENT_JSON), "{:?}", resp.body);
    serde_json::from_slice(&resp.body).unwrap()
}

async fn kind(state: &State, req: Request<'_>) -> (u16, String) {
    let resp = handle(state, req).await;
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    (resp.status, v["kind"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn disabled_probes_do_not_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let s = state_with(tmp.path(), false, None);
    let canary = "isobench-canary:v1:unit:handler:off";
    assert_eq!(kind(&s, probe("acme", "tmp", Action::Plant, canary)).await, (404, "no_route".into()));
    assert_eq!(kind(&s, probe("acme", "nosuch", Action::Sweep, "")).await, (404, "no_route".into()));
    assert_eq!(kind(&s, Request::new(Op::Beacon, "")).await, (404, "no_route".into()));
    assert!(std::fs::read_dir(tmp.path()).unwrap().next().is_none(), "a disabled plant wrote a file");
}

#[tokio::test]
async fn probes_are_admitted_like_tenant_requests_and_validate_their_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let s = state_with(tmp.path(), true, Some("acme"));
    let canary = "isobench-canary:v1:unit:handler:args";
    for (req, want) in [
        (Request { claimed_tenant: None, ..probe("acme", "tmp", Action::Plant, canary) }, (400, "tenant_mismatch")),
        (
            Request { claimed_tenant: Some("globex"), ..probe("acme", "tmp", Action::Sweep, "") },
            (400, "tenant_mismatch"),
        ),
        (probe("Acme", "tmp", Action::Sweep, ""), (400, "bad_tenant")),
        (probe("globex", "tmp", Action::Sweep, ""), (403, "wrong_tenant")),
        (probe("acme", "disk", Action::Sweep, ""), (400, "bad_channel")),
        (probe("acme", "", Action::Plant, canary), (400, "bad_channel")),
        (probe("acme", "tmp", Action::Plant, ""), (400, "bad_canary")),
        (probe("acme", "env", Action::Plant, "isobench-canary:v1:a b"), (400, "bad_canary")),
        (probe("acme", "env", Action::Plant, "isobench-canary:v1:a\0"), (400, "bad_canary")),
        (probe("acme", "tmp", Action::Plant, &format!("{canary} {canary}")), (400, "bad_canary")),
        (probe("acme", "net", Action::Sweep, "[]"), (400, "bad_params")),
        (probe("acme", "net", Action::Sweep, r#"{"peer": ["10.0.0.1:80"]}"#), (400, "bad_params")),
        (probe("acme", "net", Action::Sweep, r#"{"timeout_ms": 0}"#), (400, "bad_params")),
        (probe("acme", "net", Action::Sweep, r#"{"timeout_ms": 10001}"#), (400, "bad_params")),
        (probe("acme", "net", Action::Sweep, "{"), (400, "bad_params")),
    ] {
        let desc = format!("{req:?}");
        let (status, kind) = kind(&s, req).await;
        assert_eq!((status, kind.as_str()), want, "{desc}");
    }
    assert!(std::fs::read_dir(tmp.path()).unwrap().next().is_none(), "a refused plant wrote a file");
    // Whitespace around a canary is fine (a body with a trailing newline); so are empty and
    // null parameters; channels that plant nothing take no canary. Faults never hit probes.
    let planted = json(&s, probe("acme", "tmp", Action::Plant, &format!("{canary}\r\n"))).await;
    assert_eq!(planted["planted"], true, "{planted}");
    for params in ["", "null", " {} ", r#"{"peers": [], "timeout_ms": 50, "credential_paths": []}"#] {
        assert_eq!(json(&s, probe("acme", "tmp", Action::Sweep, params)).await["found"][0], canary, "{params}");
    }
    for channel in ["cred", "rng"] {
        let reply = json(&s, probe("acme", channel, Action::Plant, "")).await;
        assert_eq!(reply, serde_json::json!({"channel": channel, "planted": true, "detail": "nothing to plant"}));
    }
}

#[tokio::test]
async fn replies_have_the_documented_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let s = state_with(tmp.path(), true, None);
    let canary = "isobench-canary:v1:unit:handler:shape";
    let before = json(&s, probe("globex", "tmp", Action::Sweep, "")).await;
    assert_eq!(before["found"], serde_json::json!([]));
    let planted = json(&s, probe("acme", "tmp", Action::Plant, canary)).await;
    assert_eq!((planted["channel"].as_str(), planted["planted"].as_bool()), (Some("tmp"), Some(true)));
    assert_eq!(planted["found"], serde_json::json!([canary]), "the plant's own control, in the same environment");
    assert!(planted["detail"].as_str().unwrap().contains("isobench-probe-"), "{planted}");
    // Another tenant of the same process sweeps it up: the leak the probe exists to show.
    let swept = json(&s, probe("globex", "tmp", Action::Sweep, "")).await;
    assert_eq!(swept["channel"], "tmp");
    assert_eq!(swept["found"], serde_json::json!([canary]));
    let detail = &swept["detail"];
    assert_eq!((detail["files_read"].as_u64(), detail["found_truncated"].as_bool()), (Some(1), Some(false)));
    assert_eq!(detail["dir"], tmp.path().display().to_string());

    // rng (scoped hygiene): every request seeds afresh, so two draws share nothing.
    let first = json(&s, probe("acme", "rng", Action::Sweep, "")).await;
    let again = json(&s, probe("globex", "rng", Action::Sweep, "")).await;
    assert_eq!(
        (first["found"].clone(), first["detail"]["generator"].as_str()),
        (serde_json::json!([]), Some("splitmix64"))
    );
    let draws = first["detail"]["draws"].as_array().unwrap();
    assert_eq!(draws.len(), rng::DRAWS);
    assert!(draws.iter().all(|d| d.as_str().is_some_and(|h| h.len() == 16)), "{first}");
    assert_ne!(first["detail"]["draws"], again["detail"]["draws"]);

    // kernel: a fingerprint, nothing found.
    let k = json(&s, probe("acme", "kernel", Action::Sweep, "")).await;
    assert_eq!(k["found"], serde_json::json!([]));
    assert!(k["detail"]["boot_id"].is_string(), "{k}");

    // net: the beacon serves what was planted; a sweep of an unreachable peer says so.
    let net_canary = "isobench-canary:v1:unit:handler:net";
    assert_eq!(json(&s, probe("acme", "net", Action::Plant, net_canary)).await["planted"], true);
    let beacon = handle(&s, Request::new(Op::Beacon, "")).await;
    assert_eq!((beacon.status, beacon.content_type), (200, crate::response::CONTENT_TEXT));
    assert!(String::from_utf8_lossy(&beacon.body).lines().any(|l| l == net_canary));
    let peer = closed_endpoint().addr.to_string();
    let params = format!(r#"{{"peers": ["{peer}"], "timeout_ms": 200}}"#);
    let swept = json(&s, probe("globex", "net", Action::Sweep, &params)).await;
    assert_eq!(swept["found"], serde_json::json!([]));
    assert_eq!(
        swept["detail"]["peers"],
        serde_json::json!([{"peer": peer, "reached": false, "error": "refused",
                            "message": swept["detail"]["peers"][0]["message"]}])
    );

    // cred: every source reports; nothing reachable here gives no principal.
    let swept = json(&s, probe("acme", "cred", Action::Sweep, r#"{"timeout_ms": 100}"#)).await;
    let sources: Vec<_> = swept["detail"]["sources"].as_array().unwrap().iter().map(|d| d["source"].clone()).collect();
    assert_eq!(sources, ["env", "ecs", "imds", "pod_identity", "web_identity"]);
    assert_eq!(swept["detail"]["sources"][2]["outcome"], "unreachable");
}

#[test]
fn sweep_params_parse() {
    assert_eq!(SweepParams::parse(b"").unwrap(), SweepParams::default());
    assert_eq!(SweepParams::parse(b"null").unwrap().timeout(), Duration::from_millis(300));
    let p = SweepParams::parse(br#"{"peers": ["10.213.0.3:8080"], "timeout_ms": 1000}"#).unwrap();
    assert_eq!((p.peers.len(), p.timeout()), (1, Duration::from_secs(1)));
    let too_many = serde_json::json!({ "peers": vec!["10.0.0.1:1"; net::MAX_PEERS + 1] }).to_string();
    assert_eq!(SweepParams::parse(too_many.as_bytes()), None);
    assert_eq!(Channel::ALL.map(Channel::as_str), ["tmp", "mem", "env", "fd", "proc", "net", "cred", "rng", "kernel"]);
    assert!(Channel::ALL.into_iter().all(|c| Channel::parse(c.as_str()) == Some(c)));
}
