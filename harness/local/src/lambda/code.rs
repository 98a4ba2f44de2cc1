//! Code staging: a function's code, copied once per tier into a directory of the run that every
//! environment of the tier binds read-only at `/var/task`.
//!
//! The code is what Lambda accepts for a custom runtime: an executable `bootstrap` file, a
//! directory holding one, or a zip holding one (at its root). Without `code`, the sample
//! workload (`tenant-app`) is staged as `bootstrap`. A snapshot is taken so the code cannot
//! change under a running tier, and the staging directory lives under
//! `/run/isobench/<run_id>.staged/` (mode 0700, so only root can reach it; environments see
//! their own code through the bind only), which teardown removes and a sweep finds.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::lock::LOCK_DIR;

/// Suffix of a run's staging directory in [`LOCK_DIR`] (a sweep looks for it).
pub const STAGED_SUFFIX: &str = ".staged";
/// The file Lambda runs in a custom runtime.
pub(crate) const BOOTSTRAP: &str = "bootstrap";

/// Where a function's code comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CodeSource<'a> {
    /// The sample workload's executable.
    Workload(&'a Path),
    /// The scenario's `code`: a file, a directory or a zip.
    User(&'a Path),
}

/// Why code could not be staged.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("read the zip {}", path.display())]
    Zip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    #[error("use the code {}: {why}", path.display())]
    Invalid { path: PathBuf, why: String },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StageError + 'a {
    move |source| StageError::Io { op, path: path.to_path_buf(), source }
}

/// The staging directory of run `run_id`.
pub(crate) fn run_dir(run_id: &str) -> PathBuf {
    Path::new(LOCK_DIR).join(format!("{run_id}{STAGED_SUFFIX}"))
}

/// Stages `source` into `<run_dir>/<name>` (replacing what was there) and checks that it holds
/// an executable `bootstrap`. Returns the directory.
pub(crate) fn stage(run_dir: &Path, name: &str, source: CodeSource<'_>) -> Result<PathBuf, StageError> {
    fs::create_dir_all(run_dir).map_err(io_err("create", run_dir))?;
    fs::set_permissions(run_dir, fs::Permissions::from_mode(0o700)).map_err(io_err("restrict", run_dir))?;
    let dir = run_dir.join(name);
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(io_err("remove the old staging directory", &dir))?;
    }
    fs::create_dir(&dir).map_err(io_err("create", &dir))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(io_err("set the mode of", &dir))?;
    let r = match source {
        CodeSource::Workload(exe) => link_or_copy(exe, &dir.join(BOOTSTRAP)),
        CodeSource::User(path) => stage_user(path, &dir),
    };
    let r = r.and_then(|()| check_bootstrap(&dir, source));
    if r.is_err() {
        let _ = fs::remove_dir_all(&dir);
    }
    r.map(|()| dir)
}

fn stage_user(path: &Path, dir: &Path) -> Result<(), StageError> {
    let meta = fs::metadata(path).map_err(io_err("read", path))?;
    if meta.is_dir() {
        return copy_tree(path, dir);
    }
    if is_zip(path)? {
        return extract_zip(path, dir);
    }
    // A single file is the function's bootstrap.
    let to = dir.join(BOOTSTRAP);
    fs::copy(path, &to).map_err(io_err("copy", path))?;
    Ok(())
}

fn is_zip(path: &Path) -> Result<bool, StageError> {
    let mut magic = [0u8; 4];
    let mut f = File::open(path).map_err(io_err("open", path))?;
    let n = io::Read::read(&mut f, &mut magic).map_err(io_err("read", path))?;
    Ok(n == 4 && (magic == *b"PK\x03\x04" || magic == *b"PK\x05\x06"))
}

/// A hard link when `from` is on the same filesystem (no copy of a large binary), else a copy.
fn link_or_copy(from: &Path, to: &Path) -> Result<(), StageError> {
    if fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    fs::copy(from, to).map_err(io_err("copy", from))?;
    Ok(())
}

/// Copies a directory tree, keeping modes and symbolic links (as a zip would hold them).
fn copy_tree(from: &Path, to: &Path) -> Result<(), StageError> {
    for e in fs::read_dir(from).map_err(io_err("list", from))? {
        let e = e.map_err(io_err("list", from))?;
        let src = e.path();
        let dst = to.join(e.file_name());
        let ty = e.file_type().map_err(io_err("read", &src))?;
        if ty.is_symlink() {
            let target = fs::read_link(&src).map_err(io_err("read the link", &src))?;
            std::os::unix::fs::symlink(target, &dst).map_err(io_err("create the link", &dst))?;
        } else if ty.is_dir() {
            fs::create_dir(&dst).map_err(io_err("create", &dst))?;
            let mode = e.metadata().map_err(io_err("read", &src))?.mode() & 0o777;
            copy_tree(&src, &dst)?;
            fs::set_permissions(&dst, fs::Permissions::from_mode(mode)).map_err(io_err("set the mode of", &dst))?;
        } else if ty.is_file() {
            fs::copy(&src, &dst).map_err(io_err("copy", &src))?;
        }
    }
    Ok(())
}

/// Extracts a zip, refusing entries whose path would leave the directory; keeps the unix modes
/// the zip records (files without one get 0644, directories 0755, as Lambda documents) and its
/// symbolic links.
fn extract_zip(path: &Path, dir: &Path) -> Result<(), StageError> {
    let zerr = |source| StageError::Zip { path: path.to_path_buf(), source };
    let f = File::open(path).map_err(io_err("open", path))?;
    let mut zip = zip::ZipArchive::new(io::BufReader::new(f)).map_err(zerr)?;
    let mut dirs = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(zerr)?;
        let Some(rel) = entry.enclosed_name() else {
            return Err(StageError::Invalid {
                path: path.to_path_buf(),
                why: format!("entry `{}` would be extracted outside the code directory", entry.name()),
            });
        };
        let out = dir.join(&rel);
        let mode = entry.unix_mode();
        if entry.is_dir() {
            fs::create_dir_all(&out).map_err(io_err("create", &out))?;
            dirs.push((out, mode.map_or(0o755, |m| m & 0o777)));
            continue;
        }
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent).map_err(io_err("create", parent))?;
        }
        if entry.is_symlink() {
            let mut target = String::new();
            io::Read::read_to_string(&mut entry, &mut target).map_err(io_err("read the link", &out))?;
            std::os::unix::fs::symlink(&target, &out).map_err(io_err("create the link", &out))?;
            continue;
        }
        let mut w = File::create(&out).map_err(io_err("create", &out))?;
        io::copy(&mut entry, &mut w).map_err(io_err("extract", &out))?;
        let mode = mode.map_or(0o644, |m| m & 0o777);
        fs::set_permissions(&out, fs::Permissions::from_mode(mode)).map_err(io_err("set the mode of", &out))?;
    }
    // Directory modes last, so a read-only directory does not stop its own extraction.
    for (d, mode) in dirs.into_iter().rev() {
        fs::set_permissions(&d, fs::Permissions::from_mode(mode)).map_err(io_err("set the mode of", &d))?;
    }
    Ok(())
}

/// The staged code must hold a `bootstrap` that the environment's (unprivileged, non-owner)
/// user can execute: Lambda fails such a function at its first invoke
/// (`Runtime.InvalidEntrypoint`); refusing it at deploy says why sooner.
fn check_bootstrap(dir: &Path, source: CodeSource<'_>) -> Result<(), StageError> {
    let shown = match source {
        CodeSource::Workload(p) | CodeSource::User(p) => p.to_path_buf(),
    };
    let invalid = |why: String| StageError::Invalid { path: shown.clone(), why };
    let b = dir.join(BOOTSTRAP);
    // Follows a symbolic link, as exec would, but only within the code: a link outside it
    // could not be judged from here.
    let meta = match fs::symlink_metadata(&b) {
        Err(_) => {
            return Err(invalid(format!(
                "it holds no `{BOOTSTRAP}` at its root (Lambda runs `{BOOTSTRAP}` in a custom runtime)"
            )));
        }
        Ok(m) if m.file_type().is_symlink() => {
            let target = fs::canonicalize(&b).map_err(|e| invalid(format!("`{BOOTSTRAP}` is a broken link: {e}")))?;
            let root = fs::canonicalize(dir).map_err(io_err("resolve", dir))?;
            if !target.starts_with(&root) {
                return Ok(());
            }
            fs::metadata(&target).map_err(io_err("read", &target))?
        }
        Ok(m) => m,
    };
    if !meta.is_file() {
        return Err(invalid(format!("`{BOOTSTRAP}` is not a regular file")));
    }
    if meta.mode() & 0o005 != 0o005 {
        return Err(invalid(format!(
            "`{BOOTSTRAP}` has mode {:o}: the environment's user must be able to read and execute it (e.g. 0755)",
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Removes a staged directory (or the run's staging directory), idempotently.
pub(crate) fn remove(dir: &Path) -> Result<(), StageError> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(StageError::Io { op: "remove", path: dir.into(), source: e })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("isobench-code-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn script(path: &Path, mode: u32) {
        fs::write(path, "#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_file_becomes_the_bootstrap() {
        let t = tmp("file");
        script(&t.join("my-runtime"), 0o755);
        let d = stage(&t.join("run"), "f", CodeSource::User(&t.join("my-runtime"))).unwrap();
        assert_eq!(fs::metadata(d.join(BOOTSTRAP)).unwrap().mode() & 0o777, 0o755);
        assert_eq!(fs::metadata(t.join("run")).unwrap().mode() & 0o777, 0o700);
        fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn a_directory_needs_an_executable_bootstrap() {
        let t = tmp("dir");
        let code = t.join("code");
        fs::create_dir_all(code.join("lib")).unwrap();
        fs::write(code.join("lib/data.txt"), "x").unwrap();
        script(&code.join(BOOTSTRAP), 0o700);
        let e = stage(&t.join("run"), "f", CodeSource::User(&code)).unwrap_err();
        assert!(e.to_string().contains("mode 700"), "{e}");
        assert!(!t.join("run/f").exists(), "a failed staging leaves nothing");
        fs::set_permissions(code.join(BOOTSTRAP), fs::Permissions::from_mode(0o755)).unwrap();
        let d = stage(&t.join("run"), "f", CodeSource::User(&code)).unwrap();
        assert_eq!(fs::read_to_string(d.join("lib/data.txt")).unwrap(), "x");
        fs::remove_file(code.join(BOOTSTRAP)).unwrap();
        let e = stage(&t.join("run"), "f", CodeSource::User(&code)).unwrap_err();
        assert!(e.to_string().contains("no `bootstrap`"), "{e}");
        fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn a_zip_is_extracted_with_its_modes_and_never_outside() {
        let t = tmp("zip");
        let write_zip = |path: &Path, entries: &[(&str, u32, &str)]| {
            let mut z = zip::ZipWriter::new(File::create(path).unwrap());
            for (name, mode, body) in entries {
                let o = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
                z.start_file(*name, o).unwrap();
                z.write_all(body.as_bytes()).unwrap();
            }
            z.finish().unwrap();
        };
        let good = t.join("good.zip");
        write_zip(&good, &[("bootstrap", 0o755, "#!/bin/sh\n"), ("lib/x.txt", 0o644, "x")]);
        let d = stage(&t.join("run"), "f", CodeSource::User(&good)).unwrap();
        assert_eq!(fs::metadata(d.join(BOOTSTRAP)).unwrap().mode() & 0o777, 0o755);
        assert_eq!(fs::read_to_string(d.join("lib/x.txt")).unwrap(), "x");
        let evil = t.join("evil.zip");
        write_zip(&evil, &[("bootstrap", 0o755, "#!/bin/sh\n"), ("../../escaped", 0o644, "x")]);
        let e = stage(&t.join("run"), "g", CodeSource::User(&evil)).unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");
        assert!(!t.join("escaped").exists() && !t.join("run/escaped").exists());
        fs::remove_dir_all(&t).unwrap();
    }
}
