//! Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
//! commands on fd 3, replies and events on fd 4, NUL-separated JSON), so a test can load a page,
//! see every request the page itself makes, read the rendered DOM and take a full-page
//! screenshot. The browser's own background traffic is not the page's and is not counted; it is
//! sent to a closed local proxy port and resolves nowhere, so nothing leaves the host either way.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Debian's chromium, installed by `scripts/deps.sh test`. Missing is a skip on a developer's
/// machine and a failure in CI, where the test command must have installed it.
pub fn available() -> bool {
    if Path::new(CHROMIUM).exists() {
        return true;
    }
    let test = isobench_testkit::root::test_name(module_path!());
    isobench_testkit::root::skip(&test, &format!("{CHROMIUM} not installed (scripts/deps.sh test installs it)"));
    false
}

pub struct Browser {
    child: Arc<Mutex<Child>>,
    to: File,
    from: BufReader<File>,
    next_id: u64,
    /// Events read while waiting for replies, in order.
    events: Vec<Value>,
    _profile: tempfile::TempDir,
}

/// What one page load did.
pub struct Load {
    /// URLs of every request the page made (`Network.requestWillBeSent`), the document included.
    pub requests: Vec<String>,
    /// The DOM after load, serialised.
    pub dom: String,
}

/// A close-on-exec pipe whose ends sit at fd 10 or above, clear of 3 and 4: the child's dup2
/// onto 3 and 4 must neither clobber the other end nor be a no-op that keeps close-on-exec.
fn pipe() -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints for pipe2 to fill.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    let high = |fd: RawFd| {
        // SAFETY: fd is an open descriptor we own; the copy replaces it.
        unsafe {
            let moved = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
            assert!(moved >= 10, "fcntl: {}", std::io::Error::last_os_error());
            libc::close(fd);
            moved
        }
    };
    (high(fds[0]), high(fds[1]))
}

impl Browser {
    pub fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let (cmd_r, cmd_w) = pipe(); // we write commands, Chromium reads fd 3
        let (ev_r, ev_w) = pipe(); // Chromium writes fd 4, we read
        let mut cmd = Command::new(CHROMIUM);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
            // Belt and braces: anything that did try to leave goes to a closed port, and no name resolves.
            "--proxy-server=http://127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: between fork and exec only async-signal-safe calls: dup2 onto fds 3 and 4 (which
        // also clears their close-on-exec flag).
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(cmd_r, 3) < 0 || libc::dup2(ev_w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = Arc::new(Mutex::new(cmd.spawn().expect("start chromium")));
        // SAFETY: the child's ends are ours to close now that it has them; the parent's ends are
        // owned by the Files from here on.
        let (to, from) = unsafe {
            libc::close(cmd_r);
            libc::close(ev_w);
            (File::from_raw_fd(cmd_w), File::from_raw_fd(ev_r))
        };
        // A browser that hangs is killed, which closes the pipe and fails the read below.
        let watchdog = Arc::downgrade(&child);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(120));
            if let Some(c) = watchdog.upgrade() {
                let _ = c.lock().unwrap().kill();
            }
        });
        Browser { child, to, from: BufReader::new(from), next_id: 0, events: Vec::new(), _profile: profile }
    }

    fn read(&mut self) -> Value {
        let mut buf = Vec::new();
        let n = self.from.read_until(0, &mut buf).expect("read from chromium");
        assert!(n > 0, "chromium closed the DevTools pipe (crashed or timed out)");
        buf.pop();
        serde_json::from_slice(&buf).expect("DevTools message is JSON")
    }

    /// Sends a command (to the browser, or to a page session) and returns its result.
    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = s.into();
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to chromium");
        loop {
            let m = self.read();
            if m["id"] == id {
                assert!(m.get("error").is_none(), "{method} failed: {}", m["error"]);
                return m["result"].clone();
            }
            self.events.push(m);
        }
    }

    fn wait_event(&mut self, session: &str, method: &str) {
        if self.events.iter().any(|e| e["sessionId"] == session && e["method"] == method) {
            return;
        }
        loop {
            let m = self.read();
            let done = m["sessionId"] == session && m["method"] == method;
            self.events.push(m);
            if done {
                return;
            }
        }
    }

    /// Opens a new tab on `page`, waits for its load event, and returns what it requested and
    /// its DOM. `screenshot` also saves a PNG of the whole page there.
    pub fn load(&mut self, page: &Path, screenshot: Option<&Path>) -> Load {
        let target = self.call(None, "Target.createTarget", json!({ "url": "about:blank" }));
        let attached =
            self.call(None, "Target.attachToTarget", json!({ "targetId": target["targetId"], "flatten": true }));
        let s = attached["sessionId"].as_str().unwrap().to_string();
        self.call(Some(&s), "Network.enable", json!({}));
        self.call(Some(&s), "Page.enable", json!({}));
        self.call(
            Some(&s),
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
        );
        self.call(Some(&s), "Page.navigate", json!({ "url": format!("file://{}", page.display()) }));
        self.wait_event(&s, "Page.loadEventFired");
        let root = self.call(Some(&s), "DOM.getDocument", json!({ "depth": -1 }));
        let dom = self.call(Some(&s), "DOM.getOuterHTML", json!({ "nodeId": root["root"]["nodeId"] }));
        if let Some(path) = screenshot {
            let metrics = self.call(Some(&s), "Page.getLayoutMetrics", json!({}));
            let size = &metrics["cssContentSize"];
            let clip = json!({ "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1 });
            let shot = self.call(
                Some(&s),
                "Page.captureScreenshot",
                json!({ "format": "png", "clip": clip, "captureBeyondViewport": true }),
            );
            let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
            std::fs::write(path, png).unwrap();
        }
        let requests = self
            .events
            .iter()
            .filter(|e| e["sessionId"] == s.as_str() && e["method"] == "Network.requestWillBeSent")
            .map(|e| e["params"]["request"]["url"].as_str().unwrap_or_default().to_string())
            .collect();
        self.call(None, "Target.closeTarget", json!({ "targetId": target["targetId"] }));
        Load { requests, dom: dom["outerHTML"].as_str().unwrap().to_string() }
    }
}

impl Drop for Browser {
    /// Closes the browser the polite way, so it takes its helper processes with it; kills it if
    /// it does not go within five seconds.
    fn drop(&mut self) {
        let _ = self.to.write_all(b"{\"id\":999999,\"method\":\"Browser.close\"}\0");
        let mut c = self.child.lock().unwrap();
        for _ in 0..100 {
            if matches!(c.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}
