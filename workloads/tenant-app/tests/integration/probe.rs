use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use isobench_testkit::ports::closed_addr;
use isobench_testkit::process::process_running;
use isobench_testkit::wait;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::lambda::Function;
use crate::util::{BIN, Server, StubHttp, canary};

/// `POST /t/{tenant}/probe/{channel}/plant` with the canary; the reply's JSON.
fn plant(server: &Server, tenant: &str, channel: &str, canary: &str) -> Value {
    let reply =
        server.connect().tenant("POST", &format!("/t/{tenant}/probe/{channel}/plant"), tenant, canary.as_bytes());
    assert_eq!(reply.status, 200, "{channel} plant: {reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let v = reply.json();
    assert_eq!((v["channel"].as_str(), v["planted"].as_bool()), (Some(channel), Some(true)), "{v}");
    v
}

/// `POST /t/{tenant}/probe/{channel}/sweep` with `params`; the reply's JSON.
fn sweep(server: &Server, tenant: &str, channel: &str, params: &Value) -> Value {
    let body = if params.is_null() { String::new() } else { params.to_string() };
    let reply = server.connect().tenant("POST", &format!("/t/{tenant}/probe/{channel}/sweep"), tenant, body.as_bytes());
    assert_eq!(reply.status, 200, "{channel} sweep: {reply:?}");
    let v = reply.json();
    assert_eq!(v["channel"], channel);
    assert!(v["found"].is_array() && v["detail"].is_object(), "{v}");
    assert_eq!(v["detail"]["found_truncated"], false);
    v
}

fn found(reply: &Value) -> Vec<&str> {
    reply["found"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect()
}

#[test]
fn probes_do_not_exist_unless_enabled() {
    let off = Server::start(&[]);
    for (method, path) in [
        ("POST", "/t/acme/probe/tmp/plant"),
        ("POST", "/t/acme/probe/nosuch/sweep"),
        ("GET", "/t/acme/probe/tmp/plant"),
        ("GET", "/probe/beacon"),
    ] {
        // A connection per request: a refused request's body is left unread, so hyper may close.
        let reply = off.connect().tenant(method, path, "acme", b"isobench-canary:v1:x");
        assert_eq!((reply.status, reply.kind().as_str()), (404, "no_route"), "{method} {path}");
    }
    assert!(std::fs::read_dir(off.tmp.path()).unwrap().next().is_none(), "a disabled plant wrote a file");

    // TENANT_APP_PROBES=1 enables them as --probes does.
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["--listen", "127.0.0.1:0", "--tmp-dir"]).arg(tmp.path()).env("TENANT_APP_PROBES", "1");
    let on = Server::spawn(cmd, tmp);
    let mut c = on.connect();
    assert_eq!(c.send("GET", "/probe/beacon", None, b"").status, 200);
    let bad = c.tenant("POST", "/t/acme/probe/disk/sweep", "acme", b"");
    assert_eq!((bad.status, bad.kind().as_str()), (400, "bad_channel"));
    let bad = c.tenant("POST", "/t/acme/probe/tmp/plant", "acme", b"not a canary");
    assert_eq!((bad.status, bad.kind().as_str()), (400, "bad_canary"));
    let bad = c.tenant("POST", "/t/acme/probe/net/sweep", "acme", br#"{"peer": []}"#);
    assert_eq!((bad.status, bad.kind().as_str()), (400, "bad_params"));
    let mismatch = c.send("POST", "/t/acme/probe/tmp/sweep", Some("globex"), b"");
    assert_eq!((mismatch.status, mismatch.kind().as_str()), (400, "tenant_mismatch"));
    let wrong = c.tenant("GET", "/t/acme/probe/tmp/sweep", "acme", b"");
    assert_eq!((wrong.status, wrong.kind().as_str()), (405, "method_not_allowed"));
}

/// tmp, mem, env, fd and proc: another tenant of the same process finds what one planted;
/// another process finds only what crosses process boundaries (the shared /proc here).
#[test]
fn every_local_channel_is_found_by_another_tenant_of_the_process() {
    let app = Server::start(&["--probes", "--max-record-bytes", "16"]);
    let other = Server::start(&["--probes"]);
    for channel in ["tmp", "mem", "env", "fd", "proc"] {
        let canary = canary(channel);
        let before = sweep(&app, "globex", channel, &Value::Null);
        assert!(!found(&before).contains(&canary.as_str()), "{channel} found before the plant: {before}");
        let planted = plant(&app, "acme", channel, &canary);
        let after = sweep(&app, "globex", channel, &Value::Null);
        assert!(found(&after).contains(&canary.as_str()), "{channel}: {after} (plant: {planted})");
        let elsewhere = sweep(&other, "globex", channel, &Value::Null);
        let crosses = channel == "proc";
        assert_eq!(found(&elsewhere).contains(&canary.as_str()), crosses, "{channel} in another process: {elsewhere}");

        let detail = &after["detail"];
        match channel {
            "tmp" => {
                assert!(detail["files_read"].as_u64() >= Some(1), "{detail}");
                let path = planted["detail"].as_str().unwrap().strip_prefix("wrote ").unwrap();
                let meta = std::fs::metadata(path).unwrap();
                assert!(path.starts_with(app.tmp.path().to_str().unwrap()), "{path}");
                assert_eq!(meta.permissions().mode() & 0o777, 0o644);
            }
            "mem" => {
                assert!(detail["global_entries"].as_u64() >= Some(1) && detail["cache_records"].as_u64() >= Some(1))
            }
            "env" => assert!(detail["variables"].as_u64() > Some(1), "{detail}"),
            "fd" => assert!(detail["inspected"].as_u64() >= Some(1) && detail["fds"].as_u64() > Some(3), "{detail}"),
            "proc" => {
                for key in ["visible_pids", "readable_cmdlines", "readable_environs"] {
                    assert!(detail[key].as_u64() >= Some(2), "{key}: {detail}");
                }
            }
            _ => unreachable!(),
        }
    }
    // The mem plant is also a cache entry of the planting tenant (PUT's size limit does not apply).
    let mut c = app.connect();
    let cached = c.tenant("GET", "/t/acme/records/probe-mem", "acme", b"");
    assert_eq!(cached.status, 200);
    assert!(String::from_utf8_lossy(&cached.body).starts_with("isobench-canary:v1:itest:mem:"));
}

#[test]
fn holders_die_with_the_app() {
    let mut app = Server::start(&["--probes"]);
    let canary = canary("holder");
    let planted = plant(&app, "acme", "proc", &canary);
    let detail = planted["detail"].as_str().unwrap();
    let pid: u32 = detail.strip_prefix("holder pid ").and_then(|r| r.split(' ').next()?.parse().ok()).expect(detail);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv: Vec<&[u8]> = cmdline.split(|&b| b == 0).filter(|a| !a.is_empty()).collect();
    assert_eq!(argv, [&b"tenant-app"[..], b"probe-holder", canary.as_bytes()]);
    let environ = String::from_utf8(std::fs::read(format!("/proc/{pid}/environ")).unwrap()).unwrap();
    assert!(environ.split('\0').any(|kv| kv == format!("ISOBENCH_CANARY={canary}")), "{environ:?}");
    let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    assert!(ppid.rsplit_once(") ").unwrap().1.split(' ').nth(1) == Some(&app.pid().to_string()), "{ppid}");

    // SIGKILL: no clean-up code runs; the death signal alone ends the holder.
    app.signal(Signal::SIGKILL);
    app.wait(Duration::from_secs(5));
    let gone = wait::until(Duration::from_secs(1), || !process_running(pid));
    assert!(gone, "holder {pid} outlived its app by a second");
}

#[test]
fn net_sweep_fetches_a_peer_beacon_and_reports_an_unreachable_peer() {
    let a = Server::start(&["--probes"]);
    let b = Server::start(&["--probes"]);
    let canary = canary("net");
    plant(&b, "beta", "net", &canary);
    let beacon = b.connect().send("GET", "/probe/beacon", None, b"");
    assert_eq!((beacon.status, String::from_utf8_lossy(&beacon.body)), (200, format!("{canary}\n").into()));
    assert_eq!(a.connect().send("GET", "/probe/beacon", None, b"").body, b"", "a's beacon has b's canary");

    let closed = closed_addr();
    let started = Instant::now();
    let swept =
        sweep(&a, "alpha", "net", &json!({"peers": [b.addr.to_string(), closed.to_string()], "timeout_ms": 500}));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(found(&swept), [canary.as_str()]);
    let peers = &swept["detail"]["peers"];
    assert_eq!(peers[0], json!({"peer": b.addr.to_string(), "reached": true, "status": 200, "canaries": 1}));
    assert_eq!(
        (peers[1]["peer"].as_str(), peers[1]["reached"].as_bool()),
        (Some(closed.to_string().as_str()), Some(false))
    );
    assert_eq!(peers[1]["error"], "refused");
}

#[test]
fn cred_sweep_obtains_principals_from_stand_in_endpoints() {
    // One stand-in serves the ECS credentials endpoint, IMDS, the EKS Pod Identity agent and
    // STS (their paths or methods differ).
    let stub = StubHttp::start(Box::new(|method, path, headers| {
        let token = headers.iter().any(|(n, v)| n == "x-aws-ec2-metadata-token" && v == "tok");
        let header = |name: &str| headers.iter().find(|(n, _)| n == name).map_or("", |(_, v)| v.as_str());
        match (method, path) {
            ("GET", "/v1/credentials") if header("authorization") == "pod-token" => {
                (200, r#"{"AccessKeyId":"ASIAPOD","SecretAccessKey":"x","Token":"y","AccountId":"111122223333","Expiration":"2030-01-01T00:00:00Z","RoleArn":"arn:aws:iam::111122223333:role/pod-a"}"#.into())
            }
            ("POST", "/") if header("#body").contains("WebIdentityToken=web-token") => (
                200,
                "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><AssumedRoleUser><Arn>arn:aws:sts::111122223333:assumed-role/irsa-a/isobench-probe</Arn></AssumedRoleUser><Credentials><AccessKeyId>ASIAWEB</AccessKeyId><SecretAccessKey>x</SecretAccessKey></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>".into(),
            ),
            ("GET", "/v2/credentials/task-a") => {
                (200, r#"{"RoleArn":"arn:aws:iam::111122223333:role/task-a","AccessKeyId":"ASIATASKA","SecretAccessKey":"x"}"#.into())
            }
            ("GET", "/v2/credentials/task-b") => {
                (200, r#"{"RoleArn":"arn:aws:iam::111122223333:role/task-b","AccessKeyId":"ASIATASKB","Note":"isobench-canary:v1:itest:cred:stub"}"#.into())
            }
            ("PUT", "/latest/api/token") => (200, "tok".into()),
            ("GET", "/latest/meta-data/iam/security-credentials/") if token => (200, "instance-role".into()),
            ("GET", "/latest/meta-data/iam/security-credentials/instance-role") if token => {
                (200, r#"{"Code":"Success","AccessKeyId":"ASIAINSTANCE","SecretAccessKey":"x","Token":"y"}"#.into())
            }
            _ => (404, String::new()),
        }
    }));
    let tmp = tempfile::tempdir().unwrap();
    let tokens = tempfile::tempdir().unwrap();
    let (pod_token, web_token) = (tokens.path().join("pod"), tokens.path().join("web"));
    std::fs::write(&pod_token, "pod-token\n").unwrap();
    std::fs::write(&web_token, "web-token\n").unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["--probes", "--listen", "127.0.0.1:0", "--tmp-dir"])
        .arg(tmp.path())
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", format!("{}/v1/credentials", stub.url()))
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &pod_token)
        .env("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/irsa-a")
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", &web_token)
        .env("AWS_ENDPOINT_URL_STS", stub.url())
        .env("TENANT_APP_PROBE_ECS_ENDPOINT", stub.url())
        .env("TENANT_APP_PROBE_IMDS_ENDPOINT", stub.url())
        .env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/task-a")
        .env("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT")
        .env("ISOBENCH_ROLE_ARN", "arn:aws:iam::111122223333:role/function")
        .env_remove("AWS_SESSION_TOKEN");
    let app = Server::spawn(cmd, tmp);
    assert_eq!(plant(&app, "acme", "cred", "")["detail"], "nothing to plant");
    let params = json!({"credential_paths": ["/v2/credentials/task-b", "/v2/credentials/task-c"]});
    let swept = sweep(&app, "acme", "cred", &params);
    assert_eq!(
        found(&swept),
        [
            "isobench-principal:arn:aws:iam::111122223333:role/function",
            "isobench-principal:arn:aws:iam::111122223333:role/task-a",
            "isobench-principal:arn:aws:iam::111122223333:role/task-b",
            "isobench-canary:v1:itest:cred:stub",
            "isobench-principal:role/instance-role",
            "isobench-principal:arn:aws:iam::111122223333:role/pod-a",
            "isobench-principal:arn:aws:sts::111122223333:assumed-role/irsa-a/isobench-probe",
        ]
    );
    let outcomes: Vec<(&str, &str)> = swept["detail"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["source"].as_str().unwrap(), s["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("env", "found"),
            ("ecs", "found"),
            ("ecs_path", "found"),
            ("ecs_path", "denied"),
            ("imds", "found"),
            ("pod_identity", "found"),
            ("web_identity", "found")
        ]
    );
    assert_eq!(swept["detail"]["sources"][4]["version"], "v2");
    assert!(!swept.to_string().contains("SecretAccessKey"));
    assert!(stub.requests.lock().unwrap().contains(&"PUT /latest/api/token".to_owned()));
}

/// `rng` draws from the token generator: four fresh values per sweep, never repeated, in a
/// naive process (one generator shared by its tenants) as in a scoped one (seeded per request).
/// Whether draws continue one another is the harness's detector's to tell (see its tests).
#[test]
fn rng_draws_fresh_values_from_the_token_generator() {
    let naive = Server::start(&["--probes", "--hygiene", "naive"]);
    let scoped = Server::start(&["--probes"]);
    let draws = |s: &Server, tenant: &str| {
        let r = sweep(s, tenant, "rng", &Value::Null);
        assert_eq!((found(&r), r["detail"]["generator"].as_str()), (Vec::<&str>::new(), Some("splitmix64")));
        let d: Vec<String> =
            r["detail"]["draws"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
        assert!(d.len() == 4 && d.iter().all(|h| h.len() == 16 && h.bytes().all(|c| c.is_ascii_hexdigit())), "{r}");
        d
    };
    let all = [draws(&naive, "acme"), draws(&naive, "globex"), draws(&scoped, "acme"), draws(&scoped, "globex")];
    let distinct: std::collections::BTreeSet<&String> = all.iter().flatten().collect();
    assert_eq!(distinct.len(), 16, "{all:?}");
    assert_eq!(plant(&naive, "acme", "rng", "")["detail"], "nothing to plant");
}

/// `kernel` reports this host's fingerprint, the same from every process on it.
#[test]
fn kernel_fingerprints_match_between_processes_on_one_kernel() {
    let (a, b) = (Server::start(&["--probes"]), Server::start(&["--probes"]));
    let (x, y) = (sweep(&a, "acme", "kernel", &Value::Null), sweep(&b, "globex", "kernel", &Value::Null));
    assert_eq!(found(&x), Vec::<&str>::new());
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert_eq!(x["detail"]["boot_id"], boot_id.trim(), "{x}");
    assert_eq!(x["detail"]["boot_id"], y["detail"]["boot_id"]);
    assert_eq!(
        (x["detail"]["btime"].clone(), x["detail"]["release"].clone()),
        (y["detail"]["btime"].clone(), y["detail"]["release"].clone())
    );
}

/// A warm Lambda environment keeps what one invocation planted for the next, whoever it is for.
#[test]
fn lambda_probe_events_plant_and_sweep_across_invocations() {
    let f = Function::start(&["lambda"], &[("TENANT_APP_PROBES", "1")]);
    let call = |event: Value, tenant_id: &str| -> Value {
        let payload = f.call(event, Some(tenant_id));
        assert_eq!(
            (payload["status"].as_u64(), payload["content_type"].as_str()),
            (Some(200), Some("application/json")),
            "{payload}"
        );
        serde_json::from_str(payload["body"].as_str().unwrap()).unwrap()
    };
    for channel in ["tmp", "mem", "env", "fd"] {
        let canary = canary(channel);
        let planted = call(json!({"op": "probe", "channel": channel, "action": "plant", "canary": canary}), "acme");
        assert_eq!(planted["planted"], true, "{planted}");
        let swept = call(json!({"op": "probe", "channel": channel, "action": "sweep"}), "globex");
        assert!(found(&swept).contains(&canary.as_str()), "{channel}: {swept}");
    }
    // No network in a Lambda environment is a normal sweep result, not an error.
    let closed = closed_addr().to_string();
    let swept = call(
        json!({"op": "probe", "channel": "net", "action": "sweep", "params": {"peers": [closed], "timeout_ms": 200}}),
        "acme",
    );
    assert_eq!((swept["detail"]["peers"][0]["reached"].as_bool(), found(&swept).len()), (Some(false), 0));

    let off = Function::start(&["lambda"], &[]);
    let payload = off.call(json!({"op": "probe", "channel": "mem", "action": "sweep"}), Some("acme"));
    assert_eq!((payload["status"].as_u64(), payload["kind"].as_str()), (Some(404), Some("no_route")));
}
