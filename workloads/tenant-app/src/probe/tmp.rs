//! `tmp`: files left in the temp directory. Plant writes a new world-readable file
//! `<tmp>/isobench-probe-<16 hex>` holding the canary, as careless code leaves scratch files;
//! sweep reads every regular file under the temp directory (recursively, never following
//! symlinks, bounded) and greps it. Whatever another tenant, an earlier invocation of a reused
//! Lambda environment or another process sharing the directory left there is found.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use serde::Serialize;

use super::scan::Found;

/// Name prefix of planted files.
pub const FILE_PREFIX: &str = "isobench-probe-";
/// Most files a sweep reads.
pub const MAX_FILES: usize = 10_000;
/// Most bytes read from each file.
pub const MAX_FILE_BYTES: usize = 64 * 1024;
/// Most directory entries a sweep looks at (files, directories and everything else).
const MAX_ENTRIES: usize = 100_000;
/// Deepest directory level descended into below the temp directory.
const MAX_DEPTH: usize = 32;

/// Writes the canary to a new file in `dir`; returns its path.
pub fn plant(dir: &Path, canary: &str) -> io::Result<PathBuf> {
    let path = dir.join(format!("{FILE_PREFIX}{:016x}", rand::random::<u64>()));
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o644).open(&path)?;
    // The umask may have narrowed the mode; careless code's scratch files are world-readable.
    file.set_permissions(Permissions::from_mode(0o644))?;
    file.write_all(canary.as_bytes())?;
    Ok(path)
}

/// What a sweep looked at.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TmpSweep {
    pub dir: String,
    /// Regular files read (up to [`MAX_FILE_BYTES`] each).
    pub files_read: usize,
    /// Files and directories that could not be opened or read.
    pub unreadable: usize,
    /// Symlinks, sockets, FIFOs and devices, which are never opened.
    pub skipped: usize,
    /// A bound ([`MAX_FILES`], entries, depth) stopped the walk early.
    pub truncated: bool,
}

/// Greps every regular file under `dir`.
pub fn sweep(dir: &Path, found: &mut Found) -> TmpSweep {
    let mut stats = TmpSweep { dir: dir.display().to_string(), ..TmpSweep::default() };
    let mut buf = vec![0; MAX_FILE_BYTES];
    let mut stack = vec![(dir.to_owned(), 0usize)];
    let mut entries = 0usize;
    while let Some((current, depth)) = stack.pop() {
        let Ok(listing) = fs::read_dir(&current) else {
            stats.unreadable += 1;
            continue;
        };
        for entry in listing {
            entries += 1;
            if entries > MAX_ENTRIES || stats.files_read >= MAX_FILES {
                stats.truncated = true;
                return stats;
            }
            // `file_type` comes from readdir and does not follow symlinks.
            let Ok((entry, kind)) = entry.and_then(|e| e.file_type().map(|t| (e, t))) else {
                stats.unreadable += 1;
                continue;
            };
            if kind.is_dir() {
                if depth < MAX_DEPTH {
                    stack.push((entry.path(), depth + 1));
                } else {
                    stats.truncated = true;
                }
            } else if kind.is_file() {
                match read_regular(&entry.path(), &mut buf) {
                    Ok(n) => {
                        stats.files_read += 1;
                        found.scan(&buf[..n]);
                    }
                    Err(_) => stats.unreadable += 1,
                }
            } else {
                stats.skipped += 1;
            }
        }
    }
    stats
}

/// Reads the start of a regular file. `O_NOFOLLOW | O_NONBLOCK` and the type check after opening
/// guard against the entry being swapped for a symlink or a FIFO since it was listed.
fn read_regular(path: &Path, buf: &mut [u8]) -> io::Result<usize> {
    let flags = OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    let mut file = OpenOptions::new().read(true).custom_flags(flags.bits()).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    read_prefix(&mut file, buf)
}

/// Reads until `buf` is full or the end of the file.
pub(crate) fn read_prefix(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn plant_then_sweep_finds_only_what_is_there() {
        let _serial = super::super::test_lock();
        let tmp = tempfile::tempdir().unwrap();
        let mut before = Found::new();
        let stats = sweep(tmp.path(), &mut before);
        assert!(before.tokens().is_empty());
        assert_eq!((stats.files_read, stats.truncated), (0, false));

        let canary = "isobench-canary:v1:unit:tmp:1";
        let path = plant(tmp.path(), canary).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(name.len() == FILE_PREFIX.len() + 16 && name.starts_with(FILE_PREFIX), "{name}");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        // Nested files are read too; symlinks, even to a canary file, are not followed.
        fs::create_dir_all(tmp.path().join("tenants/acme")).unwrap();
        fs::write(tmp.path().join("tenants/acme/rec"), "x isobench-canary:v1:unit:tmp:2 y").unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "isobench-canary:v1:unit:tmp:outside").unwrap();
        symlink(outside.path().join("secret"), tmp.path().join("link")).unwrap();
        symlink(outside.path(), tmp.path().join("dirlink")).unwrap();

        let mut found = Found::new();
        let stats = sweep(tmp.path(), &mut found);
        let mut tokens = found.into_tokens();
        tokens.sort();
        assert_eq!(tokens, [canary, "isobench-canary:v1:unit:tmp:2"]);
        assert_eq!((stats.files_read, stats.skipped, stats.unreadable), (2, 2, 0));
    }

    #[test]
    fn sweep_reads_at_most_64_kib_per_file_and_survives_a_missing_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let mut big = vec![b'.'; MAX_FILE_BYTES];
        big.extend_from_slice(b"isobench-canary:v1:beyond");
        fs::write(tmp.path().join("big"), big).unwrap();
        let mut found = Found::new();
        assert_eq!(sweep(tmp.path(), &mut found).files_read, 1);
        assert!(found.tokens().is_empty());
        let stats = sweep(&tmp.path().join("absent"), &mut found);
        assert_eq!((stats.files_read, stats.unreadable), (0, 1));
    }
}
