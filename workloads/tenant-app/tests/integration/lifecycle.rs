use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use isobench_testkit::process::{KillOnDrop, first_child};
use isobench_testkit::root::{is_root, skip, test_name};
use isobench_testkit::wait;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::util::{BIN, Conn, Server};

#[test]
fn sigterm_finishes_in_flight_requests_and_exits_zero() {
    // Every tenant request stalls 600 ms, so one is surely in flight when SIGTERM lands.
    let mut server = Server::start(&[
        "--fault-stall-rate",
        "1",
        "--fault-stall",
        "600ms",
        "--shutdown-grace",
        "10s",
        "--workers",
        "1",
    ]);
    let mut idle = server.connect();
    assert_eq!(idle.send("GET", "/healthz", None, b"").status, 200);
    let addr = server.addr;
    let in_flight = std::thread::spawn(move || Conn::open(addr).tenant("GET", "/t/acme/records/k", "acme", b""));
    std::thread::sleep(Duration::from_millis(200));
    let signalled = Instant::now();
    server.signal(Signal::SIGTERM);

    let reply = in_flight.join().expect("in-flight request lost");
    assert_eq!(reply.status, 404, "the stalled request was not answered normally");
    let status = server.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{status:?}");
    // The idle keep-alive connection did not hold the exit up until the grace period.
    assert!(signalled.elapsed() < Duration::from_secs(5), "took {:?}", signalled.elapsed());
    assert!(idle.try_send("GET", "/healthz", None, b"").is_err(), "served after shutdown");
    assert!(std::net::TcpStream::connect(addr).is_err(), "still accepting after shutdown");
}

#[test]
fn sigint_exits_zero() {
    let mut server = Server::start(&[]);
    server.signal(Signal::SIGINT);
    assert_eq!(server.wait(Duration::from_secs(5)).code(), Some(0));
}

/// As PID 1 of a pid namespace the kernel drops signals that have no handler; the server must
/// still stop on SIGTERM. Needs root and util-linux `unshare`: skipped when not root (a failure
/// under CI); as root, any failure to start is a failure.
#[test]
fn sigterm_works_as_pid_1_of_a_pid_namespace() {
    if !is_root() {
        skip(&test_name(module_path!()), "needs root to create a pid namespace");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--kill-child", BIN, "--listen", "127.0.0.1:0", "--tmp-dir"]).arg(tmp.path());
    cmd.env("RUST_LOG", "warn").stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut unshare = cmd.spawn().expect("run util-linux `unshare`");
    let mut stdout = BufReader::new(unshare.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let Some(addr) = line.trim_end().strip_prefix("listening on ") else {
        let _ = unshare.kill();
        let status = unshare.wait().unwrap();
        panic!("the server did not start in a pid namespace as root ({status:?}): {line:?}");
    };
    let guard = KillOnDrop(unshare);
    let who = Conn::open(addr.parse().unwrap()).send("GET", "/whoami", None, b"").json();
    assert_eq!(who["pid"], 1, "not PID 1 in its namespace");

    let app = first_child(guard.0.id()).expect("the server's pid outside its namespace");
    kill(Pid::from_raw(app), Signal::SIGTERM).unwrap();
    let mut guard = guard;
    let status = wait::for_exit(&mut guard.0, Duration::from_secs(5)).expect("SIGTERM ignored as PID 1");
    assert_eq!(status.code(), Some(0), "{status:?}");
}
