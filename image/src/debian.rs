//! Debian packages: the lock file that pins them, the download cache, unpacking.
//!
//! `image/debian.lock` lists every package an image is made from by exact name, version,
//! architecture and the SHA-256 of the `.deb`. Builds download exactly those
//! (`apt-get download NAME:ARCH=VERSION`, no root needed) into `target/image-cache/debs/`,
//! check the hash, and unpack with `dpkg-deb -x`. A board names the kernel by Debian's
//! meta package (`linux-image-amd64`); the lock records which concrete package
//! (`linux-image-6.1.0-57-amd64`) stood for it when `gk-image lock` ran.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::tools;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    /// Debian architecture (`amd64`, `arm64`, or `all`).
    pub arch: String,
    pub sha256: String,
    /// The meta package this one was resolved from, if any.
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub for_package: Option<String>,
}

impl LockedPackage {
    fn file_stem(&self) -> String {
        format!(
            "{}_{}_{}",
            self.name,
            self.version.replace(':', "%3a"),
            self.arch
        )
    }
    /// `NAME:ARCH=VERSION` (`NAME=VERSION` for `all`).
    fn apt_spec(&self) -> String {
        if self.arch == "all" {
            format!("{}={}", self.name, self.version)
        } else {
            format!("{}:{}={}", self.name, self.arch, self.version)
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    #[serde(rename = "package", default)]
    pub packages: Vec<LockedPackage>,
}

const LOCK_HEADER: &str = "\
# The Debian packages firmware images are made from, pinned by version and SHA-256 of
# the .deb. Written by `gk-image lock` (`make image-lock`); builds download exactly these.
# `for` names the meta package (as written in bsp/) a concrete package stands for.
";

impl Lock {
    pub fn load(path: &Path) -> Result<Lock> {
        let text = fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read {} (run `make image-lock` to write it)",
                path.display()
            )
        })?;
        toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map_or(1, |s| text[..s.start].matches('\n').count() + 1);
            anyhow::anyhow!("{}:{line}: {}", path.display(), e.message().trim_end())
        })
    }

    pub fn to_text(&self) -> String {
        let mut text = String::from(LOCK_HEADER);
        for p in &self.packages {
            text.push('\n');
            text.push_str(
                &toml::to_string(&Lock {
                    packages: vec![p.clone()],
                })
                .unwrap_or_default(),
            );
        }
        text
    }

    /// The package `name` (or the package that stands for the meta package `name`) for
    /// Debian architecture `arch` (or `all`).
    pub fn find(&self, name: &str, arch: &str) -> Result<&LockedPackage> {
        self.packages
            .iter()
            .find(|p| {
                (p.name == name || p.for_package.as_deref() == Some(name))
                    && (p.arch == arch || p.arch == "all")
            })
            .with_context(|| {
                format!(
                    "image/debian.lock pins no package {name} for {arch}: run `make image-lock` \
                     to add it"
                )
            })
    }
}

/// The first stanza of `apt-cache show --no-all-versions`: the candidate.
#[derive(Debug, Default, PartialEq, Eq)]
struct Candidate {
    package: String,
    version: String,
    arch: String,
    depends: String,
    sha256: String,
}

fn parse_show(text: &str) -> Candidate {
    let mut c = Candidate::default();
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(": ") {
            let v = v.trim().to_string();
            match k {
                "Package" => c.package = v,
                "Version" => c.version = v,
                "Architecture" => c.arch = v,
                "Depends" => c.depends = v,
                "SHA256" => c.sha256 = v,
                _ => {}
            }
        }
    }
    c
}

fn show(spec: &str) -> Result<Candidate> {
    let mut cmd = tools::command("apt-cache")?;
    cmd.args(["show", "--no-all-versions", spec]);
    let out = tools::run(cmd).with_context(|| {
        format!("apt knows no package {spec}; is `apt-get update` done (and `dpkg --add-architecture arm64` for arm64)?")
    })?;
    let c = parse_show(&String::from_utf8_lossy(&out.stdout));
    if c.version.is_empty() || c.sha256.is_empty() {
        bail!("apt-cache show {spec}: no candidate version with a SHA256");
    }
    Ok(c)
}

/// A wanted package for `gk-image lock`: a name and Debian architecture; `meta` when
/// the name is a kernel meta package to resolve through its Depends.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Wanted {
    pub name: String,
    pub arch: String,
    pub meta: bool,
}

/// Resolves every wanted package to apt's candidate, downloads it into the cache and
/// checks its SHA-256 against apt's index.
pub fn make_lock(wanted: &[Wanted], cache: &Cache) -> Result<Lock> {
    let mut lock = Lock::default();
    for w in wanted {
        let spec = format!("{}:{}", w.name, w.arch);
        let mut c = show(&spec)?;
        let mut for_package = None;
        if w.meta {
            let concrete = c
                .depends
                .split(',')
                .map(|d| d.trim().split([' ', '|']).next().unwrap_or(""))
                .find(|d| d.starts_with("linux-image-"))
                .with_context(|| {
                    format!("{spec}: no linux-image-* in its Depends ({})", c.depends)
                })?
                .to_string();
            c = show(&format!("{concrete}:{}", w.arch))?;
            for_package = Some(w.name.clone());
        }
        let p = LockedPackage {
            name: c.package.clone(),
            version: c.version.clone(),
            arch: c.arch.clone(),
            sha256: c.sha256.clone(),
            for_package,
        };
        if lock
            .packages
            .iter()
            .any(|q| q.name == p.name && q.arch == p.arch)
        {
            continue;
        }
        cache.deb(&p)?;
        eprintln!("  locked {} {} {}", p.name, p.version, p.arch);
        lock.packages.push(p);
    }
    Ok(lock)
}

/// `target/image-cache/`: downloaded `.deb`s and their unpacked trees.
#[derive(Debug)]
pub struct Cache {
    pub dir: PathBuf,
}

impl Cache {
    /// The `.deb`, downloaded when absent or not matching its hash.
    pub fn deb(&self, p: &LockedPackage) -> Result<PathBuf> {
        let debs = self.dir.join("debs");
        let path = debs.join(format!("{}.deb", p.file_stem()));
        if path.is_file() && sha256_file(&path)? == p.sha256 {
            return Ok(path);
        }
        fs::create_dir_all(&debs).with_context(|| format!("cannot create {}", debs.display()))?;
        let tmp = self.dir.join(format!("download-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp)?;
        let mut cmd = tools::command("apt-get")?;
        cmd.args(["download", "-q", &p.apt_spec()])
            .current_dir(&tmp);
        let got = tools::run(cmd).with_context(|| {
            format!(
                "cannot download {} (the mirror may no longer carry this version: run \
                 `make image-lock` to pin the current one, or `apt-get update`)",
                p.apt_spec()
            )
        });
        let result = got.and_then(|_| {
            let file = fs::read_dir(&tmp)?
                .flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|e| e == "deb"))
                .context("apt-get download wrote no .deb")?;
            let sum = sha256_file(&file)?;
            if sum != p.sha256 {
                bail!(
                    "{}: SHA-256 {sum} does not match the lock's {} (refusing it)",
                    p.apt_spec(),
                    p.sha256
                );
            }
            fs::rename(&file, &path)?;
            Ok(())
        });
        let _ = fs::remove_dir_all(&tmp);
        result?;
        Ok(path)
    }

    /// The package unpacked (`dpkg-deb -x`) under `unpacked/`, once.
    pub fn unpacked(&self, p: &LockedPackage) -> Result<PathBuf> {
        let dir = self.dir.join("unpacked").join(p.file_stem());
        let stamp = dir.join(".gk-unpacked");
        if stamp.is_file() && fs::read_to_string(&stamp)?.trim() == p.sha256 {
            return Ok(dir);
        }
        let deb = self.deb(p)?;
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let mut cmd = tools::command("dpkg-deb")?;
        cmd.arg("-x").arg(&deb).arg(&dir);
        tools::run(cmd)?;
        fs::write(&stamp, &p.sha256)?;
        Ok(dir)
    }
}

pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(gk_bundle::hex(&h.finalize()))
}

/// An unpacked kernel package: its release, image and modules.
#[derive(Debug)]
pub struct Kernel {
    pub root: PathBuf,
    pub release: String,
    pub vmlinuz: PathBuf,
}

impl Kernel {
    /// Finds `boot/vmlinuz-<release>` and runs `depmod -b` once for `modules.dep`.
    pub fn open(root: &Path) -> Result<Kernel> {
        let boot = root.join("boot");
        let vmlinuz = fs::read_dir(&boot)
            .with_context(|| {
                format!(
                    "{}: no boot/ (is this a linux-image package?)",
                    root.display()
                )
            })?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
            })
            .with_context(|| format!("{}: no vmlinuz-*", boot.display()))?;
        let release = vmlinuz.file_name().unwrap_or_default().to_string_lossy()["vmlinuz-".len()..]
            .to_string();
        let k = Kernel {
            root: root.to_path_buf(),
            release,
            vmlinuz,
        };
        if !k.modules_dir().join("modules.dep").is_file() {
            let mut cmd = tools::command("depmod")?;
            cmd.arg("-b").arg(root).arg(&k.release);
            tools::run(cmd)?;
        }
        Ok(k)
    }

    pub fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.release)
    }

    /// Device trees: `usr/lib/linux-image-<release>/`.
    pub fn dtb_dir(&self) -> PathBuf {
        self.root
            .join("usr/lib")
            .join(format!("linux-image-{}", self.release))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_round_trip_and_lookup() {
        let lock = Lock {
            packages: vec![
                LockedPackage {
                    name: "linux-image-6.1.0-57-amd64".into(),
                    version: "6.1.192-3".into(),
                    arch: "amd64".into(),
                    sha256: "ab".repeat(32),
                    for_package: Some("linux-image-amd64".into()),
                },
                LockedPackage {
                    name: "syslinux-common".into(),
                    version: "3:6.04~git20190206.bf6db5b4+dfsg1-3".into(),
                    arch: "all".into(),
                    sha256: "cd".repeat(32),
                    for_package: None,
                },
            ],
        };
        let text = lock.to_text();
        let back: Lock = toml::from_str(&text).unwrap();
        assert_eq!(back.packages, lock.packages);
        assert_eq!(
            back.find("linux-image-amd64", "amd64").unwrap().name,
            "linux-image-6.1.0-57-amd64"
        );
        assert!(back
            .find("linux-image-amd64", "arm64")
            .unwrap_err()
            .to_string()
            .contains("make image-lock"));
        assert_eq!(
            back.find("syslinux-common", "amd64").unwrap().apt_spec(),
            "syslinux-common=3:6.04~git20190206.bf6db5b4+dfsg1-3"
        );
        assert_eq!(
            back.packages[1].file_stem(),
            "syslinux-common_3%3a6.04~git20190206.bf6db5b4+dfsg1-3_all"
        );
        assert_eq!(
            back.packages[0].apt_spec(),
            "linux-image-6.1.0-57-amd64:amd64=6.1.192-3"
        );
        assert!(toml::from_str::<Lock>("[[package]]\nname = \"x\"\nversion = \"1\"\narch = \"all\"\nsha256 = \"\"\nextra = 1\n").is_err());
    }

    #[test]
    fn apt_cache_show_stanza() {
        let text = "Package: linux-image-amd64\nSource: linux-signed-amd64 (6.1.192+3)\nVersion: 6.1.192-3\nArchitecture: amd64\nDepends: linux-image-6.1.0-57-amd64 (= 6.1.192-3)\nSHA256: 00ff\n\nPackage: other\nVersion: 9\n";
        let c = parse_show(text);
        assert_eq!(c.package, "linux-image-amd64");
        assert_eq!(c.version, "6.1.192-3");
        assert_eq!(c.depends, "linux-image-6.1.0-57-amd64 (= 6.1.192-3)");
        assert_eq!(c.sha256, "00ff");
    }
}
