//! `--target aws` through the binary. Without the `aws` feature: a clear refusal. With it:
//! `plan` lists resources and enforces the guard rails (exit 10); a run against LocalStack
//! deploys, skips the phases LocalStack cannot run (saying why) and leaves nothing; a harness
//! killed with SIGKILL mid-deploy leaves resources that `sweep --target aws --run` finds by tag
//! and removes.

#[cfg(feature = "aws")]
use isobench_testkit::scenario::{self, repo_root};

#[cfg(feature = "aws")]
use crate::util::stdout;
use crate::util::{isobench, stderr};

#[cfg(not(feature = "aws"))]
#[test]
fn without_the_feature_aws_is_refused_with_how_to_enable_it() {
    for args in [&["plan", "scenarios/quick.toml", "--target", "aws"][..], &["sweep", "--target", "aws"][..]] {
        let o = isobench().args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("--features aws"), "{}", stderr(&o));
    }
    // A sweep is refused before its directory is made.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let o =
        isobench().args(["explore", "scenarios/explore.toml", "--target", "aws", "--out"]).arg(&out).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--features aws"), "{}", stderr(&o));
    assert!(!out.exists(), "the refused sweep wrote {}", out.display());
}

#[cfg(not(feature = "aws"))]
#[test]
fn an_agent_over_s3_without_the_feature_is_refused_with_how_to_enable_it() {
    let o = isobench().arg("agent").env("ISOBENCH_AGENT_TRANSPORT", "s3").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("ISOBENCH_AGENT_TRANSPORT=s3") && stderr(&o).contains("--features aws"),
        "{}",
        stderr(&o)
    );
}

#[cfg(feature = "aws")]
mod with_feature {
    use std::path::PathBuf;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use isobench_aws::emulators::Emulators;

    use super::*;

    const EC2_AND_LAMBDA: &str = r#"format_version = 1
name = "aws-emu"
[run]
duration = "1s"
rate = 10
[tenants]
count = 2
[[tier]]
id = "silo-ec2"
instance_type = "t3.micro"
[[tier]]
id = "lambda-tenant-isolation"
"#;

    #[test]
    fn plan_lists_resources_and_guard_rails_abort_with_exit_10() {
        let o = isobench().args(["plan", "scenarios/ec2-pair.toml", "--target", "aws"]).output().unwrap();
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
        assert_eq!(out.matches("ec2 instance").count(), 7, "6 silo + 1 shared:\n{out}");
        assert!(out.contains("guard rails: all within their caps"), "{out}");
        let dir = tempfile::tempdir().unwrap();
        let capped = EC2_AND_LAMBDA.to_string() + "[aws]\nmax_instances = 1\n";
        let path = scenario::write(dir.path(), "capped.toml", &capped);
        for cmd in ["plan", "run"] {
            let o = isobench().arg(cmd).arg(&path).args(["--target", "aws"]).output().unwrap();
            assert_eq!(o.status.code(), Some(10), "{cmd}: {}", stderr(&o));
            assert!(
                stderr(&o).contains("2 EC2 instances") && stderr(&o).contains("max_instances = 1"),
                "{}",
                stderr(&o)
            );
        }
        let bad = EC2_AND_LAMBDA.to_string() + "[aws]\nmax_instancez = 1\n";
        let path = scenario::write(dir.path(), "bad.toml", &bad);
        let o = isobench().arg("plan").arg(&path).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("max_instancez"), "{}", stderr(&o));
    }

    /// The dollar figure after `prefix` on the line that starts with it.
    fn dollars(out: &str, prefix: &str) -> f64 {
        let line = out.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no `{prefix}`: {out}"));
        line[prefix.len()..].split(|c: char| c != '.' && !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    }

    #[test]
    fn plan_shows_the_load_agents_cost_and_the_cost_guard_rail_counts_it() {
        let dir = tempfile::tempdir().unwrap();
        let plain = scenario::write(dir.path(), "plain.toml", EC2_AND_LAMBDA);
        let with = EC2_AND_LAMBDA.to_string() + "[aws.agents]\ncount = 2\n";
        let path = scenario::write(dir.path(), "agents.toml", &with);
        let o = isobench().arg("plan").arg(&plain).args(["--target", "aws"]).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(!stdout(&o).contains("load agents:"), "{}", stdout(&o));
        let tiers_only = dollars(&stdout(&o), "projected cost of the run: $");
        let o = isobench().arg("plan").arg(&path).args(["--target", "aws"]).output().unwrap();
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
        let agents = dollars(&out, "load agents: $");
        assert!(out.contains("agents (modelled): N × T/3600") && out.contains("N = 2"), "{out}");
        // Two EC2 instances (silo) and the two agents' task interfaces.
        assert!(out.contains("network interfaces: 4 at most at once"), "{out}");
        let total = dollars(&out, "projected cost of the run: $");
        assert!(agents > 0.0 && (total - (tiers_only + agents)).abs() < 2e-4, "{tiers_only} + {agents} vs {total}");
        // A cap between the tiers' cost and the tiers' and agents': only the run with agents is over it.
        let cap = format!("[aws]\nmax_cost_usd = {:.6}\n", tiers_only + agents / 2.0);
        let plain = scenario::write(dir.path(), "plain-capped.toml", &(EC2_AND_LAMBDA.to_string() + &cap));
        let o = isobench().arg("plan").arg(&plain).args(["--target", "aws"]).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let capped = scenario::write(
            dir.path(),
            "capped.toml",
            &(EC2_AND_LAMBDA.to_string() + &cap + "[aws.agents]\ncount = 2\n"),
        );
        let o = isobench().arg("plan").arg(&capped).args(["--target", "aws"]).output().unwrap();
        assert_eq!(o.status.code(), Some(10), "{}{}", stdout(&o), stderr(&o));
        assert!(stderr(&o).contains("projected cost") && stderr(&o).contains("max_cost_usd"), "{}", stderr(&o));
    }

    #[test]
    fn the_cost_guard_rail_counts_what_an_eks_cluster_bills_while_it_is_created_and_deleted() {
        let one = ["--target", "aws", "--tiers", "eks-ns-deny"];
        let o = isobench().args(["plan", "scenarios/eks.toml"]).args(one).output().unwrap();
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
        // One cluster for 45 minutes at $0.10 per cluster-hour, before its nodes.
        let total = dollars(&out, "projected cost of the run: $");
        assert!(total > 0.75 * 0.10, "{out}");
        // A cap above the traffic's modelled cost (10 s per tier) but below the clusters'
        // creation and deletion: refused before anything is created.
        let dir = tempfile::tempdir().unwrap();
        let src = std::fs::read_to_string("scenarios/eks.toml").unwrap();
        let path = scenario::write(dir.path(), "eks.toml", &src.replace("[aws]\n", "[aws]\nmax_cost_usd = 0.15\n"));
        let o = isobench().arg("plan").arg(&path).args(one).output().unwrap();
        assert_eq!(o.status.code(), Some(10), "{}{}", stdout(&o), stderr(&o));
        assert!(stderr(&o).contains("projected cost") && stderr(&o).contains("max_cost_usd"), "{}", stderr(&o));
    }

    #[test]
    fn a_run_with_agents_refuses_an_agent_binary_that_cannot_run_in_their_containers_before_any_aws_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = scenario::write(dir.path(), "agents.toml", &(EC2_AND_LAMBDA.to_string() + "[aws.agents]\n"));
        let not_elf = scenario::write(dir.path(), "isobench", "#!/bin/sh\n");
        let out = dir.path().join("out");
        let mut c = isobench();
        c.arg("run").arg(&path).args(["--target", "aws", "--no-progress-bar", "--agent-binary"]).arg(&not_elf);
        c.arg("--out").arg(&out);
        for k in ["AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
            c.env_remove(k);
        }
        // Nothing answers there: a refusal after the first AWS call would exit 8, not 2.
        let o = c
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("is not a 64-bit little-endian ELF executable"), "{err}");
        assert!(err.contains("--features aws --target x86_64-unknown-linux-musl"), "{err}");
    }

    /// Lambda settings the AWS backend does not implement, at known lines: `code` (line 10) and
    /// an `architecture` (11) the run's workload binary is not for on the first tier,
    /// `[tier.vpc]` (14) on the second.
    const LAMBDA_UNSUPPORTED: &str = r#"format_version = 1
name = "aws-lambda"
[run]
duration = "1s"
rate = 10
[tenants]
count = 2
[[tier]]
id = "lambda-per-tenant"
code = "bootstrap"
architecture = "arm64"
[[tier]]
id = "lambda-shared"
[tier.vpc]
subnets = ["private"]
"#;

    #[test]
    fn lambda_settings_the_backend_lacks_are_refused_at_their_lines_with_exit_2() {
        let dir = tempfile::tempdir().unwrap();
        scenario::write(dir.path(), "bootstrap", "#!/bin/sh\n");
        let path = scenario::write(dir.path(), "s.toml", LAMBDA_UNSUPPORTED);
        let out = dir.path().join("out");
        let file = path.display().to_string();
        for cmd in ["plan", "run"] {
            // No credentials and no emulator: a refusal after any AWS call would exit 8.
            let mut c = isobench();
            c.arg(cmd).arg(&path).args(["--target", "aws"]);
            if cmd == "run" {
                c.args(["--no-progress-bar", "--out"]).arg(&out);
            }
            // Nothing answers there: a refusal after the first AWS call would exit 8, not 2.
            for k in ["AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
                c.env_remove(k);
            }
            let o = c
                .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env("AWS_REGION", "us-east-1")
                .output()
                .unwrap();
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{cmd}: {err}");
            assert!(err.contains("invalid scenario for --target aws") && err.contains("(3 problems)"), "{err}");
            for (line, field, what) in [
                (10, "tier[0].code", "the AWS backend does not upload a function's own code"),
                (
                    11,
                    "tier[0].architecture",
                    "the lambda-per-tenant tier runs arm64 but the run's workload binary is for x86_64",
                ),
                (14, "tier[1].vpc", "the AWS backend does not attach functions to a VPC yet"),
            ] {
                assert!(err.contains(&format!("{file}:{line}:")), "{cmd}: line {line}: {err}");
                assert!(err.contains(&format!("field `{field}`: {what}")), "{cmd}: {err}");
            }
            assert!(err.contains("accepted: no `code` with --target aws: remove it"), "{err}");
            assert!(stdout(&o).is_empty(), "{cmd}: refused before any plan is printed: {}", stdout(&o));
        }
        assert!(!out.exists(), "nothing was written for the refused run");
        // The same file is fine on the local emulator's side: `validate` accepts it.
        let o = isobench().arg("validate").arg(&path).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }

    #[test]
    fn plan_says_which_emulator_only_lambda_settings_aws_ignores() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{}keep_alive = \"5m..15m\"\nmax_lifetime = \"6h\"\n[local]\nlambda_account_concurrency = 500\n",
            EC2_AND_LAMBDA
        );
        let path = scenario::write(dir.path(), "s.toml", &text);
        let o = isobench().arg("plan").arg(&path).args(["--target", "aws"]).output().unwrap();
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
        assert!(
            out.contains(
                "ignored on AWS (they shape the local emulator only): \
                 lambda-tenant-isolation: keep_alive = \"5m..15m\", max_lifetime = \"6h\""
            ),
            "{out}"
        );
        assert!(out.contains("[local]: lambda_account_concurrency = 500"), "{out}");
    }

    fn start() -> Option<Emulators> {
        match Emulators::start(&repo_root()) {
            Ok(e) => Some(e),
            Err(why) => {
                isobench_testkit::root::skip(&isobench_testkit::root::test_name(module_path!()), &why);
                None
            }
        }
    }

    fn workload() -> PathBuf {
        PathBuf::from(env!("CARGO_BIN_EXE_isobench")).with_file_name("tenant-app")
    }

    fn with_env(mut c: Command, emu: &Emulators) -> Command {
        for (k, v) in emu.env(false) {
            c.env(k, v);
        }
        c.env("ISOBENCH_AWS_WORKLOAD", workload());
        c
    }

    #[test]
    fn localstack_run_skips_what_it_cannot_measure_and_sigkill_is_swept() {
        let Some(emu) = start() else { return };
        if !workload().exists() {
            panic!("{} is missing: build the workspace's binaries first (make test does)", workload().display());
        }
        let dir = tempfile::tempdir().unwrap();
        let path = scenario::write(dir.path(), "emu.toml", EC2_AND_LAMBDA);
        let out = dir.path().join("out");
        let o = with_env(isobench(), &emu)
            .arg("run")
            .arg(&path)
            .args(["--target", "aws", "--no-progress-bar", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        assert_eq!(summary["backend"]["fidelity"], "cloud-emulator");
        assert_eq!(summary["tiers"].as_array().unwrap().len(), 0, "no latency without a data plane");
        let partial = summary["partial_tiers"].as_array().unwrap();
        assert_eq!(partial.len(), 2, "{partial:?}");
        for t in partial {
            assert_eq!(t["ran"], serde_json::json!(["deploy", "teardown"]), "{t}");
            assert!(t["skipped"][0]["reason"].as_str().unwrap().contains("LocalStack"), "{t}");
            eprintln!(
                "figure: run --target aws on LocalStack: {} deploy {} ms teardown {} ms",
                t["tier"], t["deploy_ms"], t["teardown_ms"]
            );
        }
        let run_id = summary["run_id"].as_str().unwrap().to_string();
        let o = with_env(isobench(), &emu).args(["sweep", "--target", "aws", "--run", &run_id]).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stdout(&o).contains("nothing to sweep"), "{}", stdout(&o));

        // Killed mid-deploy: only a sweep by tag can find what it made.
        let six = EC2_AND_LAMBDA.replace("count = 2", "count = 6");
        let path = scenario::write(dir.path(), "six.toml", &six);
        let mut child = with_env(isobench(), &emu)
            .arg("run")
            .arg(&path)
            .args(["--target", "aws", "--no-progress-bar", "--out"])
            .arg(dir.path().join("killed"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (apis, caps) = rt.block_on(emu.apis(false));
        let start = Instant::now();
        let run_id = loop {
            // The run's first instance exists: the harness is mid-deploy.
            let found = rt.block_on(apis.ec2.tagged(isobench_aws::api::Ec2Kind::Instance)).unwrap();
            if let Some(f) = found.first() {
                break f.tags[isobench_aws::tags::RUN_KEY].clone();
            }
            assert!(start.elapsed() < Duration::from_secs(120), "no instance appeared");
            assert!(child.try_wait().unwrap().is_none(), "the run ended before it was killed");
            std::thread::sleep(Duration::from_millis(20));
        };
        child.kill().unwrap();
        child.wait().unwrap();
        let sel = isobench_aws::tags::Selector::Run(run_id.clone());
        let (left, _) = rt.block_on(isobench_aws::sweep::find(&apis, &caps, &sel));
        assert!(left.len() >= 5, "a VPC, subnet, groups, role, profile, instance...: {left:?}");
        // Without --run the run is not expired: listed with its age and the command, not removed.
        let o = with_env(isobench(), &emu).args(["sweep", "--target", "aws", "--dry-run"]).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let text = stdout(&o);
        assert!(text.contains(&format!("run {run_id}: ")) && text.contains(" ago, expires "), "{text}");
        assert!(text.contains(&format!("remove with: isobench sweep --target aws --run {run_id}")), "{text}");
        assert!(!text.contains("would remove"), "{text}");
        let o = with_env(isobench(), &emu)
            .args(["sweep", "--target", "aws", "--dry-run", "--run", &run_id])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stdout(&o).contains("would remove ec2 vpc"), "{}", stdout(&o));
        let o = with_env(isobench(), &emu).args(["sweep", "--target", "aws", "--run", &run_id]).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
        assert!(stdout(&o).contains("removed ec2 instance"), "{}", stdout(&o));
        let (left, _) = rt.block_on(isobench_aws::sweep::find(&apis, &caps, &sel));
        assert!(left.is_empty(), "{left:?}");
        let o = with_env(isobench(), &emu).args(["sweep", "--target", "aws", "--run", &run_id]).output().unwrap();
        assert!(stdout(&o).contains("nothing to sweep"), "{}", stdout(&o));
    }
}
