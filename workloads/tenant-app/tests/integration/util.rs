//! Starting the server (killed on drop), a minimal HTTP/1.1 keep-alive client, a stub HTTP
//! endpoint, canaries. Waiting and ports come from `isobench_testkit`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use isobench_testkit::ports::loopback_listener;
use isobench_testkit::wait;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const BIN: &str = env!("CARGO_BIN_EXE_tenant-app");
const START_TIMEOUT: Duration = Duration::from_secs(10);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A running server; killed and reaped on drop, so a failing test leaves nothing behind.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// The server's `--tmp-dir`, removed on drop.
    pub tmp: tempfile::TempDir,
}

impl Server {
    /// Starts `tenant-app <args>` on `127.0.0.1:0` with a fresh temp dir.
    pub fn start(args: &[&str]) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(args).arg("--listen").arg("127.0.0.1:0").arg("--tmp-dir").arg(tmp.path());
        Server::spawn(cmd, tmp)
    }

    /// Starts a prepared command, which must make the server listen on a loopback port.
    pub fn spawn(mut cmd: Command, tmp: tempfile::TempDir) -> Server {
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).env("RUST_LOG", "warn");
        let mut child = cmd.spawn().expect("spawn tenant-app");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        // Build the guard first so a failed start still kills the child.
        let mut server = Server { child, addr: "0.0.0.0:0".parse().unwrap(), tmp };
        let line = rx.recv_timeout(START_TIMEOUT).expect("no `listening on` line in time");
        let addr = line
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first stdout line {line:?}; exit: {:?}", server.child.try_wait()));
        server.addr = addr.parse().expect("address after `listening on`");
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn connect(&self) -> Conn {
        Conn::open(self.addr)
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid() as i32), signal).unwrap();
    }

    /// Waits for the child to exit on its own.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        wait::for_exit(&mut self.child, timeout).unwrap_or_else(|| panic!("did not exit within {timeout:?}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 connection, reused for every request sent on it.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

/// A parsed response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// The `kind` of a JSON error body.
    pub fn kind(&self) -> String {
        self.json()["kind"].as_str().expect("error body has a kind").to_owned()
    }
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        Conn { reader: BufReader::new(stream) }
    }

    /// Sends a request with `x-tenant-id: <tenant>` when given, and reads the response.
    pub fn send(&mut self, method: &str, path: &str, tenant: Option<&str>, body: &[u8]) -> Reply {
        self.try_send(method, path, tenant, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// A tenant request carrying the matching header.
    pub fn tenant(&mut self, method: &str, path: &str, tenant: &str, body: &[u8]) -> Reply {
        self.send(method, path, Some(tenant), body)
    }

    pub fn try_send(&mut self, method: &str, path: &str, tenant: Option<&str>, body: &[u8]) -> std::io::Result<Reply> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-length: {}\r\n", body.len());
        if let Some(t) = tenant {
            head.push_str(&format!("x-tenant-id: {t}\r\n"));
        }
        head.push_str("\r\n");
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        self.read_reply(method == "HEAD")
    }

    fn read_reply(&mut self, head_only: bool) -> std::io::Result<Reply> {
        let status_line = self.line()?;
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let line = self.line()?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("header line");
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let mut reply = Reply { status, headers, body: Vec::new() };
        let len: usize = reply.header("content-length").map_or(0, |v| v.parse().unwrap());
        if !head_only {
            reply.body.resize(len, 0);
            self.reader.read_exact(&mut reply.body)?;
        }
        Ok(reply)
    }

    fn line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

/// What a [`StubHttp`] answers: `(status, body)` for `(method, path, headers)` (header names
/// lowercase).
pub type StubRoute = dyn Fn(&str, &str, &[(String, String)]) -> (u16, String) + Send + Sync;

/// A tiny HTTP/1.1 server standing in for an endpoint (the ECS credentials endpoint, IMDS):
/// one request per connection, answered by a function (its body in the pseudo-header `#body`),
/// and recorded as `METHOD PATH`.
pub struct StubHttp {
    pub addr: SocketAddr,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl StubHttp {
    pub fn start(route: Box<StubRoute>) -> StubHttp {
        let listener = loopback_listener();
        let addr = listener.local_addr().unwrap();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = std::sync::Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let mut parts = line.split_whitespace();
                let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
                let mut headers = Vec::new();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = header.split_once(':') {
                        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
                    }
                }
                // The body (read so the connection closes cleanly), as the pseudo-header `#body`.
                let len = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok());
                let mut body = vec![0u8; len.unwrap_or(0)];
                let _ = std::io::Read::read_exact(&mut reader, &mut body);
                headers.push(("#body".to_owned(), String::from_utf8_lossy(&body).into_owned()));
                log.lock().unwrap().push(format!("{method} {path}"));
                let (status, body) = route(&method, &path, &headers);
                let reply =
                    format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        StubHttp { addr, requests }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A fresh canary for `tag`, with 64 random bits so runs and tests never collide.
pub fn canary(tag: &str) -> String {
    format!("isobench-canary:v1:itest:{tag}:{:016x}", rand::random::<u64>())
}
