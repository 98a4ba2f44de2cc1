//! Deploy and teardown per tier on emulators (feature `aws`): `silo-ec2`, `shared-ec2` and the
//! three Lambda tiers on LocalStack, `ecs-awsvpc` (Fargate) on moto, since LocalStack's free
//! edition has no ECS. Both serve control planes only, so this times API work (the VPC, groups,
//! roles, bucket, instance, task or function, and their removal in dependency order, ending with
//! the run's tag query), not AWS's provisioning times.
//!
//! `make bench` installs the pinned emulators and runs this. `cargo bench --features aws -- aws/`
//! uses `ISOBENCH_LOCALSTACK_URL` / `ISOBENCH_MOTO_URL` when they answer, else starts the pinned
//! servers from `.venv/emulators` on free ports and stops them at the end, on a panic and on
//! SIGINT/SIGTERM/SIGHUP, then checks that none of their processes and no data directory is left.
//! Without the venvs it says how to install them (a failure under CI).

use criterion::{Criterion, criterion_group};

#[cfg(feature = "aws")]
mod emulated {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use criterion::{Criterion, SamplingMode};
    use isobench_aws::api::Apis;
    use isobench_aws::capability::{Capabilities, Emulator};
    use isobench_aws::deployer::Deployer;
    use isobench_aws::emulators::{self, Emulators};
    use isobench_core::plan::{Overrides, Plan};
    use isobench_core::scenario::Scenario;

    const GROUP: &str = "aws/deploy-teardown";
    /// Every tier with the emulator that serves it: `false` LocalStack, `true` moto.
    const TIERS: [(&str, bool, &str); 6] = [
        ("silo-ec2", false, "instance_type = \"t3.micro\"\n"),
        ("shared-ec2", false, "instance_type = \"t3.micro\"\n"),
        ("ecs-awsvpc", true, "launch_type = \"fargate\"\n"),
        ("lambda-per-tenant", false, ""),
        ("lambda-shared", false, ""),
        ("lambda-tenant-isolation", false, ""),
    ];

    /// Cycles so far, for unique run ids.
    static RUNS: AtomicU32 = AtomicU32::new(0);
    /// The servers this bench started, where the signal thread can stop them too.
    static STARTED: Mutex<Option<Emulators>> = Mutex::new(None);

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    pub fn deploy_teardown(c: &mut Criterion) {
        let (ls_url, moto_url, guard) = match endpoints() {
            Ok(e) => e,
            Err(why) => {
                isobench_testkit::root::skip(GROUP, &why);
                return;
            }
        };
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let localstack = rt.block_on(clients(&ls_url));
        let moto = rt.block_on(clients(&moto_url));
        let (workload, what) = workload();
        eprintln!("{GROUP}: LocalStack {ls_url}, moto {moto_url}; workload {what} ({} bytes)", workload.len());
        let mut g = c.benchmark_group(GROUP);
        // One iteration is a whole deploy and teardown (0.1 to a few seconds): ten flat samples
        // keep the group to a few minutes.
        g.sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(8));
        let mut rows = Vec::new();
        for (name, on_moto, settings) in TIERS {
            let (apis, caps) = if on_moto { &moto } else { &localstack };
            let mut bench = TierBench::new(name, settings, apis, caps, &workload);
            // Untimed: the emulator loads a service's provider on its first call.
            rt.block_on(bench.cycle());
            bench.cycles.clear();
            let b = &mut bench;
            g.bench_function(format!("{name}/deploy"), |i| {
                i.iter_custom(|n| (0..n).map(|_| rt.block_on(b.cycle()).0).sum())
            });
            g.bench_function(format!("{name}/teardown"), |i| {
                i.iter_custom(|n| (0..n).map(|_| rt.block_on(b.cycle()).1).sum())
            });
            rows.push(bench.row(if on_moto { "moto" } else { "localstack" }));
        }
        g.finish();
        print_figures(&rows);
        drop(rt);
        if let Some(guard) = guard {
            guard.stop_and_check();
        }
    }

    /// LocalStack's and moto's URLs, and the guard of what was started for them.
    fn endpoints() -> Result<(String, String, Option<Guard>), String> {
        let given = |var: &str, want_moto: bool| {
            let url = std::env::var(var).ok()?;
            match (isobench_aws::capability::probe(&url), want_moto) {
                (Emulator::LocalStack { .. }, false) | (Emulator::Moto { .. }, true) => Some(url),
                (found, _) => {
                    eprintln!("{GROUP}: {var}={url} is not answering as expected ({found:?}); starting the pinned one");
                    None
                }
            }
        };
        let (ls, moto) = (given("ISOBENCH_LOCALSTACK_URL", false), given("ISOBENCH_MOTO_URL", true));
        if let (Some(ls), Some(moto)) = (&ls, &moto) {
            return Ok((ls.clone(), moto.clone(), None));
        }
        if !emulators::installed(&root()) {
            return Err(format!(
                "LocalStack and moto are not installed in {}; install the pinned versions with \
                 `scripts/emulators.sh install` (`make bench` does), or point ISOBENCH_LOCALSTACK_URL and \
                 ISOBENCH_MOTO_URL at running ones",
                emulators::venv_dir(&root()).display()
            ));
        }
        let guard = Guard::start()?;
        let started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
        let emu = started.as_ref().expect("just started");
        let urls = (ls.unwrap_or_else(|| emu.localstack_url.clone()), moto.unwrap_or_else(|| emu.moto_url.clone()));
        eprintln!("{GROUP}: started LocalStack at {} and moto at {}", emu.localstack_url, emu.moto_url);
        Ok((urls.0, urls.1, Some(guard)))
    }

    /// Stops the started servers when dropped (also while a panic unwinds); a signal thread
    /// stops them on SIGINT, SIGTERM or SIGHUP and exits 130.
    struct Guard {
        data_dir: PathBuf,
        urls: [String; 2],
    }

    impl Guard {
        fn start() -> Result<Guard, String> {
            use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
            let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
                .map_err(|e| format!("cannot install the signal handler: {e}"))?;
            let emu = Emulators::start(&root())?;
            let guard = Guard {
                data_dir: emu.data_dir().to_path_buf(),
                urls: [emu.localstack_url.clone(), emu.moto_url.clone()],
            };
            *STARTED.lock().unwrap_or_else(|e| e.into_inner()) = Some(emu);
            std::thread::spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    eprintln!("{GROUP}: signal {sig}: stopping the emulators this bench started");
                    stop();
                    std::process::exit(130);
                }
            });
            Ok(guard)
        }

        /// Stops the servers and checks that nothing of them is left: no process that ran in
        /// or names their data directory, no answer on their ports, no data directory.
        fn stop_and_check(self) {
            let (dir, urls) = (self.data_dir.clone(), self.urls.clone());
            let before = processes_naming(&dir);
            assert!(!before.is_empty(), "the check sees none of the servers it started (under {})", dir.display());
            drop(self);
            let left: Vec<u32> = before.iter().copied().filter(|pid| running(*pid)).collect();
            let answering: Vec<&String> =
                urls.iter().filter(|u| isobench_aws::capability::http_get(u, "/").is_some()).collect();
            assert!(
                left.is_empty() && processes_naming(&dir).is_empty() && answering.is_empty() && !dir.exists(),
                "left after the stop: processes {left:?}, answering {answering:?}, {} exists: {}",
                dir.display(),
                dir.exists()
            );
            eprintln!(
                "{GROUP}: stopped the {} emulator processes it started; none left, data directory removed",
                before.len()
            );
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            stop();
        }
    }

    fn stop() {
        // Dropping the servers ends their process groups and removes their data directory.
        let emu = STARTED.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(emu);
    }

    /// Processes whose working directory is under `dir` or whose environment names it (moto
    /// runs in it; LocalStack's FILESYSTEM_ROOT is in it).
    fn processes_naming(dir: &Path) -> Vec<u32> {
        let needle = dir.to_string_lossy().into_owned();
        let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
        let mut found = Vec::new();
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let cwd = std::fs::read_link(e.path().join("cwd")).map(|p| p.to_string_lossy().into_owned());
            let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
            let in_env = env.split(|b| *b == 0).any(|v| String::from_utf8_lossy(v).contains(&needle));
            if cwd.is_ok_and(|c| c.starts_with(&needle)) || in_env {
                found.push(pid);
            }
        }
        found
    }

    /// Whether `pid` exists and is not a zombie (an ended child not yet reaped by init).
    fn running(pid: u32) -> bool {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status.lines().find_map(|l| l.strip_prefix("State:")).is_some_and(|s| !s.trim_start().starts_with('Z'))
    }

    async fn clients(url: &str) -> (Apis, Capabilities) {
        let config = emulators::sdk_config(url).await;
        let emulator = isobench_aws::capability::probe(url);
        let caps = Capabilities { ec2: emulator.clone(), ecs: emulator.clone(), lambda: emulator };
        (isobench_aws::config::apis_with(&config, true), caps)
    }

    /// The release `tenant-app` when built (`make bench` builds it), else this bench's own
    /// executable: nothing runs on the emulators, but its bytes are uploaded and zipped.
    fn workload() -> (Arc<Vec<u8>>, String) {
        let app = root().join("target/release/tenant-app");
        let path = if app.exists() { app } else { std::env::current_exe().unwrap() };
        (Arc::new(std::fs::read(&path).unwrap()), path.display().to_string())
    }

    /// One tier's scenario and every cycle's (deploy, teardown, resources removed).
    struct TierBench<'a> {
        name: &'static str,
        scenario: Scenario,
        apis: &'a Apis,
        caps: &'a Capabilities,
        workload: &'a Arc<Vec<u8>>,
        cycles: Vec<(Duration, Duration, usize)>,
    }

    impl<'a> TierBench<'a> {
        fn new(
            name: &'static str,
            settings: &str,
            apis: &'a Apis,
            caps: &'a Capabilities,
            workload: &'a Arc<Vec<u8>>,
        ) -> TierBench<'a> {
            let src = format!(
                "format_version = 1\nname = \"b\"\n[run]\nduration = \"1s\"\nrate = 1\n[tenants]\ncount = 1\n\
                 [[tier]]\nid = \"{name}\"\n{settings}"
            );
            let scenario = Scenario::parse(&src, Path::new("bench.toml")).unwrap_or_else(|e| panic!("{e}"));
            TierBench { name, scenario, apis, caps, workload, cycles: Vec::new() }
        }

        /// One fresh run: deploy one tenant, then tear everything down. A failure tears down
        /// what it can and stops the bench (the guard stops the emulators).
        async fn cycle(&mut self) -> (Duration, Duration) {
            // Unique per process and cycle, so runs on a reused emulator do not meet.
            let tag = (std::process::id().wrapping_mul(0x9e37) ^ RUNS.fetch_add(1, Ordering::Relaxed)) & 0xffff;
            let plan = Plan::new(
                format!("20270101T000000Z-b{tag:04x}"),
                self.scenario.clone(),
                "h".into(),
                &Overrides::default(),
            );
            let mut d = Deployer::new(
                self.apis.clone(),
                &plan.run_id,
                plan.scenario.aws.clone(),
                self.caps.clone(),
                self.workload.clone(),
            );
            let t0 = Instant::now();
            let deployed = d.deploy(&plan.tiers[0]).await;
            let deploy = t0.elapsed();
            let t1 = Instant::now();
            let r = d.teardown(None).await;
            let teardown = t1.elapsed();
            if let Err(e) = deployed {
                panic!(
                    "deploy {} ({}): {e}; teardown removed {} and failed on {:?}",
                    self.name,
                    plan.run_id,
                    r.removed.len(),
                    r.failed
                );
            }
            assert!(r.failed.is_empty(), "teardown {} ({}): {:?}", self.name, plan.run_id, r.failed);
            self.cycles.push((deploy, teardown, r.removed.len()));
            (deploy, teardown)
        }

        fn row(&self, emulator: &'static str) -> Row {
            let pick = |f: fn(&(Duration, Duration, usize)) -> Duration| {
                let mut v: Vec<Duration> = self.cycles.iter().map(f).collect();
                v.sort();
                v
            };
            Row {
                tier: self.name,
                emulator,
                deploy: pick(|c| c.0),
                teardown: pick(|c| c.1),
                resources: self.cycles.first().map_or(0, |c| c.2),
            }
        }
    }

    struct Row {
        tier: &'static str,
        emulator: &'static str,
        deploy: Vec<Duration>,
        teardown: Vec<Duration>,
        resources: usize,
    }

    fn fmt(v: &[Duration]) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        match v {
            [] => "n/a".into(),
            _ => format!("{:.0} ms ({:.0}–{:.0})", ms(v[v.len() / 2]), ms(v[0]), ms(v[v.len() - 1])),
        }
    }

    fn print_figures(rows: &[Row]) {
        println!("\n{GROUP} per tier, one tenant (emulator control-plane API time, not AWS provisioning):");
        println!(
            "{:<24} {:<11} {:>6}  {:<22} {:<22} {:>9}",
            "tier", "emulator", "cycles", "deploy p50 (min–max)", "teardown p50 (min–max)", "resources"
        );
        for r in rows {
            println!(
                "{:<24} {:<11} {:>6}  {:<22} {:<22} {:>9}",
                r.tier,
                r.emulator,
                r.deploy.len(),
                fmt(&r.deploy),
                fmt(&r.teardown),
                r.resources
            );
        }
    }
}

#[cfg(feature = "aws")]
fn deploy_teardown(c: &mut Criterion) {
    emulated::deploy_teardown(c);
}

#[cfg(not(feature = "aws"))]
fn deploy_teardown(_c: &mut Criterion) {
    eprintln!("skipping aws/deploy-teardown: built without `--features aws` (run `make bench`)");
}

criterion_group!(aws, deploy_teardown);
