use isobench_core::BackendError;
use isobench_testkit::leftovers;
use isobench_testkit::root::cannot_isolate;

use crate::util::*;

/// Capabilities and ids are per thread in Linux: a thread that drops to uid 65534 (by the raw
/// syscall, which unlike the C library's wrapper changes only the calling thread) sees the
/// backend refuse to start, with a reason that names root.
#[test]
fn without_privileges_the_backend_says_so_up_front() {
    if cannot_isolate().is_some() {
        // Not root: this process itself is the unprivileged case.
        let e = isobench_local::LocalBackend::new(config(&run_id("unpriv"))).err().expect("refused");
        assert!(matches!(e, BackendError::Unavailable { .. }) && e.to_string().contains("root"), "{e}");
        return;
    }
    let run = run_id("unpriv");
    let cfg = config(&run);
    let msg = std::thread::spawn(move || {
        // SAFETY: raw setresgid/setresuid change only this thread's credentials; the thread
        // does nothing else privileged and ends right after.
        unsafe {
            assert_eq!(libc::syscall(libc::SYS_setresgid, 65534, 65534, 65534), 0);
            assert_eq!(libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534), 0);
        }
        match isobench_local::LocalBackend::new(cfg) {
            Ok(_) => panic!("the backend started without privileges"),
            Err(e @ BackendError::Unavailable { .. }) => e.to_string(),
            Err(e) => panic!("expected Unavailable, got {e}"),
        }
    })
    .join()
    .unwrap();
    assert!(msg.contains("needs root") && msg.contains("sudo") && msg.contains("uid 65534"), "{msg}");
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new(), "something was created before the check");
}
