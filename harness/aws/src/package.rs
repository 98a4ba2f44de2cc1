//! The workload for AWS: `tenant-app` built for the target architecture, zipped as `bootstrap`
//! for Lambda's `provided.al2023` runtime and uploaded as is for instances and tasks.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use isobench_core::scenario::aws::Architecture;

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(
        "the Rust target `{target}` is not installed, so the workload cannot be built for AWS; install it with \
         `rustup target add {target}` (installed here: {installed}), or set `rust_target` in the scenario's [aws] \
         section to one that is"
    )]
    MissingTarget { target: String, installed: String },
    #[error("`cargo build -p tenant-app --target {target}` failed (exit {code:?}); its output is above")]
    Build { target: String, code: Option<i32> },
    #[error("failed to run {what}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read the workload binary {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the workload binary {path} is {found}, but [aws] architecture is {wanted}: it would not run there; build it \
         for {target} (or give one with --workload-binary), or set [aws] architecture = \"{found}\""
    )]
    Architecture { path: PathBuf, found: String, wanted: String, target: String },
    #[error("failed to zip the workload")]
    Zip(#[from] zip::result::ZipError),
}

/// The installed Rust targets (`rustup target list --installed`); `None` without rustup.
pub fn installed_targets() -> Option<Vec<String>> {
    let out = Command::new("rustup").args(["target", "list", "--installed"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect())
}

/// Checks that `target` can be built for, with the `rustup target add` command when not.
pub fn check_target(target: &str) -> Result<(), PackageError> {
    match installed_targets() {
        Some(list) if !list.iter().any(|t| t == target) => {
            Err(PackageError::MissingTarget { target: target.to_string(), installed: list.join(", ") })
        }
        // Without rustup (a distribution's Rust), let cargo say what is missing.
        _ => Ok(()),
    }
}

/// Builds `tenant-app` in release mode for `target` from the workspace at `workspace`, and
/// returns the binary's path.
pub fn build_workload(workspace: &Path, target: &str, target_dir: &Path) -> Result<PathBuf, PackageError> {
    check_target(target)?;
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(workspace)
        .args(["build", "--release", "-p", "tenant-app", "--bin", "tenant-app", "--target", target])
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .map_err(|source| PackageError::Spawn { what: "cargo".into(), source })?;
    if !status.success() {
        return Err(PackageError::Build { target: target.to_string(), code: status.code() });
    }
    Ok(target_dir.join(target).join("release").join("tenant-app"))
}

pub fn read_binary(path: &Path) -> Result<Vec<u8>, PackageError> {
    std::fs::read(path).map_err(|source| PackageError::Read { path: path.to_path_buf(), source })
}

/// The architecture an ELF executable is for (`e_machine`): `x86_64`, `arm64`, or what else it
/// says; `None` when `bytes` is not a little-endian ELF file.
pub fn elf_architecture(bytes: &[u8]) -> Option<String> {
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" || bytes[5] != 1 {
        return None;
    }
    Some(match u16::from_le_bytes([bytes[18], bytes[19]]) {
        62 => "x86_64".into(),
        183 => "arm64".into(),
        other => format!("ELF machine {other}"),
    })
}

/// Refuses a workload binary built for another architecture than the run's (an x86_64 binary
/// deployed to arm64 Lambda or Fargate fails to start). A file that is not ELF is left to fail
/// where it runs: tests package stand-in bytes.
pub fn check_architecture(path: &Path, bytes: &[u8], wanted: Architecture) -> Result<(), PackageError> {
    match elf_architecture(bytes) {
        Some(found) if found != wanted.as_str() => Err(PackageError::Architecture {
            path: path.to_path_buf(),
            found,
            wanted: wanted.as_str().into(),
            target: wanted.default_rust_target().into(),
        }),
        _ => Ok(()),
    }
}

/// A Lambda deployment package: the binary as an executable `bootstrap` at the zip's root.
pub fn lambda_zip(binary: &[u8]) -> Result<Vec<u8>, PackageError> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755);
    zip.start_file("bootstrap", options)?;
    zip.write_all(binary).map_err(zip::result::ZipError::Io)?;
    Ok(zip.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn the_zip_holds_an_executable_bootstrap() {
        let bytes = lambda_zip(b"\x7fELF fake").unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(archive.len(), 1);
        let mut f = archive.by_name("bootstrap").unwrap();
        assert_eq!(f.unix_mode().unwrap() & 0o777, 0o755);
        let mut body = Vec::new();
        f.read_to_end(&mut body).unwrap();
        assert_eq!(body, b"\x7fELF fake");
    }

    #[test]
    fn a_binary_of_the_other_architecture_is_refused() {
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[5] = 1;
        elf[18..20].copy_from_slice(&62u16.to_le_bytes());
        let p = Path::new("/tmp/tenant-app");
        assert_eq!(elf_architecture(&elf).as_deref(), Some("x86_64"));
        check_architecture(p, &elf, Architecture::X86_64).unwrap();
        let e = check_architecture(p, &elf, Architecture::Arm64).unwrap_err().to_string();
        assert!(e.contains("is x86_64, but [aws] architecture is arm64"), "{e}");
        assert!(e.contains("aarch64-unknown-linux-musl"), "{e}");
        elf[18..20].copy_from_slice(&183u16.to_le_bytes());
        check_architecture(p, &elf, Architecture::Arm64).unwrap();
        // This test's own executable is an ELF file of the host's architecture.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let host = if cfg!(target_arch = "aarch64") { "arm64" } else { "x86_64" };
        assert_eq!(elf_architecture(&me).as_deref(), Some(host));
        assert_eq!(elf_architecture(b"elf"), None);
    }

    #[test]
    fn a_missing_target_names_the_rustup_command() {
        if installed_targets().is_none() {
            isobench_testkit::root::skip(&isobench_testkit::root::test_name(module_path!()), "no rustup here");
            return;
        }
        let e = check_target("riscv64gc-unknown-none-elf-not-a-target").unwrap_err().to_string();
        assert!(e.contains("rustup target add riscv64gc-unknown-none-elf-not-a-target"), "{e}");
    }
}
