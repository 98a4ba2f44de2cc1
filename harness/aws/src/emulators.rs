//! LocalStack and moto servers on free loopback ports, from the virtual environments that
//! `scripts/emulators.sh install` makes under `.venv/emulators/`, for the integration tests and
//! the deploy/teardown bench. Both are stopped (their whole process groups) and their data
//! directories removed when [`Emulators`] is dropped.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::api::Apis;
use crate::capability::Capabilities;

pub struct Emulators {
    pub localstack_url: String,
    pub moto_url: String,
    children: Vec<Child>,
    data_dir: PathBuf,
}

/// The venvs' location in the workspace at `root`.
pub fn venv_dir(root: &Path) -> PathBuf {
    root.join(".venv").join("emulators")
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Emulators {
    /// Starts both and waits until they answer. `Err` says why they cannot start (for a skip
    /// message): no venv, or a server that did not come up.
    pub fn start(root: &Path) -> Result<Emulators, String> {
        let venvs = venv_dir(root);
        let ls_python = venvs.join("localstack/bin/python");
        let moto = venvs.join("moto/bin/moto_server");
        for p in [&ls_python, &moto] {
            if !p.exists() {
                return Err(format!("{} is missing; run `scripts/emulators.sh install`", p.display()));
            }
        }
        let data_dir = std::env::temp_dir().join(format!(
            "isobench-emulators-{}-{}",
            std::process::id(),
            free_port().unwrap_or(0)
        ));
        std::fs::create_dir_all(&data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
        let mut emu =
            Emulators { localstack_url: String::new(), moto_url: String::new(), children: Vec::new(), data_dir };
        let port = free_port().map_err(|e| e.to_string())?;
        let log = std::fs::File::create(emu.data_dir.join("localstack.log")).map_err(|e| e.to_string())?;
        let child = Command::new(&ls_python)
            .args(["-m", "localstack.runtime.main"])
            .env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
            .env("SERVICES", "ec2,iam,sts,s3,lambda")
            // Host mode with every file under the data directory.
            .env("OVERRIDE_IN_DOCKER", "0")
            .env("FILESYSTEM_ROOT", emu.data_dir.join("localstack-fs"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start LocalStack: {e}"))?;
        emu.children.push(child);
        emu.localstack_url = format!("http://127.0.0.1:{port}");
        let port = free_port().map_err(|e| e.to_string())?;
        let log = std::fs::File::create(emu.data_dir.join("moto.log")).map_err(|e| e.to_string())?;
        let child = Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(&emu.data_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start moto: {e}"))?;
        emu.children.push(child);
        emu.moto_url = format!("http://127.0.0.1:{port}");
        emu.wait(&format!("{}/_localstack/health", emu.localstack_url), "LocalStack")?;
        emu.wait(&format!("{}/moto-api/", emu.moto_url), "moto")?;
        Ok(emu)
    }

    fn wait(&self, url: &str, name: &str) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(120) {
            let (base, path) = url.split_at(url.find("/_").or_else(|| url.find("/moto")).unwrap_or(url.len()));
            if crate::capability::http_get(base, path).is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(format!("{name} did not answer {url} within 120 s (log in {})", self.data_dir.display()))
    }

    /// The environment a child `isobench` needs to use these emulators: LocalStack for every
    /// service, or moto for every service (`moto_only`, for ECS, whose tasks must land in
    /// subnets of the same emulator), with dummy credentials.
    pub fn env(&self, moto_only: bool) -> Vec<(String, String)> {
        let url = if moto_only { &self.moto_url } else { &self.localstack_url };
        vec![
            ("AWS_ENDPOINT_URL".into(), url.clone()),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            // No ~/.aws of the machine's user leaks into a test.
            ("AWS_CONFIG_FILE".into(), "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ]
    }

    /// SDK clients against one of the emulators, with dummy credentials.
    pub async fn apis(&self, moto_only: bool) -> (Apis, Capabilities) {
        let url = if moto_only { &self.moto_url } else { &self.localstack_url };
        let config = sdk_config(url).await;
        let apis = crate::config::apis_with(&config, true);
        let emulator = crate::capability::probe(url);
        let caps = Capabilities { ec2: emulator.clone(), ecs: emulator.clone(), lambda: emulator };
        (apis, caps)
    }

    /// This emulator's data directory (logs included).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

pub async fn sdk_config(url: &str) -> SdkConfig {
    let creds = aws_credential_types::Credentials::new("test", "test", None, None, "isobench-emulators");
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(creds)
        .load()
        .await
}

impl Drop for Emulators {
    fn drop(&mut self) {
        for c in &mut self.children {
            let pgid = c.id() as i32;
            // SAFETY: kill has no memory preconditions; the group is the child's own (process_group(0)).
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
        }
        let start = Instant::now();
        for c in &mut self.children {
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            // SAFETY: as above.
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Whether `.venv/emulators` holds both emulators.
pub fn installed(root: &Path) -> bool {
    let v = venv_dir(root);
    v.join("localstack/bin/python").exists() && v.join("moto/bin/moto_server").exists()
}
