//! `mem`: process globals and caches. Plant pushes the canary onto a module-level global list,
//! as sloppy code keeps one (a `static` that outlives every request), and appends it to the
//! in-memory record cache under key [`CACHE_KEY`] (keyed as the hygiene setting keys records);
//! sweep scans the list and every cached record of every tenant, as code that can read the
//! process's memory would. Whatever stays in a reused process — a shared instance, a warm Lambda
//! environment — is found.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use super::scan::Found;
use crate::store::Store;

/// Cache key under which plant appends the canary.
pub const CACHE_KEY: &str = "probe-mem";
/// Most canaries the global list keeps (the oldest go first).
pub const MAX_GLOBAL: usize = 10_000;
/// Largest `probe-mem` cache entry (the oldest lines go first).
const MAX_CACHE_ENTRY: usize = 64 * 1024;
/// Most cached records a sweep scans.
const MAX_CACHED_RECORDS: usize = 100_000;

/// The sloppy global.
static GLOBAL: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

/// Keeps the canary in the global list and the cache; returns the list's length.
pub fn plant(store: &Store, tenant: &str, canary: &str) -> usize {
    let len = {
        let mut global = GLOBAL.lock().unwrap_or_else(PoisonError::into_inner);
        if global.len() >= MAX_GLOBAL {
            global.pop_front();
        }
        global.push_back(canary.to_owned());
        global.len()
    };
    store.cache_append_line(tenant, CACHE_KEY, canary.as_bytes(), MAX_CACHE_ENTRY);
    len
}

/// What a sweep looked at.
#[derive(Debug, Clone, Serialize)]
pub struct MemSweep {
    pub global_entries: usize,
    pub cache_records: usize,
}

/// Scans the global list and the whole cache.
pub fn sweep(store: &Store, found: &mut Found) -> MemSweep {
    let global: Vec<String> = GLOBAL.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect();
    for entry in &global {
        found.scan(entry.as_bytes());
    }
    let records = store.cached_records(MAX_CACHED_RECORDS);
    for record in &records {
        found.scan(record);
    }
    MemSweep { global_entries: global.len(), cache_records: records.len() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Hygiene;

    #[test]
    fn plant_then_sweep_finds_it_in_the_global_and_the_cache() {
        let _serial = super::super::test_lock();
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(Hygiene::Scoped, tmp.path()).unwrap();
        let mut before = Found::new();
        sweep(&store, &mut before);
        assert!(before.tokens().is_empty(), "{:?}", before.tokens());

        let canary = "isobench-canary:v1:unit:mem:1";
        plant(&store, "acme", canary);
        plant(&store, "acme", "isobench-canary:v1:unit:mem:2");
        // The cache entry is a record of the planting tenant, like any other.
        let cached = store.get("acme", CACHE_KEY).unwrap().unwrap();
        assert_eq!(&cached[..], b"isobench-canary:v1:unit:mem:1\nisobench-canary:v1:unit:mem:2\n");
        assert_eq!(store.get("globex", CACHE_KEY).unwrap(), None, "scoped cache shared the entry");

        // Another store (a fresh process) has an empty cache: only the global is found there.
        let other = Store::open(Hygiene::Scoped, tmp.path()).unwrap();
        let mut found = Found::new();
        let stats = sweep(&other, &mut found);
        assert_eq!(found.tokens(), [canary, "isobench-canary:v1:unit:mem:2"]);
        assert_eq!(stats.cache_records, 0);
        // The planting store's cache alone also has both.
        let records = store.cached_records(10);
        let mut in_cache = Found::new();
        for record in &records {
            in_cache.scan(record);
        }
        assert_eq!(in_cache.tokens().len(), 2);
    }
}
