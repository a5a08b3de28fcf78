//! `[rule.dnp3]`: link addresses, application functions (with presets), object groups
//! and variations, point indices.
//!
//! ```toml
//! [rule.dnp3]
//! outstations = [10]                      # link destination of requests; default: every
//! masters = [1]                           # link source of requests; default: every
//! preset = "read-only"                    # read-only | read-write | programming | all
//! functions = ["direct-operate"]          # added to the preset
//! objects = ["class-data", "g12v1"]       # groups, group/variation, "opaque"
//! indices = ["0-15"]                      # point indices every header names
//! ```
//!
//! Only application requests are judged (see `gk_inspect::dnp3`); link-layer frames,
//! confirms and responses are checked for shape by the parser and pass.

use std::fmt;

use gk_inspect::dnp3::{Function, Group, Indices, Message};
use serde::Deserialize;
use serde_spanned::Spanned;

use super::{
    codes, fmt_codes, known_names, parse_range, preset, ranges, Preset, Ranges, Violation,
};
use crate::diag::Diags;
use crate::raw::{items, Items, Scalar};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Raw {
    pub preset: Option<Spanned<String>>,
    pub functions: Option<Spanned<Items>>,
    pub objects: Option<Spanned<Items>>,
    pub outstations: Option<Spanned<Items>>,
    pub masters: Option<Spanned<Items>>,
    pub indices: Option<Spanned<Items>>,
}

/// read, write (time and IIN), enable/disable unsolicited, delay measure, record
/// current time, authenticate request (with and without ack).
const READ_ONLY: &[(u32, u32)] = &[(1, 2), (20, 21), (23, 24), (32, 33)];
/// select … freeze-at-time-no-ack, assign class.
const READ_WRITE: &[(u32, u32)] = &[(3, 12), (22, 22)];
/// cold restart … save configuration, open file … activate configuration.
const PROGRAMMING: &[(u32, u32)] = &[(13, 19), (25, 31)];

/// The object key of the opaque rest of a request (above every group/variation).
pub const OPAQUE: u32 = 1 << 16;
const OBJECTS_MAX: u32 = OPAQUE;

/// What the read-only preset lets a write carry: the time (g50v1, g50v3) and the IIN
/// bits (g80v1, to clear "device restart").
const TIME_AND_IIN: &[(u32, u32)] = &[
    (50 << 8 | 1, 50 << 8 | 1),
    (50 << 8 | 3, 50 << 8 | 3),
    (80 << 8 | 1, 80 << 8 | 1),
];

/// What each preset holds here:
/// - `read-only`: What a monitoring master needs: reads, unsolicited reporting on and off, time synchronisation (delay measure, record current time, and writes of the time and of the IIN restart bit only), secure authentication.
/// - `read-write`: Read-only, writes of any object, controls (select, operate, direct operate), freezes and class assignment.
/// - `programming`: Read-write, restarts, application start/stop, configuration and file transfer.
/// - `all`: Every function code.
trait Dnp3Sets {
    fn functions(self) -> Vec<(u32, u32)>;
}

impl Dnp3Sets for Preset {
    fn functions(self) -> Vec<(u32, u32)> {
        let mut v = READ_ONLY.to_vec();
        if self == Preset::ReadOnly {
            return v;
        }
        v.extend_from_slice(READ_WRITE);
        if self == Preset::ReadWrite {
            return v;
        }
        v.extend_from_slice(PROGRAMMING);
        if self == Preset::All {
            v.push((0, 255));
        }
        v
    }
}

/// A compiled `[rule.dnp3]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dnp3Rule {
    pub preset: Option<Preset>,
    /// Link destination addresses of requests (0-65535).
    pub outstations: Ranges,
    /// Link source addresses of requests (0-65535).
    pub masters: Ranges,
    /// Application function codes (0-255).
    pub functions: Ranges,
    /// Objects as group << 8 | variation, and [`OPAQUE`].
    pub objects: Ranges,
    /// The objects a write may carry (narrower than `objects` only for the read-only
    /// preset without `write` listed).
    pub writes: Ranges,
    /// Point indices (0-4294967295) every header of a point group must name.
    pub indices: Ranges,
}

fn every_object() -> Ranges {
    Ranges::all(OBJECTS_MAX)
}

/// Every name `functions` accepts.
fn lookup_function(name: &str) -> Option<Vec<u32>> {
    Function::from_name(name).map(|f| vec![u32::from(u8::from(f))])
}

/// An object item: `"g12v1"`, `"g12"`, `12`, `"1-4"` (groups), a group name, `"class-0"`
/// to `"class-3"` (g60v1 to g60v4), or `"opaque"`. Returns inclusive key ranges.
fn lookup_object(item: &Scalar) -> Option<(u32, u32)> {
    let group = |g: u32| (g <= 255).then_some((g << 8, g << 8 | 255));
    match item {
        Scalar::Int(n) => group(u32::try_from(*n).ok()?),
        Scalar::Str(s) => {
            let s = s.trim().to_ascii_lowercase();
            if s == "opaque" {
                return Some((OPAQUE, OPAQUE));
            }
            if let Some(c) = ["class-0", "class-1", "class-2", "class-3"]
                .iter()
                .position(|c| *c == s)
            {
                let key = 60 << 8 | (c as u32 + 1);
                return Some((key, key));
            }
            if let Some(g) = Group::from_name(&s) {
                return group(u32::from(u8::from(g)));
            }
            if let Some(gv) = s.strip_prefix('g') {
                let (g, v) = match gv.split_once('v') {
                    Some((g, v)) => (g, Some(v)),
                    None => (gv, None),
                };
                let digits = |t: &str| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit());
                if !digits(g) || !v.is_none_or(digits) {
                    return None;
                }
                let g: u32 = g.parse().ok().filter(|g| *g <= 255)?;
                return match v {
                    None => group(g),
                    Some(v) => {
                        let v: u32 = v.parse().ok().filter(|v| *v <= 255)?;
                        Some((g << 8 | v, g << 8 | v))
                    }
                };
            }
            let (lo, hi) = parse_range(&s).filter(|&(lo, hi)| lo <= hi && hi <= 255)?;
            Some((lo << 8, hi << 8 | 255))
        }
    }
}

fn objects(d: &mut Diags<'_>, label: &str, field: &Spanned<Items>) -> Option<Ranges> {
    let mut out = Vec::new();
    for (item, span) in items(field) {
        match lookup_object(item) {
            Some(r) => out.push(r),
            None => d.error(
                &span,
                format!(
                    "{label}: unknown object {item} (objects are \"g12v1\" for a group and \
                     variation, \"g12\" or a number 0-255 for a whole group, \"class-0\" to \
                     \"class-3\", \"opaque\", or a group name: {})",
                    known_names(Group::NAMES)
                ),
            ),
        }
    }
    if field.get_ref().0.is_empty() {
        d.error(
            &field.span(),
            format!("{label}: `objects` is empty (leave it out to allow every object)"),
        );
        return None;
    }
    Some(Ranges::new(out))
}

pub(crate) fn compile(d: &mut Diags<'_>, label: &str, raw: Option<&Spanned<Raw>>) -> Dnp3Rule {
    let mut rule = Dnp3Rule {
        preset: None,
        outstations: Ranges::all(65535),
        masters: Ranges::all(65535),
        functions: Ranges::new(Preset::All.functions()),
        objects: every_object(),
        writes: every_object(),
        indices: Ranges::all(u32::MAX),
    };
    let Some(raw) = raw.map(Spanned::get_ref) else {
        return rule;
    };
    let preset = raw
        .preset
        .as_ref()
        .and_then(|p| preset(d, label, p, Preset::NAMES));
    rule.preset = preset;
    let listed = raw.functions.as_ref().and_then(|f| {
        let known = known_names(Function::NAMES);
        codes(d, label, "function", f, 255, lookup_function, &known)
    });
    let write = u32::from(u8::from(Function::Write));
    if preset == Some(Preset::ReadOnly) && !listed.as_ref().is_some_and(|l| l.contains(write)) {
        rule.writes = Ranges::new(TIME_AND_IIN.to_vec());
    }
    rule.functions = match (preset, listed) {
        (Some(p), Some(l)) => Ranges::new(p.functions()).union(&l),
        (Some(p), None) => Ranges::new(p.functions()),
        (None, Some(l)) => l,
        (None, None) => rule.functions,
    };
    if let Some(f) = &raw.objects {
        rule.objects = objects(d, label, f).unwrap_or(rule.objects);
    }
    if let Some(f) = &raw.outstations {
        rule.outstations = ranges(d, label, "outstation", f, 0, 65535).unwrap_or(rule.outstations);
    }
    if let Some(f) = &raw.masters {
        rule.masters = ranges(d, label, "master", f, 0, 65535).unwrap_or(rule.masters);
    }
    if let Some(f) = &raw.indices {
        rule.indices = ranges(d, label, "index", f, 0, u32::MAX).unwrap_or(rule.indices);
    }
    rule
}

impl Dnp3Rule {
    /// Whether a request is inside the rule. Checked in the order link addresses,
    /// function, objects, indices, so the violation names the first field that failed.
    /// A link-layer frame (never a request) is judged on its addresses alone.
    #[inline]
    pub fn check(&self, msg: &Message<'_>) -> Result<(), Violation> {
        if !self.outstations.contains(msg.destination().into())
            || !self.masters.contains(msg.source().into())
        {
            return Err(Violation::Unit);
        }
        let Some(function) = msg.function() else {
            return Ok(());
        };
        if !self.functions.contains(u8::from(function).into()) {
            return Err(Violation::Function);
        }
        let write = function == Function::Write;
        for h in msg.objects() {
            let key = u32::from(h.group) << 8 | u32::from(h.variation);
            if !self.objects.contains(key)
                || (write && !self.writes.contains(key))
                || (h.is_opaque() && !self.objects.contains(OPAQUE))
            {
                return Err(Violation::Object);
            }
        }
        if self.indices.is_all(u32::MAX) {
            return Ok(());
        }
        for h in msg.objects() {
            if !Group::from(h.group).has_points() {
                continue;
            }
            let inside = match h.indices() {
                Indices::Range(lo, hi) => self.indices.contains_range(lo, hi),
                Indices::Listed(mut each) => each.all(|i| self.indices.contains(i)),
                Indices::All | Indices::Unnamed | Indices::Unknown => false,
            };
            if !inside {
                return Err(Violation::Address);
            }
        }
        Ok(())
    }

    pub fn covers(&self, other: &Dnp3Rule) -> bool {
        self.outstations.covers(&other.outstations)
            && self.masters.covers(&other.masters)
            && self.functions.covers(&other.functions)
            && self.objects.covers(&other.objects)
            && self.writes.covers(&other.writes)
            && self.indices.covers(&other.indices)
    }
}

/// `g12v1,g60,opaque`: whole groups as `gN`, single objects as `gNvM`.
struct ObjectList<'r>(&'r Ranges);

impl fmt::Display for ObjectList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        for &(lo, hi) in self.0.ranges() {
            let mut k = lo;
            while k <= hi.min(OPAQUE - 1) {
                let (g, v) = (k >> 8, k & 255);
                if v == 0 && hi >= k | 255 {
                    parts.push(format!("g{g}"));
                    k += 256;
                } else {
                    parts.push(format!("g{g}v{v}"));
                    k += 1;
                }
            }
            if hi >= OPAQUE {
                parts.push("opaque".to_string());
            }
        }
        if parts.is_empty() {
            return f.write_str("none");
        }
        f.write_str(&parts.join(","))
    }
}

impl fmt::Display for Dnp3Rule {
    /// `outstations 10; preset read-only; objects g60,g12v1; indices 0-15`, leaving out
    /// what is unrestricted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if !self.outstations.is_all(65535) {
            parts.push(format!("outstations {}", self.outstations));
        }
        if !self.masters.is_all(65535) {
            parts.push(format!("masters {}", self.masters));
        }
        let preset_functions = self.preset.map(|p| Ranges::new(p.functions()));
        match (&self.preset, preset_functions) {
            (Some(p), Some(pf)) if pf == self.functions => {
                parts.push(format!("preset {}", p.name()))
            }
            _ if self.functions == Ranges::new(Preset::All.functions()) => {}
            _ => {
                struct Functions<'r>(&'r Ranges);
                impl fmt::Display for Functions<'_> {
                    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        fmt_codes(f, self.0, |v| Function::from(v as u8).name())
                    }
                }
                parts.push(format!("functions {}", Functions(&self.functions)));
            }
        }
        if !self.objects.is_all(OBJECTS_MAX) {
            parts.push(format!("objects {}", ObjectList(&self.objects)));
        }
        if !self.writes.is_all(OBJECTS_MAX) {
            parts.push(format!("writes {}", ObjectList(&self.writes)));
        }
        if !self.indices.is_all(u32::MAX) {
            parts.push(format!("indices {}", self.indices));
        }
        if parts.is_empty() {
            f.write_str("every function")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gk_inspect::dnp3::{self, HeaderRepr, Link, Range, RequestRepr};
    use gk_inspect::Dir;

    const LINK: Link = Link {
        control: 0xc4,
        destination: 10,
        source: 1,
    };

    fn request(function: Function, headers: &[HeaderRepr<'_>]) -> Vec<u8> {
        let mut out = [0u8; 2048];
        let n = RequestRepr {
            seq: 0,
            function,
            headers,
        }
        .emit(&mut out)
        .unwrap();
        out[..n].to_vec()
    }

    fn check_at(rule: &Dnp3Rule, link: Link, fragment: &[u8]) -> Result<(), Violation> {
        let m = dnp3::Message::application(link, Dir::Request, fragment).unwrap();
        rule.check(&m)
    }

    fn check(rule: &Dnp3Rule, fragment: &[u8]) -> Result<(), Violation> {
        check_at(rule, LINK, fragment)
    }

    fn compile_text(section: &str) -> Result<Dnp3Rule, Vec<String>> {
        let text = format!(
            "schema = 1\n[gatekeeper]\nname = \"t\"\nmode = \"enforce\"\n[hosts.plc]\nip = \"10.0.0.1\"\n\
             [[rule]]\nname = \"r\"\nfrom = \"any\"\nto = \"plc\"\nproto = \"dnp3\"\naction = \"allow\"\n\
             [rule.dnp3]\n{section}\n"
        );
        match crate::Policy::from_toml(&text, "t.toml") {
            Ok((p, _)) => match &p.rules()[0].app {
                Some(crate::AppRule::Dnp3(r)) => Ok(r.clone()),
                other => panic!("{other:?}"),
            },
            Err(e) => Err(e.diagnostics.iter().map(|d| d.to_string()).collect()),
        }
    }

    fn integrity_poll() -> Vec<u8> {
        request(
            Function::Read,
            &[
                HeaderRepr::all(60, 2),
                HeaderRepr::all(60, 3),
                HeaderRepr::all(60, 4),
                HeaderRepr::all(60, 1),
            ],
        )
    }

    /// Direct operate (or select/operate) of CROB `index`: latch on.
    fn crob(function: Function, index: u16) -> Vec<u8> {
        let mut objects = index.to_le_bytes().to_vec();
        objects.extend([0x03, 1, 100, 0, 0, 0, 0, 0, 0, 0, 0]);
        request(
            function,
            &[HeaderRepr {
                group: 12,
                variation: 1,
                qualifier: 0x28,
                range: Range::Count(1),
                objects: &objects,
            }],
        )
    }

    fn write_time() -> Vec<u8> {
        request(
            Function::Write,
            &[HeaderRepr {
                group: 50,
                variation: 1,
                qualifier: 0x07,
                range: Range::Count(1),
                objects: &[1, 2, 3, 4, 5, 6],
            }],
        )
    }

    fn clear_restart() -> Vec<u8> {
        request(
            Function::Write,
            &[HeaderRepr {
                group: 80,
                variation: 1,
                qualifier: 0x00,
                range: Range::StartStop { start: 7, stop: 7 },
                objects: &[0],
            }],
        )
    }

    fn write_analog_deadband() -> Vec<u8> {
        request(
            Function::Write,
            &[HeaderRepr {
                group: 34,
                variation: 1,
                qualifier: 0x17,
                range: Range::Count(1),
                objects: &[4, 10, 0],
            }],
        )
    }

    #[test]
    fn presets_nest_and_mean_what_they_say() {
        let ro = Ranges::new(Preset::ReadOnly.functions());
        let rw = Ranges::new(Preset::ReadWrite.functions());
        let pr = Ranges::new(Preset::Programming.functions());
        let all = Ranges::new(Preset::All.functions());
        assert!(rw.covers(&ro) && pr.covers(&rw) && all.covers(&pr));
        assert!(ro.contains(1) && !ro.contains(5) && rw.contains(5) && rw.contains(3));
        assert!(!rw.contains(13) && pr.contains(13) && pr.contains(25) && !ro.contains(25));
        assert!(all.is_all(255));

        let ro = compile_text("preset = \"read-only\"").unwrap();
        assert_eq!(check(&ro, &integrity_poll()), Ok(()));
        assert_eq!(check(&ro, &write_time()), Ok(()));
        assert_eq!(check(&ro, &clear_restart()), Ok(()));
        assert_eq!(check(&ro, &request(Function::DelayMeasure, &[])), Ok(()));
        assert_eq!(
            check(&ro, &write_analog_deadband()),
            Err(Violation::Object),
            "read-only writes only the time and IIN bits"
        );
        for f in [Function::DirectOperate, Function::Select, Function::Operate] {
            assert_eq!(check(&ro, &crob(f, 0)), Err(Violation::Function));
        }
        assert_eq!(
            check(&ro, &request(Function::ColdRestart, &[])),
            Err(Violation::Function)
        );
        let rw = compile_text("preset = \"read-write\"").unwrap();
        assert_eq!(check(&rw, &crob(Function::DirectOperate, 0)), Ok(()));
        assert_eq!(check(&rw, &write_analog_deadband()), Ok(()));
        assert_eq!(
            check(&rw, &request(Function::WarmRestart, &[])),
            Err(Violation::Function)
        );
        let pr = compile_text("preset = \"programming\"").unwrap();
        assert_eq!(check(&pr, &request(Function::ColdRestart, &[])), Ok(()));
        assert_eq!(
            check(&pr, &request(Function::Unknown(0x40), &[])),
            Err(Violation::Function)
        );
        let all = compile_text("preset = \"all\"").unwrap();
        assert_eq!(check(&all, &request(Function::Unknown(0x40), &[])), Ok(()));
        // Listing `write` on top of read-only opens writes of every object.
        let ro_w = compile_text("preset = \"read-only\"\nfunctions = [\"write\"]").unwrap();
        assert_eq!(check(&ro_w, &write_analog_deadband()), Ok(()));
        assert!(ro_w.covers(&ro) && !ro.covers(&ro_w));
    }

    #[test]
    fn addresses_functions_objects_and_indices() {
        let r = compile_text(
            "outstations = [10]\nmasters = [1, \"100-110\"]\n\
             functions = [\"read\", \"select\", \"operate\", 5]\n\
             objects = [\"class-data\", \"g12v1\", \"binary-input\"]\nindices = [\"0-7\"]",
        )
        .unwrap();
        assert_eq!(check(&r, &integrity_poll()), Ok(()));
        assert_eq!(check(&r, &crob(Function::Select, 7)), Ok(()));
        assert_eq!(
            check(&r, &crob(Function::Select, 8)),
            Err(Violation::Address)
        );
        let other = Link {
            destination: 11,
            ..LINK
        };
        assert_eq!(check_at(&r, other, &integrity_poll()), Err(Violation::Unit));
        let broadcast = Link {
            destination: 0xffff,
            ..LINK
        };
        assert_eq!(
            check_at(&r, broadcast, &integrity_poll()),
            Err(Violation::Unit)
        );
        let stranger = Link { source: 2, ..LINK };
        assert_eq!(
            check_at(&r, stranger, &integrity_poll()),
            Err(Violation::Unit)
        );
        let m105 = Link {
            source: 105,
            ..LINK
        };
        assert_eq!(check_at(&r, m105, &integrity_poll()), Ok(()));
        assert_eq!(check(&r, &write_time()), Err(Violation::Function));
        // g12v2 (pattern control block) is not g12v1.
        let pcb = request(
            Function::Select,
            &[HeaderRepr {
                group: 12,
                variation: 2,
                qualifier: 0x07,
                range: Range::Count(1),
                objects: &[0x03, 1, 100, 0, 0, 0, 0, 0, 0, 0, 0],
            }],
        );
        assert_eq!(check(&r, &pcb), Err(Violation::Object));
        // Reads of binary inputs by range and by index; the index rule applies.
        let read = |start, stop| {
            request(
                Function::Read,
                &[HeaderRepr {
                    group: 1,
                    variation: 2,
                    qualifier: 0x00,
                    range: Range::StartStop { start, stop },
                    objects: &[],
                }],
            )
        };
        assert_eq!(check(&r, &read(0, 7)), Ok(()));
        assert_eq!(check(&r, &read(0, 8)), Err(Violation::Address));
        // "All points" names every index: outside a narrow `indices`.
        let all_bi = request(Function::Read, &[HeaderRepr::all(1, 0)]);
        assert_eq!(check(&r, &all_bi), Err(Violation::Address));
        let listed = request(
            Function::Read,
            &[HeaderRepr {
                group: 1,
                variation: 2,
                qualifier: 0x17,
                range: Range::Count(2),
                objects: &[3, 9],
            }],
        );
        assert_eq!(check(&r, &listed), Err(Violation::Address));
    }

    #[test]
    fn opaque_requests_need_an_explicit_allowance() {
        // A write of a vendor object (size unknown) hides a CROB behind it.
        let hidden = request(
            Function::Write,
            &[HeaderRepr {
                group: 12,
                variation: 200,
                qualifier: 0x00,
                range: Range::StartStop { start: 0, stop: 0 },
                objects: &[12, 1, 0x17, 1, 0, 3, 1, 100, 0, 0, 0, 0, 0, 0, 0, 0],
            }],
        );
        let m = dnp3::Message::application(LINK, Dir::Request, &hidden).unwrap();
        assert!(m.opaque());
        let every = compile_text("functions = [\"write\"]").unwrap();
        assert_eq!(check(&every, &hidden), Ok(()), "objects unrestricted");
        let groups = compile_text("functions = [\"write\"]\nobjects = [\"g12\"]").unwrap();
        assert_eq!(check(&groups, &hidden), Err(Violation::Object));
        let opaque =
            compile_text("functions = [\"write\"]\nobjects = [\"g12\", \"opaque\"]").unwrap();
        assert_eq!(check(&opaque, &hidden), Ok(()));
        let narrow = compile_text("functions = [\"write\"]\nindices = [0]").unwrap();
        assert_eq!(
            check(&narrow, &hidden),
            Ok(()),
            "the opaque header names index 0"
        );
    }

    #[test]
    fn link_layer_frames_are_judged_on_addresses() {
        let r = compile_text("outstations = [10]\npreset = \"read-only\"").unwrap();
        let reset = [0x05, 0x64, 0x05, 0xc0, 0x0a, 0x00, 0x01, 0x00];
        let mut frame = reset.to_vec();
        frame.extend(gk_inspect::dnp3::crc(&reset).to_le_bytes());
        let mut s = dnp3::Session::default();
        let mut scratch = [0u8; 64];
        let Some(Ok(gk_inspect::Message::Dnp3(m))) =
            s.message(&frame, 10, Dir::Request, &mut scratch)
        else {
            panic!()
        };
        assert!(!m.is_request());
        assert_eq!(r.check(&m), Ok(()));
    }

    #[test]
    fn names_and_errors() {
        let r = compile_text(
            "objects = [\"g12v1\", 60, \"1-3\", \"class-1\", \"opaque\", \"time-and-date\"]",
        )
        .unwrap();
        assert!(r.objects.contains(12 << 8 | 1) && !r.objects.contains(12 << 8 | 2));
        assert!(r.objects.contains(60 << 8 | 255) && r.objects.contains(2 << 8 | 7));
        assert!(r.objects.contains(50 << 8 | 1) && r.objects.contains(OPAQUE));
        assert_eq!(r.to_string(), "objects g1,g2,g3,g12v1,g50,g60,opaque");
        let errors = compile_text("objects = [\"g12v\", \"g256\", \"crob\"]").unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("unknown object \"g12v\""), "{errors:?}");
        let errors = compile_text("functions = [\"operate-everything\"]").unwrap_err();
        assert!(errors[0].contains("unknown function"), "{errors:?}");
        let errors = compile_text("preset = \"read-mostly\"").unwrap_err();
        assert!(errors[0].contains("unknown preset"), "{errors:?}");
        let errors = compile_text("outstations = [70000]").unwrap_err();
        assert!(errors[0].contains("out of range"), "{errors:?}");
        let errors = compile_text("objects = []").unwrap_err();
        assert!(errors[0].contains("empty"), "{errors:?}");
        let errors = compile_text("unit = 1").unwrap_err();
        assert!(!errors.is_empty());
    }

    #[test]
    fn display_and_covers() {
        let ro = compile_text("preset = \"read-only\"\noutstations = [10]").unwrap();
        assert_eq!(
            ro.to_string(),
            "outstations 10; preset read-only; writes g50v1,g50v3,g80v1"
        );
        let f = compile_text("functions = [\"read\", \"direct-operate\", 64]\nindices = [\"0-9\"]")
            .unwrap();
        assert_eq!(
            f.to_string(),
            "functions read,direct-operate,64; indices 0-9"
        );
        let every = compile(&mut Diags::new("", "t"), "r", None);
        assert_eq!(every.to_string(), "every function");
        assert!(every.covers(&ro) && every.covers(&f) && !ro.covers(&every));
        assert!(!f.covers(&ro), "read-only's writes are not in f");
    }
}
