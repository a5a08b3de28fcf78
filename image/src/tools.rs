//! Running the host tools, with errors that say which tool and which Debian package.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

/// Every host tool the builder runs, and the Debian package that provides it (the same
/// list as `IMAGE_TOOLS` in the Makefile, which installs the missing ones).
pub const TOOLS: &[(&str, &str)] = &[
    ("apt-get", "apt"),
    ("apt-cache", "apt"),
    ("dpkg-deb", "dpkg"),
    ("depmod", "kmod"),
    ("mksquashfs", "squashfs-tools"),
    ("veritysetup", "cryptsetup-bin"),
    ("objcopy", "binutils"),
    ("aarch64-linux-gnu-objcopy", "binutils-aarch64-linux-gnu"),
    ("mkfs.vfat", "dosfstools"),
    ("mmd", "mtools"),
    ("mcopy", "mtools"),
    ("mkfs.ext4", "e2fsprogs"),
    ("debugfs", "e2fsprogs"),
    ("sgdisk", "gdisk"),
    ("bmaptool", "bmap-tools"),
    ("gzip", "gzip"),
    ("git", "git"),
];

/// The package that provides `tool`.
pub fn package_of(tool: &str) -> &'static str {
    TOOLS
        .iter()
        .find(|(t, _)| *t == tool)
        .map_or("(unknown)", |(_, p)| p)
}

/// Finds `tool` in PATH or the sbin directories (not in a normal user's PATH).
pub fn find(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Fails naming every missing tool and the packages to install.
pub fn require(tools: &[&str]) -> Result<()> {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| find(t).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = missing.iter().map(|t| package_of(t)).collect();
    packages.sort();
    packages.dedup();
    bail!(
        "missing host tools: {} — install the Debian packages: apt-get install {} \
         (`make image` installs them itself)",
        missing.join(", "),
        packages.join(" ")
    )
}

/// A command for `tool` (resolved through [`find`]).
pub fn command(tool: &str) -> Result<Command> {
    let path = find(tool).with_context(|| {
        format!(
            "the tool {tool} is not installed: apt-get install {}",
            package_of(tool)
        )
    })?;
    let mut c = Command::new(path);
    // Fixed locale: tools' messages and sort orders do not depend on the builder's.
    c.env("LC_ALL", "C");
    Ok(c)
}

/// Runs `cmd` and returns its output; a failure quotes the command and its stderr.
pub fn run(mut cmd: Command) -> Result<Output> {
    let shown = show(&cmd);
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let tail: Vec<&str> = stderr
            .lines()
            .chain(stdout.lines())
            .rev()
            .take(12)
            .collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{shown} failed ({}):\n  {}", out.status, tail.join("\n  "));
    }
    Ok(out)
}

fn show(cmd: &Command) -> String {
    let prog = Path::new(cmd.get_program())
        .file_name()
        .map_or_else(
            || cmd.get_program().to_string_lossy(),
            |f| f.to_string_lossy(),
        )
        .into_owned();
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    format!("`{prog} {}`", args.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tools_name_their_package() {
        let e = require(&["sh", "mkfs.nonexistent-gk-tool"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("mkfs.nonexistent-gk-tool"), "{e}");
        assert_eq!(package_of("sgdisk"), "gdisk");
        assert_eq!(package_of("veritysetup"), "cryptsetup-bin");
        let mut c = command("sh").unwrap();
        c.args(["-c", "echo oops >&2; exit 3"]);
        let e = run(c).unwrap_err().to_string();
        assert!(e.contains("`sh -c") && e.contains("oops"), "{e}");
    }
}
