//! Ctrl-C and SIGTERM set a flag; the run checks it, stops traffic and always tears down.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub fn install() -> std::io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(sig, Arc::clone(&flag))?;
    }
    Ok(flag)
}
