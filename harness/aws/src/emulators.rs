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
        let mut apis = crate::config::apis_with(&config, true);
        if moto_only {
            let client = moto_eks_client(&config);
            apis.eks = std::sync::Arc::new(crate::sdk::Eks { client, config });
        }
        let emulator = crate::capability::probe(url);
        let caps = Capabilities { ec2: emulator.clone(), ecs: emulator.clone(), lambda: emulator };
        (apis, caps)
    }

    /// This emulator's data directory (logs included).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

/// moto 4.2.14's EKS answers timestamps (`createdAt`, `modifiedAt`) as RFC 3339 strings where
/// the service (and so the SDK) uses epoch seconds: every answer carrying a cluster or a node
/// group fails to parse. This HTTP client reads each answer whole and rewrites them before the
/// SDK sees it; only the emulator's EKS client uses it.
#[derive(Debug)]
pub struct MotoTimestamps(pub aws_smithy_runtime_api::client::http::SharedHttpClient);

#[derive(Debug)]
struct MotoTimestampsConnector(aws_smithy_runtime_api::client::http::SharedHttpConnector);

impl aws_smithy_runtime_api::client::http::HttpClient for MotoTimestamps {
    fn http_connector(
        &self,
        settings: &aws_smithy_runtime_api::client::http::HttpConnectorSettings,
        components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
    ) -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
        let inner = self.0.http_connector(settings, components);
        aws_smithy_runtime_api::client::http::SharedHttpConnector::new(MotoTimestampsConnector(inner))
    }
}

impl aws_smithy_runtime_api::client::http::HttpConnector for MotoTimestampsConnector {
    fn call(
        &self,
        request: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
    ) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
        use aws_smithy_runtime_api::client::result::ConnectorError;
        let answer = self.0.call(request);
        aws_smithy_runtime_api::client::http::HttpConnectorFuture::new(async move {
            let mut resp = answer.await?;
            let body = aws_smithy_types::byte_stream::ByteStream::new(resp.take_body());
            let bytes = body.collect().await.map_err(|e| ConnectorError::io(Box::new(e)))?.into_bytes();
            let fixed = match std::str::from_utf8(&bytes) {
                Ok(text) => moto_eks_answer(text).into_bytes(),
                Err(_) => bytes.to_vec(),
            };
            resp.headers_mut().insert("content-length", fixed.len().to_string());
            *resp.body_mut() = aws_smithy_types::body::SdkBody::from(fixed);
            Ok(resp)
        })
    }
}

/// moto's EKS answer as the SDK reads it: `"createdAt": "2026-12-06T16:39:27Z"` (and
/// `modifiedAt`) as epoch seconds, `"diskSize": "20"` as a number.
pub fn moto_eks_answer(json: &str) -> String {
    let time = |v: &str| {
        let t = humantime::parse_rfc3339_weak(v).ok()?;
        Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs().to_string())
    };
    let number = |v: &str| (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())).then(|| v.to_string());
    let s = unquote(json, "createdAt", &time);
    let s = unquote(&s, "modifiedAt", &time);
    unquote(&s, "diskSize", &number)
}

/// Every `"key": "value"` whose value `convert` turns into a JSON number, as that number.
fn unquote(json: &str, key: &str, convert: &dyn Fn(&str) -> Option<String>) -> String {
    let pattern = format!("\"{key}\": \"");
    let mut out = String::with_capacity(json.len());
    let mut rest = json;
    while let Some(at) = rest.find(&pattern) {
        let start = at + pattern.len();
        let converted = rest[start..].find('"').and_then(|e| Some((start + e, convert(&rest[start..start + e])?)));
        match converted {
            Some((end, value)) => {
                out.push_str(&rest[..start - 1]);
                out.push_str(&value);
                rest = &rest[end + 1..];
            }
            None => {
                out.push_str(&rest[..start]);
                rest = &rest[start..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// An EKS client for moto: plain HTTP, its answers rewritten as [`MotoTimestamps`] says.
pub fn moto_eks_client(config: &SdkConfig) -> aws_sdk_eks::Client {
    let http = aws_smithy_http_client::Builder::new().build_http();
    aws_sdk_eks::Client::from_conf(aws_sdk_eks::config::Builder::from(config).http_client(MotoTimestamps(http)).build())
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

#[cfg(test)]
mod tests {
    #[test]
    fn motos_eks_timestamps_and_disk_size_become_numbers() {
        let j = r#"{"cluster": {"createdAt": "2027-01-15T08:00:00Z", "n": {"modifiedAt": "2027-01-15T08:00:01Z"}, "x": "createdAt"}}"#;
        assert_eq!(
            super::moto_eks_answer(j),
            r#"{"cluster": {"createdAt": 1800000000, "n": {"modifiedAt": 1800000001}, "x": "createdAt"}}"#
        );
        assert_eq!(super::moto_eks_answer(r#"{"createdAt": 1.5}"#), r#"{"createdAt": 1.5}"#);
        assert_eq!(super::moto_eks_answer(r#"{"diskSize": "20", "d": "x"}"#), r#"{"diskSize": 20, "d": "x"}"#);
        assert_eq!(super::moto_eks_answer(r#"{"diskSize": "big"}"#), r#"{"diskSize": "big"}"#);
    }
}
