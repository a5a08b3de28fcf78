//! Crash-safe file writes: write a temporary file, fsync it, rename it over the target,
//! fsync the directory. After a power cut the target holds either its old or its new
//! contents; at worst a temporary file is left over (named `.tmp-…`, removed by whoever
//! owns the directory).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The prefix of every temporary file this crate creates.
pub(crate) const TMP_PREFIX: &str = ".tmp-";

/// A point at which a power cut is simulated in tests; nothing in production.
#[inline]
pub(crate) fn step() -> io::Result<()> {
    #[cfg(test)]
    crash::step()?;
    Ok(())
}

/// Whether `e` is a simulated power cut (after which nothing may be cleaned up).
pub(crate) fn is_simulated_cut(e: &io::Error) -> bool {
    #[cfg(test)]
    if e.get_ref()
        .is_some_and(|inner| inner.is::<crash::SimulatedCut>())
    {
        return true;
    }
    let _ = e;
    false
}

/// Makes a directory's entries (a rename, a new file) durable. A file system that cannot
/// fsync a directory (EINVAL: some FAT and network file systems) is not an error: there
/// is nothing more to be done there.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    step()?;
    match File::open(dir)?.sync_all() {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Writes `bytes` to `dir/name` atomically (see the module comment), with `mode`.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = dir.join(format!("{TMP_PREFIX}{name}.{}", std::process::id()));
    let result = write_then_rename(&tmp, &dir.join(name), bytes, mode);
    if result.as_ref().is_err_and(|e| !is_simulated_cut(e)) {
        // Best effort: a left-over temporary file is harmless and removed at next open.
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

fn write_then_rename(tmp: &Path, target: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    step()?;
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(tmp)?;
    step()?;
    // A torn write leaves a partial temporary file, never a partial target.
    let half = bytes.len() / 2;
    file.write_all(&bytes[..half])?;
    step()?;
    file.write_all(&bytes[half..])?;
    step()?;
    file.sync_all()?;
    drop(file);
    step()?;
    fs::rename(tmp, target)
}

/// Writes a new file that must not exist yet (`create_new`), fsyncs it and its
/// directory. On failure the partial file is removed.
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    let result = file.write_all(bytes).and_then(|()| file.sync_all());
    if result.is_err() {
        drop(file);
        let _ = fs::remove_file(path);
        return result;
    }
    sync_dir(&parent(path))
}

/// The directory a path is in (`.` for a bare file name).
pub(crate) fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// See [`crate::write_file_atomic`].
pub(crate) fn write_file_atomic(path: &Path, bytes: &[u8], overwrite: bool) -> io::Result<()> {
    let dir = parent(path);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?
        .to_string_lossy()
        .into_owned();
    if overwrite {
        return write_atomic(&dir, &name, bytes, 0o644);
    }
    let tmp = dir.join(format!("{TMP_PREFIX}{name}.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        match fs::hard_link(&tmp, path) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                // No hard links here (a FAT USB stick): check, then rename.
                if fs::symlink_metadata(path).is_ok() {
                    return Err(io::Error::from(io::ErrorKind::AlreadyExists));
                }
                fs::rename(&tmp, path)
            }
            other => other,
        }
    })();
    let _ = fs::remove_file(&tmp);
    result?;
    sync_dir(&dir)
}

/// Test-only crash simulation: `crash::arm(n)` makes the n-th following step fail as if
/// the machine had lost power right there (nothing after it happens).
#[cfg(test)]
pub(crate) mod crash {
    use std::cell::Cell;

    thread_local! {
        static LEFT: Cell<Option<usize>> = const { Cell::new(None) };
    }

    #[derive(Debug)]
    pub(crate) struct SimulatedCut;

    impl std::fmt::Display for SimulatedCut {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("simulated power cut")
        }
    }

    impl std::error::Error for SimulatedCut {}

    pub(crate) fn arm(steps: usize) {
        LEFT.with(|l| l.set(Some(steps)));
    }

    pub(crate) fn disarm() -> bool {
        LEFT.with(|l| l.replace(None)).is_none()
    }

    pub(crate) fn step() -> std::io::Result<()> {
        LEFT.with(|l| match l.get() {
            Some(0) => {
                l.set(None);
                Err(std::io::Error::other(SimulatedCut))
            }
            Some(n) => {
                l.set(Some(n - 1));
                Ok(())
            }
            None => Ok(()),
        })
    }
}
