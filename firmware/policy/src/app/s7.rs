//! `[rule.s7]`: S7 functions (job functions, userdata subfunctions, S7comm-plus as a
//! whole) with presets, memory areas and data blocks of read/write-var, PI services of
//! plc-control, and the TSAPs a connection may call.
//!
//! ```toml
//! [rule.s7]
//! preset = "read-only"                  # read-only | read-write | programming | all
//! functions = ["write-var", "set-clock"]  # added to the preset
//! areas = ["db", "flags"]               # every address of a read/write-var or subscription
//! dbs = ["1-99"]                        # data blocks (areas db and instance-db)
//! pi-services = ["insert"]              # of plc-control: names or wire names ("_INSE")
//! tsaps = ["0x0102"]                    # called TSAP of the connection request
//! ```

use std::fmt;

use gk_inspect::s7::{subfunctions, Area, Function, Group, Message, PiService, Rosctr, Tsap};
use serde::Deserialize;
use serde_spanned::Spanned;

use super::{codes, known_names, parse_range, preset, ranges, Preset, Ranges, Violation};
use crate::diag::Diags;
use crate::raw::{items, Items, Scalar};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Raw {
    pub preset: Option<Spanned<String>>,
    pub functions: Option<Spanned<Items>>,
    pub areas: Option<Spanned<Items>>,
    pub dbs: Option<Spanned<Items>>,
    pub pi_services: Option<Spanned<Items>>,
    pub tsaps: Option<Spanned<Items>>,
}

/// Keys of the function set: job function codes (0-255), then userdata subfunctions
/// (`USERDATA + group × 256 + subfunction`), S7comm-plus, other PDU types.
const USERDATA: u32 = 0x1_0000;
const USERDATA_LAST: u32 = USERDATA + 0x3fff;
const S7COMM_PLUS: u32 = 0x2_0000;
const OTHER_ROSCTR: u32 = 0x3_0000;
const MAX_KEY: u32 = OTHER_ROSCTR + 255;

fn userdata_key(group: Group, sub: u8) -> u32 {
    USERDATA + (u32::from(u8::from(group) & 0x3f) << 8) + u32::from(sub)
}

fn group_keys(group: Group) -> (u32, u32) {
    (userdata_key(group, 0), userdata_key(group, 255))
}

fn job(f: Function) -> (u32, u32) {
    let k = u32::from(u8::from(f));
    (k, k)
}

fn ud(group: Group, sub: u8) -> (u32, u32) {
    let k = userdata_key(group, sub);
    (k, k)
}

/// What each preset holds here:
/// - `read-only`: Setup communication, read-var; reading the block list and block information, system status lists (SZL), messages and alarms, the clock; cyclic subscriptions.
/// - `read-write`: Read-only, write-var, alarm acknowledgement and locking, setting the clock, the PLC password.
/// - `programming`: Read-write, block download and upload, plc-control (every PI service), plc-stop, and every subfunction of every named userdata group (programmer commands: variable status and modify, force, memory reset …).
/// - `all`: Every job function, every userdata group and subfunction, every other PDU type, and S7comm-plus.
trait S7Sets {
    fn functions(self) -> Vec<(u32, u32)>;
}

impl S7Sets for Preset {
    fn functions(self) -> Vec<(u32, u32)> {
        use Function as F;
        use Group as G;
        let mut v = vec![
            job(F::SetupCommunication),
            job(F::ReadVar),
            ud(G::CyclicData, 0x01),
            ud(G::CyclicData, 0x04),
            ud(G::CyclicData, 0x05),
            ud(G::BlockFunctions, 0x01),
            ud(G::BlockFunctions, 0x02),
            ud(G::BlockFunctions, 0x03),
            ud(G::CpuFunctions, 0x01),
            ud(G::CpuFunctions, 0x02),
            ud(G::CpuFunctions, 0x13),
            ud(G::TimeFunctions, 0x01),
            ud(G::TimeFunctions, 0x03),
        ];
        if self == Preset::ReadOnly {
            return v;
        }
        v.extend([
            job(F::WriteVar),
            ud(G::CpuFunctions, 0x07),
            ud(G::CpuFunctions, 0x08),
            ud(G::CpuFunctions, 0x0b),
            ud(G::TimeFunctions, 0x02),
            ud(G::TimeFunctions, 0x04),
            ud(G::Security, 0x01),
            ud(G::Security, 0x02),
        ]);
        if self == Preset::ReadWrite {
            return v;
        }
        v.extend(
            Function::NAMES
                .iter()
                .map(|&(_, c)| (u32::from(c), u32::from(c))),
        );
        v.extend(
            Group::NAMES
                .iter()
                .map(|&(_, g)| group_keys(Group::from(g))),
        );
        if self == Preset::All {
            v.extend([
                (0, 255),
                (USERDATA, USERDATA_LAST),
                (S7COMM_PLUS, S7COMM_PLUS),
                (OTHER_ROSCTR, MAX_KEY),
            ]);
        }
        v
    }
}

/// A compiled `[rule.s7]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S7Rule {
    pub preset: Option<Preset>,
    /// Function keys (see the constants above).
    pub functions: Ranges,
    /// Area codes (0-255) every address must be in.
    pub areas: Ranges,
    /// Data block numbers (0-65535) every address in a data block must be in.
    pub dbs: Ranges,
    /// PI services plc-control may call, as sent; `None`: every service.
    pub pi_services: Option<Vec<Vec<u8>>>,
    /// Called TSAPs (0-65535) the connection may have asked for.
    pub tsaps: Ranges,
}

/// The key of a request, for `functions`.
fn key(msg: &Message<'_>) -> Option<u32> {
    if msg.plus().is_some() {
        return Some(S7COMM_PLUS);
    }
    let pdu = msg.pdu()?;
    Some(match pdu.rosctr {
        Rosctr::Userdata => {
            let u = pdu.userdata?;
            userdata_key(u.group, u.subfunction)
        }
        Rosctr::Unknown(r) => OTHER_ROSCTR + u32::from(r),
        _ => u32::from(*pdu.params.first()?),
    })
}

/// Every name `functions` accepts.
fn lookup_function(name: &str) -> Option<Vec<u32>> {
    if name == "s7comm-plus" {
        return Some(vec![S7COMM_PLUS]);
    }
    if let Some(f) = Function::from_name(name) {
        return Some(vec![u32::from(u8::from(f))]);
    }
    if let Some(g) = Group::from_name(name) {
        let (lo, hi) = group_keys(g);
        return Some((lo..=hi).collect());
    }
    if name == "set-clock" {
        let g = Group::TimeFunctions;
        return Some(vec![userdata_key(g, 0x02), userdata_key(g, 0x04)]);
    }
    if let Some((_, g, s)) = subfunctions().find(|(n, _, _)| *n == name) {
        return Some(vec![userdata_key(g, s)]);
    }
    // "group/subfunction": a subfunction number (or range) of a named group.
    let (group, sub) = name.split_once('/')?;
    let g = Group::from_name(group)?;
    let (lo, hi) = parse_range(sub).filter(|&(lo, hi)| lo <= hi && hi <= 255)?;
    Some((lo..=hi).map(|s| userdata_key(g, s as u8)).collect())
}

fn known_functions() -> String {
    format!(
        "{}, the userdata groups {}, their subfunctions (read-szl, set-clock, plc-password … \
         listed in config/protocols/s7.md) or \"group/subfunction\" such as \"cpu-functions/0x13\", s7comm-plus",
        known_names(Function::NAMES),
        known_names(Group::NAMES),
    )
}

/// PI service names: the table's names, or a name as sent (`_INSE`, `_N_LOGIN_`).
fn pi_services(d: &mut Diags<'_>, label: &str, field: &Spanned<Items>) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for (item, span) in items(field) {
        let found = match item {
            Scalar::Str(s) => PiService::NAMES
                .iter()
                .find(|(n, _, _)| n.eq_ignore_ascii_case(s))
                .map(|(_, wire, _)| wire.to_vec())
                .or_else(|| {
                    let wire = !s.is_empty()
                        && s.len() <= 32
                        && s.contains('_')
                        && s.bytes()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_');
                    wire.then(|| s.as_bytes().to_vec())
                }),
            Scalar::Int(_) => None,
        };
        match found {
            Some(wire) => out.push(wire),
            None => {
                let names: Vec<&str> = PiService::NAMES.iter().map(|(n, _, _)| *n).collect();
                d.error(
                    &span,
                    format!(
                        "{label}: unknown PI service {item} (names are: {}; or a service name as sent, such as \"_INSE\")",
                        names.join(", ")
                    ),
                );
            }
        }
    }
    if field.get_ref().0.is_empty() {
        d.error(
            &field.span(),
            format!("{label}: `pi-services` is empty (leave it out to allow every PI service)"),
        );
        return None;
    }
    out.sort();
    out.dedup();
    Some(out)
}

pub(crate) fn compile(d: &mut Diags<'_>, label: &str, raw: Option<&Spanned<Raw>>) -> S7Rule {
    let mut rule = S7Rule {
        preset: None,
        functions: Ranges::new(Preset::All.functions()),
        areas: Ranges::all(255),
        dbs: Ranges::all(65535),
        pi_services: None,
        tsaps: Ranges::all(65535),
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
        codes(
            d,
            label,
            "function",
            f,
            255,
            lookup_function,
            &known_functions(),
        )
    });
    rule.functions = match (preset, listed) {
        (Some(p), Some(l)) => Ranges::new(p.functions()).union(&l),
        (Some(p), None) => Ranges::new(p.functions()),
        (None, Some(l)) => l,
        (None, None) => rule.functions,
    };
    if let Some(f) = &raw.areas {
        let lookup = |n: &str| Area::from_name(n).map(|a| vec![u32::from(u8::from(a))]);
        let known = known_names(Area::NAMES);
        rule.areas = codes(d, label, "area", f, 255, lookup, &known).unwrap_or(rule.areas);
    }
    if let Some(f) = &raw.dbs {
        rule.dbs = ranges(d, label, "db", f, 0, 65535).unwrap_or(rule.dbs);
    }
    if let Some(f) = &raw.tsaps {
        rule.tsaps = ranges(d, label, "tsap", f, 0, 65535).unwrap_or(rule.tsaps);
    }
    if let Some(f) = &raw.pi_services {
        if !rule
            .functions
            .contains(u32::from(u8::from(Function::PlcControl)))
        {
            d.warn(
                &f.span(),
                format!(
                    "{label}: `pi-services` has no effect: the rule does not allow plc-control"
                ),
            );
        }
        rule.pi_services = pi_services(d, label, f);
    }
    rule
}

impl S7Rule {
    /// Whether a request is inside the rule. Checked in the order TSAP (unit),
    /// function (with the PI service), addresses.
    #[inline]
    pub fn check(&self, msg: &Message<'_>) -> Result<(), Violation> {
        if !self.tsaps.is_all(65535) {
            match msg.tsap() {
                Tsap::Number(t) if self.tsaps.contains(t.into()) => {}
                _ => return Err(Violation::Unit),
            }
        }
        let Some(key) = key(msg) else {
            // Not a request (COTP control TPDUs): nothing to judge.
            return Ok(());
        };
        if !self.functions.contains(key) {
            return Err(Violation::Function);
        }
        if let (Some(allowed), Some(Function::PlcControl)) = (&self.pi_services, msg.function()) {
            let name = msg.pi_service_name().unwrap_or_default();
            if !allowed.iter().any(|a| a.as_slice() == name) {
                return Err(Violation::Function);
            }
        }
        let (areas, dbs) = (!self.areas.is_all(255), !self.dbs.is_all(65535));
        if areas || dbs {
            for item in msg.items() {
                // An address in another syntax (symbolic, NCK …) cannot be judged.
                let Some(area) = item.area() else {
                    return Err(Violation::Address);
                };
                if !self.areas.contains(u8::from(area).into()) {
                    return Err(Violation::Address);
                }
                if let Some(db) = item.db() {
                    if !self.dbs.contains(db.into()) {
                        return Err(Violation::Address);
                    }
                }
            }
        }
        Ok(())
    }

    pub fn covers(&self, other: &S7Rule) -> bool {
        let pi = match (&self.pi_services, &other.pi_services) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => b.iter().all(|s| a.contains(s)),
        };
        pi && self.functions.covers(&other.functions)
            && self.areas.covers(&other.areas)
            && self.dbs.covers(&other.dbs)
            && self.tsaps.covers(&other.tsaps)
    }
}

/// The names of a function set: job functions, whole userdata groups by name,
/// subfunctions by name (or `group/n`), `s7comm-plus`, `rosctr-n`.
fn function_names(set: &Ranges) -> Vec<String> {
    let mut names = Vec::new();
    for v in set.values() {
        match v {
            0..=255 => names.push(Function::from(v as u8).to_string()),
            USERDATA..=USERDATA_LAST => {
                let group = Group::from(((v - USERDATA) >> 8) as u8);
                let sub = (v & 0xff) as u8;
                let (lo, hi) = group_keys(group);
                if set.contains_range(lo, hi) {
                    if sub == 0 {
                        names.push(group.to_string());
                    }
                    continue;
                }
                match gk_inspect::s7::subfunction_name(group, sub) {
                    Some(n) => names.push(n.to_string()),
                    None => names.push(format!("{group}/{sub}")),
                }
            }
            S7COMM_PLUS => names.push("s7comm-plus".to_string()),
            OTHER_ROSCTR..=MAX_KEY => names.push(format!("rosctr-{}", v - OTHER_ROSCTR)),
            _ => {}
        }
    }
    names
}

impl fmt::Display for S7Rule {
    /// `preset read-only; areas db; dbs 1-10`, leaving out what is unrestricted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if !self.tsaps.is_all(65535) {
            parts.push(format!("tsaps {}", self.tsaps));
        }
        let preset_functions = self.preset.map(|p| Ranges::new(p.functions()));
        match (&self.preset, preset_functions) {
            (Some(p), Some(pf)) if pf == self.functions => {
                parts.push(format!("preset {}", p.name()))
            }
            _ if self.functions == Ranges::new(Preset::All.functions()) => {}
            _ => parts.push(format!(
                "functions {}",
                function_names(&self.functions).join(",")
            )),
        }
        if let Some(pi) = &self.pi_services {
            let names: Vec<String> = pi
                .iter()
                .map(|w| {
                    PiService::NAMES
                        .iter()
                        .find(|(_, wire, _)| *wire == w.as_slice())
                        .map_or_else(
                            || String::from_utf8_lossy(w).into_owned(),
                            |(n, _, _)| n.to_string(),
                        )
                })
                .collect();
            parts.push(format!("pi-services {}", names.join(",")));
        }
        if !self.areas.is_all(255) {
            let names: Vec<String> = self
                .areas
                .values()
                .map(|a| Area::from(a as u8).to_string())
                .collect();
            parts.push(format!("areas {}", names.join(",")));
        }
        if !self.dbs.is_all(65535) {
            parts.push(format!("dbs {}", self.dbs));
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
    use gk_inspect::s7::{
        parse, BlockType, ConnectRepr, ItemRepr, JobRepr, PlusOpcode, PlusRepr, PlusVersion,
        RequestRepr, Session, TransportSize,
    };
    use gk_inspect::Dir;

    fn emit(request: RequestRepr<'_>) -> Vec<u8> {
        let mut out = [0u8; 1024];
        let n = JobRepr {
            pdu_ref: 1,
            request,
        }
        .emit(&mut out)
        .unwrap();
        out[..n].to_vec()
    }

    fn check(rule: &S7Rule, bytes: &[u8]) -> Result<(), Violation> {
        let m = parse(bytes, bytes.len(), Dir::Request).unwrap();
        assert!(m.is_request());
        rule.check(&m)
    }

    fn rule(text: &str) -> S7Rule {
        let toml = format!(
            "schema = 1\n[gatekeeper]\nname = \"t\"\nmode = \"enforce\"\n[hosts.plc]\nip = \"10.0.0.1\"\n[[rule]]\nname = \"r\"\nfrom = \"any\"\nto = \"plc\"\nproto = \"s7\"\naction = \"allow\"\n[rule.s7]\n{text}\n"
        );
        let (policy, warnings) = crate::Policy::from_toml(&toml, "t.toml").unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        match &policy.rules()[0].app {
            Some(super::super::AppRule::S7(r)) => r.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn read(db: u16) -> Vec<u8> {
        emit(RequestRepr::ReadVar {
            items: &[ItemRepr::db_bytes(db, 0, 4)],
        })
    }

    fn write(area: Area, db: u16) -> Vec<u8> {
        let item = ItemRepr {
            area,
            db,
            transport: TransportSize::Byte,
            count: 1,
            start: 0,
            bit: 0,
        };
        emit(RequestRepr::WriteVar {
            items: &[(item, &[1])],
        })
    }

    fn userdata(group: Group, subfunction: u8) -> Vec<u8> {
        emit(RequestRepr::Userdata {
            group,
            subfunction,
            sequence: 0,
            payload: &[0, 0, 0, 0],
        })
    }

    #[test]
    fn presets_nest_and_say_what_they_allow() {
        let ro = Ranges::new(Preset::ReadOnly.functions());
        let rw = Ranges::new(Preset::ReadWrite.functions());
        let pr = Ranges::new(Preset::Programming.functions());
        let all = Ranges::new(Preset::All.functions());
        assert!(rw.covers(&ro) && pr.covers(&rw) && all.covers(&pr));
        assert!(!ro.contains(5) && rw.contains(5) && !rw.contains(0x29) && pr.contains(0x29));
        assert!(!pr.contains(S7COMM_PLUS) && all.contains(S7COMM_PLUS));
        let r = rule("preset = \"read-only\"");
        assert_eq!(check(&r, &read(1)), Ok(()));
        assert_eq!(check(&r, &write(Area::Db, 1)), Err(Violation::Function));
        assert_eq!(
            check(&r, &userdata(Group::CpuFunctions, 1)),
            Ok(()),
            "read-szl"
        );
        assert_eq!(
            check(&r, &userdata(Group::TimeFunctions, 2)),
            Err(Violation::Function)
        );
        assert_eq!(
            check(&r, &emit(RequestRepr::PlcStop)),
            Err(Violation::Function)
        );
        let r = rule("preset = \"read-write\"");
        assert_eq!(check(&r, &write(Area::Db, 1)), Ok(()));
        assert_eq!(
            check(&r, &userdata(Group::TimeFunctions, 2)),
            Ok(()),
            "set-clock"
        );
        let download = emit(RequestRepr::RequestDownload {
            block: BlockType::Ob,
            number: 1,
        });
        assert_eq!(check(&r, &download), Err(Violation::Function));
        let r = rule("preset = \"programming\"");
        assert_eq!(check(&r, &download), Ok(()));
        assert_eq!(
            check(&r, &userdata(Group::ProgrammerCommands, 9)),
            Ok(()),
            "force"
        );
        assert_eq!(r.to_string(), "preset programming");
    }

    #[test]
    fn functions_by_name_group_and_number() {
        let r = rule(
            "functions = [\"setup-communication\", \"read-var\", \"block-functions\", \"set-clock\", \"cpu-functions/0x13\", 0x29]",
        );
        assert_eq!(check(&r, &read(1)), Ok(()));
        assert_eq!(check(&r, &userdata(Group::BlockFunctions, 3)), Ok(()));
        assert_eq!(
            check(&r, &userdata(Group::TimeFunctions, 4)),
            Ok(()),
            "set-clock-2"
        );
        assert_eq!(check(&r, &userdata(Group::CpuFunctions, 0x13)), Ok(()));
        assert_eq!(
            check(&r, &userdata(Group::CpuFunctions, 0x01)),
            Err(Violation::Function)
        );
        assert_eq!(check(&r, &emit(RequestRepr::PlcStop)), Ok(()));
        assert_eq!(
            r.to_string(),
            "functions read-var,plc-stop,setup-communication,block-functions,alarm-query,set-clock,set-clock-2"
        );
    }

    #[test]
    fn areas_and_dbs_limit_every_address() {
        let r = rule("preset = \"read-write\"\nareas = [\"db\", \"flags\"]\ndbs = [\"1-10\", 20]");
        assert_eq!(check(&r, &read(10)), Ok(()));
        assert_eq!(check(&r, &read(11)), Err(Violation::Address));
        assert_eq!(
            check(&r, &write(Area::Flags, 0)),
            Ok(()),
            "dbs do not apply to flags"
        );
        assert_eq!(check(&r, &write(Area::Outputs, 0)), Err(Violation::Address));
        assert_eq!(check(&r, &write(Area::Db, 20)), Ok(()));
        // The second of two items is outside.
        let two = emit(RequestRepr::ReadVar {
            items: &[ItemRepr::db_bytes(1, 0, 1), ItemRepr::db_bytes(99, 0, 1)],
        });
        assert_eq!(check(&r, &two), Err(Violation::Address));
        assert_eq!(
            r.to_string(),
            "preset read-write; areas flags,db; dbs 1-10,20"
        );
    }

    #[test]
    fn pi_services_limit_plc_control() {
        let r = rule("functions = [\"plc-control\"]\npi-services = [\"insert\", \"_GARB\"]");
        let control = |service: &[u8]| emit(RequestRepr::PlcControl { args: b"", service });
        assert_eq!(check(&r, &control(b"_INSE")), Ok(()));
        assert_eq!(check(&r, &control(b"_GARB")), Ok(()));
        assert_eq!(check(&r, &control(b"P_PROGRAM")), Err(Violation::Function));
        assert_eq!(
            r.to_string(),
            "functions plc-control; pi-services compress,insert"
        );
    }

    #[test]
    fn tsaps_come_from_the_connection_request() {
        let r = rule("preset = \"read-only\"\ntsaps = [\"0x0102\"]");
        let mut s = Session::default();
        let mut feed = |bytes: &[u8]| -> Option<Result<(), Violation>> {
            let msg = s
                .message(bytes, bytes.len(), Dir::Request, &mut [])?
                .unwrap();
            let gk_inspect::Message::S7(m) = msg else {
                panic!()
            };
            m.is_request().then(|| r.check(&m))
        };
        let mut out = [0u8; 64];
        let cr = |called: &[u8], out: &mut [u8; 64]| {
            let n = ConnectRepr {
                confirm: false,
                dst_ref: 0,
                src_ref: 1,
                tpdu_size: Some(10),
                calling: &[1, 0],
                called,
            }
            .emit(out)
            .unwrap();
            out[..n].to_vec()
        };
        let slot2 = cr(&gk_inspect::s7::tsap(1, 0, 2), &mut out);
        assert_eq!(feed(&slot2), None, "not judged");
        assert_eq!(feed(&read(1)), Some(Ok(())));
        let slot3 = cr(&gk_inspect::s7::tsap(1, 0, 3), &mut out);
        feed(&slot3);
        assert_eq!(feed(&read(1)), Some(Err(Violation::Unit)));
        // Without a connection request, the TSAP is unknown: outside.
        assert_eq!(check(&r, &read(1)), Err(Violation::Unit));
    }

    #[test]
    fn s7comm_plus_as_a_whole() {
        let mut out = [0u8; 128];
        let n = PlusRepr {
            version: PlusVersion::V3,
            opcode: PlusOpcode::Request,
            function: 0x04ca,
            sequence: 1,
            body: &[],
            last: true,
        }
        .emit(&mut out)
        .unwrap();
        let plus = &out[..n];
        assert_eq!(
            check(&rule("preset = \"programming\""), plus),
            Err(Violation::Function)
        );
        assert_eq!(check(&rule("preset = \"all\""), plus), Ok(()));
        assert_eq!(check(&rule("functions = [\"s7comm-plus\"]"), plus), Ok(()));
        assert_eq!(
            check(&rule("functions = [\"read-var\"]"), plus),
            Err(Violation::Function)
        );
    }

    #[test]
    fn bad_names_are_errors_with_their_place() {
        let toml = "schema = 1\n[gatekeeper]\nname = \"t\"\nmode = \"enforce\"\n[[rule]]\nname = \"r\"\nfrom = \"any\"\nto = \"any\"\nproto = \"s7\"\naction = \"allow\"\n[rule.s7]\nfunctions = [\"read-var\", \"format-c\"]\nareas = [\"dbx\"]\npi-services = [\"start-it\"]\npreset = \"readonly\"\n";
        let err = crate::Policy::from_toml(toml, "t.toml").unwrap_err();
        let lines: Vec<String> = err.errors().map(|d| d.to_string()).collect();
        assert!(
            lines
                .iter()
                .any(|l| l
                    .starts_with("t.toml:12:26: error: rule \"r\": unknown function \"format-c\"")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("t.toml:13:10: error: rule \"r\": unknown area \"dbx\"")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("unknown PI service \"start-it\"")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("unknown preset \"readonly\"")),
            "{lines:?}"
        );
    }

    #[test]
    fn covers_is_sound() {
        let wide = rule("preset = \"read-write\"");
        let narrow = rule("preset = \"read-only\"\ndbs = [1]");
        assert!(wide.covers(&narrow) && !narrow.covers(&wide));
        let pi = rule("functions = [\"plc-control\"]\npi-services = [\"insert\"]");
        let any_pi = rule("functions = [\"plc-control\"]");
        assert!(any_pi.covers(&pi) && !pi.covers(&any_pi));
    }
}
