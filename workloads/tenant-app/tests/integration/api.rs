use crate::util::Server;

#[test]
fn many_requests_on_one_keep_alive_connection() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    assert_eq!(c.send("GET", "/healthz", None, b"").status, 200);
    assert_eq!(c.tenant("PUT", "/t/acme/records/k1", "acme", b"hello").status, 201);
    let got = c.tenant("GET", "/t/acme/records/k1", "acme", b"");
    assert_eq!((got.status, got.body.as_slice()), (200, &b"hello"[..]));
    assert_eq!(got.header("content-type"), Some("application/octet-stream"));
    let missing = c.tenant("GET", "/t/acme/records/nope", "acme", b"");
    assert_eq!((missing.status, missing.kind().as_str()), (404, "not_found"));
    let computed = c.tenant("POST", "/t/acme/compute?us=2000", "acme", b"");
    assert_eq!(computed.status, 200);
    assert!(computed.json()["cpu_us"].as_u64().unwrap() >= 2000);
    let too_long = c.tenant("POST", "/t/acme/compute?us=1000001", "acme", b"");
    assert_eq!((too_long.status, too_long.kind().as_str()), (400, "bad_compute"));
    assert_eq!(c.tenant("DELETE", "/t/acme", "acme", b"").status, 204);
    assert_eq!(c.tenant("GET", "/t/acme/records/k1", "acme", b"").status, 404);
    // Every answer above came back on the one connection, none of them closing it.
    assert_eq!(c.send("GET", "/healthz", None, b"").header("connection"), None);
}

#[test]
fn tenant_header_must_be_present_and_match_the_path() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    for (tenant, path, status, kind) in [
        (None, "/t/acme/records/k", 400, "tenant_mismatch"),
        (Some("other"), "/t/acme/records/k", 400, "tenant_mismatch"),
        (Some("Acme"), "/t/Acme/records/k", 400, "bad_tenant"),
        (Some("acme"), "/t/acme/records/.hidden", 400, "bad_key"),
        (Some("acme"), "/t/acme/nothing", 404, "no_route"),
    ] {
        let reply = c.send("GET", path, tenant, b"");
        assert_eq!((reply.status, reply.kind().as_str()), (status, kind), "{tenant:?} {path}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
    }
    let wrong_method = c.send("PATCH", "/t/acme/records/k", Some("acme"), b"");
    assert_eq!((wrong_method.status, wrong_method.kind().as_str()), (405, "method_not_allowed"));
    assert_eq!(c.send("PUT", "/t/acme/records/k", Some("other"), b"x").status, 400);
    assert_eq!(c.tenant("GET", "/t/acme/records/k", "acme", b"").status, 404, "a mismatched PUT stored a record");
}

#[test]
fn a_silo_instance_refuses_other_tenants() {
    let server = Server::start(&["--tenant", "acme"]);
    let mut c = server.connect();
    assert_eq!(c.tenant("PUT", "/t/acme/records/k", "acme", b"a").status, 201);
    let refused = c.tenant("GET", "/t/globex/records/k", "globex", b"");
    assert_eq!((refused.status, refused.kind().as_str()), (403, "wrong_tenant"));
    assert_eq!(c.tenant("POST", "/t/globex/compute?us=1", "globex", b"").status, 403);
    assert_eq!(c.send("GET", "/whoami", None, b"").json()["tenant"], "acme");
}

#[test]
fn whoami_identifies_the_process() {
    let a = Server::start(&["--hygiene", "naive"]);
    let b = Server::start(&[]);
    let who_a = a.connect().send("GET", "/whoami", None, b"").json();
    let who_b = b.connect().send("GET", "/whoami", None, b"").json();
    assert_eq!(who_a["pid"], a.pid());
    assert_eq!(who_b["pid"], b.pid());
    assert_eq!((who_a["hygiene"].as_str(), who_b["hygiene"].as_str()), (Some("naive"), Some("scoped")));
    assert!(who_a["tenant"].is_null());
    assert_eq!(who_a["uid"], nix::unistd::getuid().as_raw());
    assert!(who_a["hostname"].is_string());
    assert_eq!(who_a["instance_nonce"].as_str().unwrap().len(), 32);
    assert_ne!(who_a["instance_nonce"], who_b["instance_nonce"]);
}

#[test]
fn naive_hygiene_leaks_across_tenants_and_scoped_does_not() {
    for (hygiene, leaks) in [("naive", true), ("scoped", false)] {
        let server = Server::start(&["--hygiene", hygiene]);
        let mut c = server.connect();
        assert_eq!(c.tenant("PUT", "/t/alice/records/profile", "alice", b"alice-secret").status, 201);
        let peek = c.tenant("GET", "/t/bob/records/profile", "bob", b"");
        if leaks {
            assert_eq!((peek.status, peek.body.as_slice()), (200, &b"alice-secret"[..]), "{hygiene}");
            assert!(server.tmp.path().join("cache-profile").exists());
        } else {
            assert_eq!(peek.status, 404, "{hygiene}");
            assert!(server.tmp.path().join("tenants/alice/profile").exists());
        }
    }
}

#[test]
fn faults_and_limits_over_the_wire() {
    let server = Server::start(&["--fault-error-rate", "1", "--fault-seed", "1", "--max-record-bytes", "16"]);
    let mut c = server.connect();
    let injected = c.tenant("PUT", "/t/acme/records/k", "acme", b"small");
    assert_eq!((injected.status, injected.kind().as_str()), (500, "injected"));
    let too_large = c.tenant("PUT", "/t/acme/records/k", "acme", &[b'x'; 17]);
    assert_eq!((too_large.status, too_large.kind().as_str()), (413, "too_large"));
    // Health and identity stay reliable under injected faults.
    let mut c = server.connect();
    assert_eq!(c.send("GET", "/healthz", None, b"").status, 200);
    assert_eq!(c.send("GET", "/whoami", None, b"").status, 200);
}
