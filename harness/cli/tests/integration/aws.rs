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
        let o = isobench().args(["plan", "scenarios/quick.toml", "--target", "aws"]).output().unwrap();
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
