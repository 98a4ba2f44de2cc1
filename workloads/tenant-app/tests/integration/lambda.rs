use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use isobench_testkit::process::listening_sockets;
use isobench_testkit::wait;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

use crate::runtime_api::{Outcome, RuntimeApi};
use crate::util::{BIN, Server};

/// The binary in Lambda mode against its own Runtime API server; killed and reaped on drop.
pub struct Function {
    child: Child,
    api: RuntimeApi,
    tmp: tempfile::TempDir,
    stderr: Arc<Mutex<String>>,
    spawned: Instant,
}

impl Function {
    /// `tenant-app <args>` with the variables Lambda sets for `bootstrap`, plus `env`.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Function {
        Function::start_without(args, env, None)
    }

    /// As [`Function::start`], leaving out one of Lambda's variables.
    fn start_without(args: &[&str], env: &[(&str, &str)], unset: Option<&str>) -> Function {
        let api = RuntimeApi::start();
        let tmp = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "tenant-app")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/29/[$LATEST]0123456789abcdef")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/tenant-app")
            .env("AWS_REGION", "us-east-1")
            .env("_HANDLER", "bootstrap")
            .env("TENANT_APP_TMP_DIR", tmp.path())
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(name) = unset {
            cmd.env_remove(name);
        }
        let spawned = Instant::now();
        let mut child = cmd.spawn().expect("spawn tenant-app");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Function { child, api, tmp, stderr, spawned }
    }

    fn invoke(&self, event: serde_json::Value, tenant_id: Option<&str>) -> Outcome {
        self.api.invoke(event, tenant_id)
    }

    /// The payload of an invocation that must not be a function error.
    pub fn call(&self, event: serde_json::Value, tenant_id: Option<&str>) -> serde_json::Value {
        self.invoke(event, tenant_id).payload()
    }

    fn whoami(&self) -> serde_json::Value {
        let payload = self.call(json!({"op": "whoami"}), None);
        assert_eq!(payload["status"], 200, "{payload}");
        serde_json::from_str(payload["body"].as_str().expect("whoami body is text")).unwrap()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        wait::for_exit(&mut self.child, timeout).unwrap_or_else(|| panic!("did not exit within {timeout:?}"))
    }

    fn stderr(&self) -> String {
        // The reader thread may lag the exit by a moment.
        std::thread::sleep(Duration::from_millis(50));
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn one_process_serves_invocation_after_invocation_and_keeps_its_state() {
    let f = Function::start(&["lambda"], &[]);
    let first = f.whoami();
    assert_eq!(first["pid"], f.pid());
    assert_eq!(first["invocations"], 1);

    let put = f.call(json!({"tenant": "acme", "op": "put", "key": "k1", "body": "hello"}), None);
    assert_eq!((put["status"].as_u64(), put.get("kind")), (Some(201), None), "{put}");
    let got = f.call(json!({"tenant": "acme", "op": "get", "key": "k1"}), None);
    assert_eq!(got, json!({"status": 200, "body": "hello", "content_type": "application/octet-stream"}));
    // Binary records round-trip as base64.
    let put = f.call(json!({"tenant": "acme", "op": "put", "key": "bin", "body_b64": "AP8A/w=="}), None);
    assert_eq!(put["status"], 201);
    let got = f.call(json!({"tenant": "acme", "op": "get", "key": "bin"}), None);
    assert_eq!(
        (got["status"].as_u64(), got["body_b64"].as_str(), got.get("body")),
        (Some(200), Some("AP8A/w=="), None)
    );
    // Errors of the business logic are payloads: an HTTP-200 invoke with an error body.
    let missing = f.call(json!({"tenant": "acme", "op": "get", "key": "nope"}), None);
    assert_eq!((missing["status"].as_u64(), missing["kind"].as_str()), (Some(404), Some("not_found")));
    let compute = f.call(json!({"tenant": "acme", "op": "compute", "us": 500}), None);
    assert_eq!(compute["status"], 200);

    // The record also went to the environment's temp dir, where the next invocation finds it.
    assert_eq!(std::fs::read(f.tmp.path().join("tenants/acme/k1")).unwrap(), b"hello");
    let again = f.whoami();
    assert_eq!(again["invocations"], 8, "{again}");
    assert_eq!((&again["pid"], &again["instance_nonce"]), (&first["pid"], &first["instance_nonce"]));
    assert!(f.api.nexts() >= 8);
}

#[test]
fn the_invoke_tenant_id_reaches_the_handler_and_overrules_the_event() {
    let f = Function::start(&["lambda"], &[]);
    // Only the tenant-id header: it names the tenant.
    let put = f.call(json!({"op": "put", "key": "k", "body": "acme-secret"}), Some("acme"));
    assert_eq!(put["status"], 201, "{put}");
    let got = f.call(json!({"tenant": "acme", "op": "get", "key": "k"}), Some("acme"));
    assert_eq!((got["status"].as_u64(), got["body"].as_str()), (Some(200), Some("acme-secret")));
    // The header, not the event, is who is asking: asking for acme's record as globex fails.
    let stolen = f.call(json!({"tenant": "acme", "op": "get", "key": "k"}), Some("globex"));
    assert_eq!((stolen["status"].as_u64(), stolen["kind"].as_str()), (Some(400), Some("tenant_mismatch")), "{stolen}");
    assert!(stolen["body"].as_str().unwrap().contains("tenant_mismatch"));
    // And as globex without naming a tenant, it is globex's (empty) namespace.
    let own = f.call(json!({"op": "get", "key": "k"}), Some("globex"));
    assert_eq!((own["status"].as_u64(), own["kind"].as_str()), (Some(404), Some("not_found")));
    // Neither header nor event tenant: no claim.
    let anonymous = f.call(json!({"op": "get", "key": "k"}), None);
    assert_eq!((anonymous["status"].as_u64(), anonymous["kind"].as_str()), (Some(400), Some("tenant_mismatch")));
}

#[test]
fn injected_faults_and_bad_events_are_function_errors() {
    let f = Function::start(&["lambda"], &[("TENANT_APP_FAULT_ERROR_RATE", "1"), ("TENANT_APP_FAULT_SEED", "7")]);
    let injected = f.invoke(json!({"tenant": "acme", "op": "put", "key": "k", "body": "a"}), None);
    assert_eq!(injected.error_type(), "InjectedFault");
    let Outcome::Error { message, header, .. } = &injected else { unreachable!() };
    assert_eq!((message.as_str(), header.as_deref()), ("injected fault", Some("unhandled")));
    // Health checks and clean-up are never faulted, and arrive on `/response`.
    assert_eq!(f.call(json!({"op": "health"}), None)["status"], 200);
    assert_eq!(f.call(json!({"tenant": "acme", "op": "purge"}), None)["status"], 204);

    let invalid = f.invoke(json!({"tenant": "acme", "op": "frobnicate"}), None);
    assert_eq!(invalid.error_type(), "InvalidEvent");
    let Outcome::Error { message, .. } = &invalid else { unreachable!() };
    assert!(message.contains("frobnicate"), "{message}");
    assert_eq!(
        f.invoke(json!({"op": "get", "tenant": "acme", "key": "k", "extra": 1}), None).error_type(),
        "InvalidEvent"
    );
    // Not JSON at all never reaches our handler (real Lambda refuses such an invoke); lambda_runtime
    // reports it as a function error of its own, and the process carries on.
    let not_json = f.api.invoke_raw(b"put acme k", None);
    assert!(not_json.error_type().contains("DeserializeError"), "{not_json:?}");

    let who = f.whoami();
    assert_eq!(who["invocations"], 6, "the process did not survive the function errors: {who}");
}

#[test]
fn started_as_bootstrap_it_runs_lambda_mode_from_environment_variables() {
    let mut f = Function::start(&[], &[("TENANT_APP_HYGIENE", "naive"), ("TENANT_APP_TENANT", "acme")]);
    let first_next = f.api.wait_first_next(Duration::from_secs(10)).expect("never polled /next: not in Lambda mode");
    let init = first_next - f.spawned;
    eprintln!("INIT (spawn to first /next): {init:?}");
    assert!(init < Duration::from_secs(1), "INIT took {init:?}");

    let who = f.whoami();
    assert_eq!((who["hygiene"].as_str(), who["tenant"].as_str()), (Some("naive"), Some("acme")), "{who}");
    let refused = f.call(json!({"tenant": "globex", "op": "get", "key": "k"}), Some("globex"));
    assert_eq!((refused["status"].as_u64(), refused["kind"].as_str()), (Some(403), Some("wrong_tenant")));
    assert_eq!(f.call(json!({"tenant": "acme", "op": "put", "key": "k", "body": "v"}), None)["status"], 201);
    assert!(f.tmp.path().join("cache-k").exists(), "TENANT_APP_TMP_DIR or TENANT_APP_HYGIENE ignored");

    // No inbound network in a Lambda environment: nothing listens. (The positive control: the
    // same check finds the HTTP server's socket.)
    assert_eq!(listening_sockets(f.pid()), 0, "Lambda mode listens on a socket");
    let http = Server::start(&[]);
    assert_eq!(listening_sockets(http.pid()), 1);

    kill(Pid::from_raw(f.pid() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(f.wait(Duration::from_secs(5)).code(), Some(0));
}

#[test]
fn init_failures_are_posted_to_init_error_before_exiting() {
    for (args, env, unset, error_type, exit, needle) in [
        (
            &["lambda"][..],
            &[("TENANT_APP_FAULT_ERROR_RATE", "0.6"), ("TENANT_APP_FAULT_STALL_RATE", "0.6")][..],
            None,
            "InvalidConfig",
            1,
            "invalid fault settings",
        ),
        (
            &["lambda"],
            &[],
            Some("AWS_LAMBDA_FUNCTION_NAME"),
            "InvalidEnvironment",
            1,
            "AWS_LAMBDA_FUNCTION_NAME is not set",
        ),
        (&[], &[("TENANT_APP_HYGIENE", "sloppy")], None, "InvalidConfig", 2, "sloppy"),
        (&["--listen", "127.0.0.1:0"], &[], None, "InvalidConfig", 2, "--listen is an option of `serve`"),
    ] {
        let mut f = Function::start_without(args, env, unset);
        let post =
            f.api.next_post(Duration::from_secs(10)).unwrap_or_else(|| panic!("{args:?} {env:?}: no init error"));
        assert_eq!(post.path, "/2018-06-01/runtime/init/error");
        let body = post.json();
        assert_eq!(body["errorType"], error_type, "{body}");
        assert!(body["errorMessage"].as_str().unwrap().contains(needle), "{body}");
        assert_eq!(f.wait(Duration::from_secs(5)).code(), Some(exit), "{args:?} {env:?}");
        let stderr = f.stderr();
        assert!(stderr.contains(needle) && !stderr.contains("panicked"), "{stderr}");
        assert_eq!(f.api.nexts(), 0, "polled /next after a failed INIT");
    }
}
