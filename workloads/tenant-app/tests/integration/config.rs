use std::process::Command;

use crate::util::{BIN, Server};

/// Runs with configuration from the environment only, through both entry points.
#[test]
fn environment_variables_configure_serve_with_or_without_the_subcommand() {
    for subcommand in [None, Some("serve")] {
        let tmp = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(subcommand)
            .env("TENANT_APP_LISTEN", "127.0.0.1:0")
            .env("TENANT_APP_HYGIENE", "naive")
            .env("TENANT_APP_TENANT", "acme")
            .env("TENANT_APP_TMP_DIR", tmp.path())
            .env("TENANT_APP_WORKERS", "1");
        let server = Server::spawn(cmd, tmp);
        let who = server.connect().send("GET", "/whoami", None, b"").json();
        assert_eq!((who["hygiene"].as_str(), who["tenant"].as_str()), (Some("naive"), Some("acme")), "{subcommand:?}");
        let mut c = server.connect();
        assert_eq!(c.tenant("PUT", "/t/acme/records/k", "acme", b"v").status, 201);
        assert!(server.tmp.path().join("cache-k").exists(), "TENANT_APP_TMP_DIR ignored");
    }
}

#[test]
fn bad_configuration_fails_fast_with_a_usage_error() {
    for args in [
        &["--hygiene", "sloppy"][..],
        &["--tenant", "UPPER"],
        &["--fault-error-rate", "2"],
        &["--fault-stall", "forever"],
        &["--listen", "nowhere"],
        &["--workers", "0"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // Valid alone, together more than every request: rejected at start, not at the first request.
    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--fault-error-rate", "0.6", "--fault-stall-rate", "0.6"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid fault settings"));
    assert!(out.stdout.is_empty(), "announced before failing");
}

#[test]
fn help_documents_every_flag() {
    let out = Command::new(BIN).args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--tenant",
        "--hygiene",
        "--tmp-dir",
        "--workers",
        "--shutdown-grace",
        "--max-record-bytes",
        "--fault-error-rate",
        "--fault-stall-rate",
        "--fault-stall ",
        "--fault-seed",
        "--probes",
        "--probe-ecs-endpoint",
        "--probe-imds-endpoint",
        "TENANT_APP_LISTEN",
    ] {
        assert!(help.contains(flag), "help lacks {flag}:\n{help}");
    }
}
