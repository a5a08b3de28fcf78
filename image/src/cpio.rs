//! A deterministic cpio "newc" writer for the initramfs (the format the kernel unpacks:
//! `Documentation/driver-api/early-userspace/buffer-format.rst`).
//!
//! Entries are written sorted by path, parents before children (parents are added
//! implicitly), with inode numbers counted from 1 in that order, uid/gid 0, one mtime
//! for all, no device numbers: the same inputs always give the same bytes.

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    File(Vec<u8>),
}

/// An archive being assembled; paths are relative (`init`, `lib/modules/…`).
#[derive(Debug, Default)]
pub struct Archive {
    entries: BTreeMap<String, (Kind, u32)>,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;

impl Archive {
    pub fn new() -> Archive {
        Archive::default()
    }

    fn clean(path: &str) -> String {
        path.trim_start_matches('/')
            .trim_end_matches('/')
            .to_string()
    }

    fn parents(&mut self, path: &str) {
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            let parent = &path[..at + i];
            self.entries
                .entry(parent.to_string())
                .or_insert((Kind::Dir, 0o755));
            at += i + 1;
        }
    }

    /// A directory (mode 0755 unless given), with its parents.
    pub fn dir(&mut self, path: &str, mode: u32) {
        let path = Archive::clean(path);
        self.parents(&path);
        self.entries.insert(path, (Kind::Dir, mode & 0o7777));
    }

    /// A regular file, with its parent directories (0755).
    pub fn file(&mut self, path: &str, bytes: Vec<u8>, mode: u32) {
        let path = Archive::clean(path);
        self.parents(&path);
        self.entries
            .insert(path, (Kind::File(bytes), mode & 0o7777));
    }

    /// The archive's bytes, ending with the `TRAILER!!!` entry.
    pub fn to_bytes(&self, mtime: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, (kind, perm))) in self.entries.iter().enumerate() {
            let (mode, nlink, data): (u32, u32, &[u8]) = match kind {
                Kind::Dir => (S_IFDIR | perm, 2, &[]),
                Kind::File(bytes) => (S_IFREG | perm, 1, bytes),
            };
            entry(&mut out, ino as u32 + 1, mode, nlink, mtime, path, data);
        }
        entry(&mut out, 0, 0, 1, 0, "TRAILER!!!", &[]);
        out
    }
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn entry(out: &mut Vec<u8>, ino: u32, mode: u32, nlink: u32, mtime: u32, name: &str, data: &[u8]) {
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        mtime,
        data.len() as u32,
        0, // devmajor
        0, // devminor
        0, // rdevmajor
        0, // rdevminor
        name.len() as u32 + 1,
        0, // check (newc, not crc)
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_of_a_small_archive() {
        let mut a = Archive::new();
        a.file("/init", b"hi".to_vec(), 0o755);
        let bytes = a.to_bytes(0x5f5e1000);
        let expect = concat!(
            "070701",
            "00000001",
            "000081ED",
            "00000000",
            "00000000",
            "00000001",
            "5F5E1000",
            "00000002",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000005",
            "00000000",
            "init\0",
            "\0", // 110 + 5 = 115 → pad to 116
            "hi\0\0",
            "070701",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000001",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "0000000B",
            "00000000",
            "TRAILER!!!\0",
            "\0\0\0", // 110 + 11 = 121 → 124
        );
        assert_eq!(bytes, expect.as_bytes());
        assert_eq!(bytes.len() % 4, 0);
    }

    #[test]
    fn sorted_parents_first_and_deterministic() {
        let build = |order: &[&str]| {
            let mut a = Archive::new();
            for p in order {
                a.file(p, p.as_bytes().to_vec(), 0o644);
            }
            a.dir("dev", 0o755);
            a.dir("bin", 0o755);
            a.to_bytes(1)
        };
        let one = build(&[
            "lib/modules/r/kernel/b.ko",
            "etc/gatekeeper/board.toml",
            "lib-x",
        ]);
        let two = build(&[
            "lib-x",
            "etc/gatekeeper/board.toml",
            "lib/modules/r/kernel/b.ko",
        ]);
        assert_eq!(one, two);
        // Names in order of appearance.
        let text = String::from_utf8_lossy(&one);
        let names = [
            "bin\0",
            "dev\0",
            "etc\0",
            "etc/gatekeeper\0",
            "etc/gatekeeper/board.toml\0",
            "lib\0",
            "lib-x\0",
            "lib/modules\0",
            "lib/modules/r/kernel/b.ko\0",
            "TRAILER!!!\0",
        ];
        let mut at = 0;
        for n in names {
            let i = text[at..]
                .find(n)
                .unwrap_or_else(|| panic!("{n:?} missing or out of order"));
            at += i + n.len();
        }
        // A directory entry: mode 040755, nlink 2, size 0.
        assert!(text.contains("000041ED00000000000000000000000200000001"));
    }
}
