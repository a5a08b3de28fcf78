//! Boot counting and the A/B slots, as names and file contents (no I/O here).
//!
//! UEFI boards: systemd-boot counts tries in the UKI's file name,
//! `/EFI/Linux/gatekeeper-<N>-<slot>+<left>[-<done>].efi`, renaming the file before it
//! boots it (`+3` → `+2-1`). An update installs `gatekeeper-<N+1>-<slot>+3.efi`; on READY
//! the init renames the running slot's counted entry to `gatekeeper-<N>-<slot>.efi`,
//! which systemd-boot then boots for good.
//!
//! BIOS boards (syslinux cannot write): the init counts. `/gk/tries` on the ESP holds
//! `<slot> <tries-left>`; stage 1 decrements it on every boot of that slot, and when it
//! finds 0 it points syslinux's `DEFAULT` back at the other slot and reboots. READY
//! removes the file.

/// The tries an update gives a new slot.
pub const TRIES: u32 = 3;

/// The other slot.
pub fn other(slot: char) -> char {
    if slot == 'a' {
        'b'
    } else {
        'a'
    }
}

/// One unified kernel image on the ESP, by its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uki {
    /// The install counter.
    pub n: u64,
    pub slot: char,
    /// `(left, done)` while counted; `None` once marked good.
    pub tries: Option<(u32, u32)>,
}

impl Uki {
    /// Parses `gatekeeper-<N>-<slot>[+<left>[-<done>]].efi`; anything else is not ours.
    pub fn parse(name: &str) -> Option<Uki> {
        let stem = name.strip_prefix("gatekeeper-")?.strip_suffix(".efi")?;
        let (base, counter) = match stem.split_once('+') {
            Some((b, c)) => (b, Some(c)),
            None => (stem, None),
        };
        let (n, slot) = base.split_once('-')?;
        let n: u64 = digits(n)?;
        let slot = match slot {
            "a" => 'a',
            "b" => 'b',
            _ => return None,
        };
        let tries = match counter {
            None => None,
            Some(c) => {
                let (left, done) = match c.split_once('-') {
                    Some((l, d)) => (digits(l)?, digits(d)?),
                    None => (digits(c)?, 0),
                };
                Some((left, done))
            }
        };
        Some(Uki { n, slot, tries })
    }

    /// The name once the boot is good: the counter dropped.
    pub fn good_name(&self) -> String {
        format!("gatekeeper-{}-{}.efi", self.n, self.slot)
    }
}

fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The renames that mark the running slot good: every counted entry of `slot`, to its
/// good name (normally exactly one). `names` are the files in `/EFI/Linux`.
pub fn mark_good_renames(names: &[String], slot: char) -> Vec<(String, String)> {
    names
        .iter()
        .filter_map(|name| {
            let uki = Uki::parse(name)?;
            (uki.slot == slot && uki.tries.is_some()).then(|| (name.clone(), uki.good_name()))
        })
        .collect()
}

/// The UKIs that boot `slot`: removed before an update overwrites that slot, so that
/// nothing boots a half-written root.
pub fn ukis_of_slot(names: &[String], slot: char) -> Vec<String> {
    names
        .iter()
        .filter(|n| Uki::parse(n).is_some_and(|u| u.slot == slot))
        .cloned()
        .collect()
}

/// The name an update installs for `slot`: one above the highest install counter on
/// the ESP, with [`TRIES`] tries.
pub fn next_install_name(names: &[String], slot: char) -> String {
    let n = names
        .iter()
        .filter_map(|n| Uki::parse(n))
        .map(|u| u.n)
        .max()
        .unwrap_or(0);
    format!("gatekeeper-{}-{slot}+{TRIES}.efi", n + 1)
}

/// The contents of `/gk/tries`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tries {
    pub slot: char,
    pub left: u32,
}

impl Tries {
    /// Parses `<slot> <left>` (one line, trailing newline optional).
    pub fn parse(text: &str) -> Option<Tries> {
        let mut w = text.split_whitespace();
        let slot = match w.next()? {
            "a" => 'a',
            "b" => 'b',
            _ => return None,
        };
        let left = digits(w.next()?)?;
        w.next().is_none().then_some(Tries { slot, left })
    }

    pub fn render(&self) -> String {
        format!("{} {}\n", self.slot, self.left)
    }
}

/// What stage 1 does on a BIOS board about `/gk/tries`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BiosStep {
    /// No trial in progress (or a stale file of the other slot, removed).
    Nothing { remove_stale: bool },
    /// A trial boot of the running slot: write this back and go on.
    Count(Tries),
    /// No tries left: point DEFAULT at this slot, remove the file, reboot.
    FallBack(char),
}

/// Decides the BIOS boot-count step. `tries` is the file's content (`None` if absent),
/// `running` the slot that stage 1 found verified. An unreadable file counts as no
/// tries left, so that a corrupt counter can only lead back to the known-good slot.
pub fn bios_step(tries: Option<Result<Tries, ()>>, running: char) -> BiosStep {
    match tries {
        None => BiosStep::Nothing {
            remove_stale: false,
        },
        Some(Err(())) => BiosStep::FallBack(other(running)),
        Some(Ok(t)) if t.slot != running => BiosStep::Nothing { remove_stale: true },
        Some(Ok(t)) if t.left == 0 => BiosStep::FallBack(other(t.slot)),
        Some(Ok(t)) => BiosStep::Count(Tries {
            slot: t.slot,
            left: t.left - 1,
        }),
    }
}

/// `syslinux.cfg` with `DEFAULT` set to `slot` (added at the top if missing).
pub fn syslinux_set_default(cfg: &str, slot: char) -> String {
    let mut found = false;
    let mut out: Vec<String> = cfg
        .lines()
        .map(|l| {
            if keyword(l).as_deref() == Some("default") {
                found = true;
                format!("DEFAULT {slot}")
            } else {
                l.to_string()
            }
        })
        .collect();
    if !found {
        out.insert(0, format!("DEFAULT {slot}"));
    }
    out.join("\n") + "\n"
}

/// The slot `DEFAULT` names, if any.
#[cfg(test)]
pub fn syslinux_default(cfg: &str) -> Option<char> {
    cfg.lines().find_map(|l| {
        if keyword(l).as_deref() != Some("default") {
            return None;
        }
        match l.split_whitespace().nth(1)? {
            "a" => Some('a'),
            "b" => Some('b'),
            _ => None,
        }
    })
}

/// `syslinux.cfg` with `LABEL <slot>` booting `/gk/<slot>/vmlinuz` and
/// `/gk/<slot>/initrd.img` with `append` (the block replaced or added at the end).
pub fn syslinux_set_label(cfg: &str, slot: char, append: &str) -> String {
    let block = [
        format!("LABEL {slot}"),
        format!("  LINUX /gk/{slot}/vmlinuz"),
        format!("  INITRD /gk/{slot}/initrd.img"),
        format!("  APPEND {}", append.trim()),
    ];
    let mut out: Vec<String> = Vec::new();
    let mut in_block = false;
    let mut replaced = false;
    for l in cfg.lines() {
        if keyword(l).as_deref() == Some("label") {
            in_block = l.split_whitespace().nth(1) == Some(slot.encode_utf8(&mut [0; 4]));
            if in_block {
                out.extend(block.iter().cloned());
                replaced = true;
                continue;
            }
        }
        if !in_block {
            out.push(l.to_string());
        }
    }
    if !replaced {
        out.extend(block.iter().cloned());
    }
    out.join("\n") + "\n"
}

fn keyword(line: &str) -> Option<String> {
    line.split_whitespace().next().map(str::to_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn uki_names_parse_and_lose_their_counter_when_good() {
        assert_eq!(
            Uki::parse("gatekeeper-2-b+2-1.efi"),
            Some(Uki {
                n: 2,
                slot: 'b',
                tries: Some((2, 1))
            })
        );
        assert_eq!(
            Uki::parse("gatekeeper-12-a+3.efi").map(|u| u.tries),
            Some(Some((3, 0)))
        );
        assert_eq!(
            Uki::parse("gatekeeper-1-a.efi").map(|u| u.tries),
            Some(None)
        );
        for bad in [
            "gatekeeper-1-c.efi",
            "gatekeeper--a.efi",
            "gatekeeper-1-a+.efi",
            "gatekeeper-1-a+x.efi",
            "gatekeeper-1-a.conf",
            "other-1-a.efi",
            "gatekeeper-1-a+1-.efi",
        ] {
            assert_eq!(Uki::parse(bad), None, "{bad}");
        }
        assert_eq!(
            Uki::parse("gatekeeper-7-b+0-3.efi")
                .map(|u| u.good_name())
                .as_deref(),
            Some("gatekeeper-7-b.efi")
        );
    }

    #[test]
    fn marking_good_renames_the_running_slots_counted_entry_only() {
        let esp = names(&["gatekeeper-1-a.efi", "gatekeeper-2-b+1-2.efi", "notes.txt"]);
        assert_eq!(
            mark_good_renames(&esp, 'b'),
            vec![("gatekeeper-2-b+1-2.efi".into(), "gatekeeper-2-b.efi".into())]
        );
        assert!(mark_good_renames(&esp, 'a').is_empty());
    }

    #[test]
    fn an_update_takes_the_next_counter_and_clears_the_slot() {
        let esp = names(&["gatekeeper-1-a.efi", "gatekeeper-2-b+0-3.efi"]);
        assert_eq!(next_install_name(&esp, 'b'), "gatekeeper-3-b+3.efi");
        assert_eq!(ukis_of_slot(&esp, 'b'), names(&["gatekeeper-2-b+0-3.efi"]));
        assert_eq!(next_install_name(&[], 'a'), "gatekeeper-1-a+3.efi");
    }

    #[test]
    fn bios_tries_count_down_then_fall_back() {
        assert_eq!(Tries::parse("b 3\n"), Some(Tries { slot: 'b', left: 3 }));
        assert_eq!(Tries::parse("b"), None);
        assert_eq!(Tries::parse("c 1"), None);
        assert_eq!(Tries::parse("b 1 2"), None);
        assert_eq!(Tries { slot: 'a', left: 2 }.render(), "a 2\n");

        // Three boots of b, then the fourth goes back to a.
        let mut t = Tries {
            slot: 'b',
            left: TRIES,
        };
        for _ in 0..TRIES {
            match bios_step(Some(Ok(t)), 'b') {
                BiosStep::Count(next) => t = next,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(bios_step(Some(Ok(t)), 'b'), BiosStep::FallBack('a'));
        assert_eq!(
            bios_step(None, 'a'),
            BiosStep::Nothing {
                remove_stale: false
            }
        );
        // Already back on a (b did not boot far enough to read its counter).
        assert_eq!(
            bios_step(Some(Ok(t)), 'a'),
            BiosStep::Nothing { remove_stale: true }
        );
        assert_eq!(bios_step(Some(Err(())), 'b'), BiosStep::FallBack('a'));
    }

    #[test]
    fn syslinux_cfg_edits_keep_the_other_slot() {
        let cfg = "DEFAULT a\nPROMPT 0\nTIMEOUT 0\nLABEL a\n  LINUX /gk/a/vmlinuz\n  INITRD /gk/a/initrd.img\n  APPEND console=ttyS0 gk.verity=aa\n";
        assert_eq!(syslinux_default(cfg), Some('a'));
        let with_b = syslinux_set_label(cfg, 'b', "console=ttyS0 gk.verity=bb\n");
        assert!(with_b.contains("APPEND console=ttyS0 gk.verity=aa\n"));
        assert!(with_b.ends_with("LABEL b\n  LINUX /gk/b/vmlinuz\n  INITRD /gk/b/initrd.img\n  APPEND console=ttyS0 gk.verity=bb\n"));
        let again = syslinux_set_label(&with_b, 'a', "console=ttyS0 gk.verity=cc");
        assert!(again.contains("APPEND console=ttyS0 gk.verity=cc\n"));
        assert!(!again.contains("gk.verity=aa"));
        assert!(again.contains("gk.verity=bb"));
        assert_eq!(again.matches("LABEL").count(), 2);
        let switched = syslinux_set_default(&again, 'b');
        assert_eq!(syslinux_default(&switched), Some('b'));
        assert_eq!(
            syslinux_default(&syslinux_set_default("LABEL a\n", 'b')),
            Some('b')
        );
    }
}
