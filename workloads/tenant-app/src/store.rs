//! Per-process tenant state, the way real services keep it: an in-memory cache in front of files
//! under a temp directory. The hygiene setting decides whether that state is scoped to the tenant
//! (`scoped`) or shared by key alone (`naive`, the classic application-level leak the probes look
//! for: a cache and temp files keyed without the tenant, never cleaned).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use bytes::Bytes;

/// How carefully per-tenant state is kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Hygiene {
    /// Cache keyed by (tenant, key); files under `<tmp>/tenants/<tenant>/` (mode 0700); purge works.
    #[default]
    Scoped,
    /// Cache keyed by key alone; files at `<tmp>/cache-<key>`, never removed; purge does nothing.
    Naive,
}

impl Hygiene {
    pub fn as_str(self) -> &'static str {
        match self {
            Hygiene::Scoped => "scoped",
            Hygiene::Naive => "naive",
        }
    }
}

/// A failed file operation on the record store.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} {}", path.display())]
pub struct StoreError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl StoreError {
    fn new(action: &'static str, path: &Path, source: io::Error) -> Self {
        StoreError { action, path: path.to_owned(), source }
    }
}

/// What a purge removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Purged {
    pub cache_entries: usize,
    pub dir_removed: bool,
}

/// Records of every tenant this process serves.
#[derive(Debug)]
pub struct Store {
    hygiene: Hygiene,
    tmp_dir: PathBuf,
    cache: Cache,
    /// With `write_seq`, makes temp-file names unique among concurrent writers of one key, also
    /// across processes sharing the directory (a pid alone repeats across pid namespaces).
    write_tag: u64,
    write_seq: AtomicU64,
}

#[derive(Debug)]
enum Cache {
    /// tenant → key → record. Two levels so lookups borrow `&str` without building a key.
    Scoped(RwLock<HashMap<String, HashMap<String, Bytes>>>),
    /// key → record, whoever wrote it.
    Naive(RwLock<HashMap<String, Bytes>>),
}

impl Store {
    /// Opens the store under `tmp_dir`, creating the directory if needed.
    pub fn open(hygiene: Hygiene, tmp_dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(tmp_dir).map_err(|e| StoreError::new("create temp directory", tmp_dir, e))?;
        let cache = match hygiene {
            Hygiene::Scoped => Cache::Scoped(RwLock::default()),
            Hygiene::Naive => Cache::Naive(RwLock::default()),
        };
        Ok(Store {
            hygiene,
            tmp_dir: tmp_dir.to_owned(),
            cache,
            write_tag: rand::random(),
            write_seq: AtomicU64::new(0),
        })
    }

    pub fn hygiene(&self) -> Hygiene {
        self.hygiene
    }

    /// Where the record file for (tenant, key) lives under this hygiene.
    pub fn record_path(&self, tenant: &str, key: &str) -> PathBuf {
        match self.hygiene {
            Hygiene::Scoped => self.tenant_dir(tenant).join(key),
            Hygiene::Naive => self.tmp_dir.join(format!("cache-{key}")),
        }
    }

    /// The directory holding one tenant's files (scoped hygiene).
    pub fn tenant_dir(&self, tenant: &str) -> PathBuf {
        self.tmp_dir.join("tenants").join(tenant)
    }

    /// Writes the record file, then the cache.
    pub fn put(&self, tenant: &str, key: &str, record: Bytes) -> Result<(), StoreError> {
        self.write_file(tenant, key, &record)?;
        self.cache_insert(tenant, key, record);
        Ok(())
    }

    /// Reads from the cache, falling back to the file (and caching what it finds there).
    pub fn get(&self, tenant: &str, key: &str) -> Result<Option<Bytes>, StoreError> {
        if let Some(record) = self.cache_get(tenant, key) {
            return Ok(Some(record));
        }
        let path = self.record_path(tenant, key);
        match fs::read(&path) {
            Ok(data) => {
                let record = Bytes::from(data);
                self.cache_insert(tenant, key, record.clone());
                Ok(Some(record))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::new("read record file", &path, e)),
        }
    }

    /// Forgets everything of `tenant`. Under naive hygiene nothing is tenant-keyed, so nothing
    /// is removed — deliberately, that is the flaw being modelled.
    pub fn purge(&self, tenant: &str) -> Result<Purged, StoreError> {
        let Cache::Scoped(cache) = &self.cache else {
            return Ok(Purged::default());
        };
        let cache_entries =
            cache.write().unwrap_or_else(PoisonError::into_inner).remove(tenant).map_or(0, |keys| keys.len());
        let dir = self.tenant_dir(tenant);
        let dir_removed = match fs::remove_dir_all(&dir) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(StoreError::new("remove tenant directory", &dir, e)),
        };
        Ok(Purged { cache_entries, dir_removed })
    }

    /// The directory the store keeps its files under (`--tmp-dir`).
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp_dir
    }

    /// Appends `line` and a newline to the cached record of (tenant, key) — keyed as this
    /// hygiene keys records, in memory only — dropping the oldest lines beyond `cap` bytes. The
    /// probe agent's `mem` channel keeps its canaries there, as a cache would.
    pub fn cache_append_line(&self, tenant: &str, key: &str, line: &[u8], cap: usize) {
        let append = |old: Option<&Bytes>| {
            let mut value = old.map(|b| b.to_vec()).unwrap_or_default();
            value.extend_from_slice(line);
            value.push(b'\n');
            while value.len() > cap {
                match value.iter().position(|&b| b == b'\n') {
                    Some(end) => drop(value.drain(..=end)),
                    None => value.clear(),
                }
            }
            Bytes::from(value)
        };
        match &self.cache {
            Cache::Scoped(map) => {
                let mut map = map.write().unwrap_or_else(PoisonError::into_inner);
                let keys = map.entry(tenant.to_owned()).or_default();
                let value = append(keys.get(key));
                keys.insert(key.to_owned(), value);
            }
            Cache::Naive(map) => {
                let mut map = map.write().unwrap_or_else(PoisonError::into_inner);
                let value = append(map.get(key));
                map.insert(key.to_owned(), value);
            }
        }
    }

    /// Up to `limit` cached records of every tenant (cheap reference-counted copies), for the
    /// probe agent's `mem` sweep, which models code that can read the whole process's memory.
    pub fn cached_records(&self, limit: usize) -> Vec<Bytes> {
        match &self.cache {
            Cache::Scoped(map) => map
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
                .flat_map(HashMap::values)
                .take(limit)
                .cloned()
                .collect(),
            Cache::Naive(map) => {
                map.read().unwrap_or_else(PoisonError::into_inner).values().take(limit).cloned().collect()
            }
        }
    }

    fn cache_get(&self, tenant: &str, key: &str) -> Option<Bytes> {
        match &self.cache {
            Cache::Scoped(map) => map.read().unwrap_or_else(PoisonError::into_inner).get(tenant)?.get(key).cloned(),
            Cache::Naive(map) => map.read().unwrap_or_else(PoisonError::into_inner).get(key).cloned(),
        }
    }

    fn cache_insert(&self, tenant: &str, key: &str, record: Bytes) {
        match &self.cache {
            Cache::Scoped(map) => {
                let mut map = map.write().unwrap_or_else(PoisonError::into_inner);
                // Allocate the tenant and key strings only the first time they are seen.
                let keys = match map.get_mut(tenant) {
                    Some(keys) => keys,
                    None => map.entry(tenant.to_owned()).or_default(),
                };
                upsert(keys, key, record);
            }
            Cache::Naive(map) => upsert(&mut map.write().unwrap_or_else(PoisonError::into_inner), key, record),
        }
    }

    /// Writes via a temp file and a rename, so a concurrent reader falling back to the file never
    /// sees a torn record.
    fn write_file(&self, tenant: &str, key: &str, record: &[u8]) -> Result<(), StoreError> {
        let path = self.record_path(tenant, key);
        let dir = path.parent().unwrap_or(&self.tmp_dir);
        if self.hygiene == Hygiene::Scoped {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| StoreError::new("create tenant directory", dir, e))?;
        }
        let seq = self.write_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{key}.{:016x}.{seq}.tmp", self.write_tag));
        let mode = match self.hygiene {
            Hygiene::Scoped => 0o600,
            // Default permissions: left-behind cache files readable by anyone, as naive code does.
            Hygiene::Naive => 0o644,
        };
        write_new(&tmp, record, mode).map_err(|e| StoreError::new("write record file", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            StoreError::new("rename record file into", &path, e)
        })
    }
}

fn upsert(map: &mut HashMap<String, Bytes>, key: &str, record: Bytes) {
    match map.get_mut(key) {
        Some(slot) => *slot = record,
        None => {
            map.insert(key.to_owned(), record);
        }
    }
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path)?;
    file.write_all(data)
}
