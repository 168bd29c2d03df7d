//! File-system helpers: writes that never leave a half-written file where a good one is expected.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A sibling temporary path unique to this process and call (threads of one process may
/// write the same target at once).
/// An error for a path that does not exist, as an `io::Error` of kind `NotFound` with `message`
/// (the one line shown), so that callers can tell it from other errors (Python raises
/// `FileNotFoundError` for it).
pub fn not_found(message: String) -> anyhow::Error {
    anyhow::Error::new(std::io::Error::new(std::io::ErrorKind::NotFound, message))
}

pub fn temp_sibling(path: &Path) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// Writes `bytes` to a temporary sibling, syncs it, then renames it over `path`. If anything
/// fails (disk full), the old file is untouched and the temporary one removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("{}: cannot create directory", parent.display()))?;
    }
    let tmp = temp_sibling(path);
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        if let Some(e) = injected_disk_full(path) {
            f.write_all(&bytes[..bytes.len() / 2])?;
            return Err(e);
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("{}: cannot write", path.display()));
    }
    Ok(())
}

/// Fault injection for tests: with `FAIRNC_DISK_FULL_UNDER=DIR`, every atomic write below DIR
/// fails half-way with "no space left on device", as on a full disk.
fn injected_disk_full(path: &Path) -> Option<std::io::Error> {
    let dir = std::env::var_os("FAIRNC_DISK_FULL_UNDER")?;
    path.starts_with(Path::new(&dir)).then(|| std::io::Error::from_raw_os_error(libc::ENOSPC))
}
