//! `[rule.iec104]`: common addresses, type identifications (with presets and friendly
//! aliases), causes of transmission, information object addresses.
//!
//! ```toml
//! [rule.iec104]
//! common-addresses = [1]                        # default: every common address
//! preset = "read-only"                          # read-only | read-write | programming | all
//! types = ["single-command", "c-se-nc-1", 103]  # added to the preset
//! causes = ["activation", "deactivation"]       # default: every cause
//! ioas = ["5000-5999"]                          # every object address an ASDU touches
//! ```
//!
//! The section judges what the controlling station sends in I-frames (and commands a
//! controlled station sends in the reverse direction, with the roles swapped); S- and
//! U-frames and the controlled station's data are checked for shape only (see
//! `gk_inspect::iec104::Apdu::is_request`).

use std::fmt;

use gk_inspect::iec104::{Apdu, Cause, TypeId, MAX_IOA};
use serde::Deserialize;
use serde_spanned::Spanned;

use super::{codes, fmt_codes, known_names, preset, ranges, Preset, Ranges, Violation};
use crate::diag::Diags;
use crate::raw::{items, Items, Scalar};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Raw {
    pub preset: Option<Spanned<String>>,
    pub types: Option<Spanned<Items>>,
    pub causes: Option<Spanned<Items>>,
    pub common_addresses: Option<Spanned<Items>>,
    pub ioas: Option<Spanned<Items>>,
}

/// C_IC_NA_1, C_CI_NA_1, C_RD_NA_1, C_TS_NA_1, C_TS_TA_1.
const READS: &[(u32, u32)] = &[(100, 102), (104, 104), (107, 107)];
/// C_SC_NA_1 … C_BO_NA_1, C_SC_TA_1 … C_BO_TA_1, C_CS_NA_1, C_CD_NA_1.
const WRITES: &[(u32, u32)] = &[(45, 51), (58, 64), (103, 103), (106, 106)];
/// C_RP_NA_1, P_ME_NA_1 … P_AC_NA_1, F_FR_NA_1 … F_SC_NB_1, the private range.
const PROGRAMMING: &[(u32, u32)] = &[(105, 105), (110, 113), (120, 127), (128, 255)];

/// Friendly names for types and groups of types, accepted next to the mnemonics.
pub const ALIASES: &[(&str, &[(u32, u32)])] = &[
    ("single-point", &[(1, 1)]),
    ("double-point", &[(3, 3)]),
    ("step-position", &[(5, 5)]),
    ("bitstring", &[(7, 7)]),
    ("measured-normalized", &[(9, 9)]),
    ("measured-scaled", &[(11, 11)]),
    ("measured-float", &[(13, 13)]),
    ("integrated-totals", &[(15, 15)]),
    ("single-command", &[(45, 45)]),
    ("double-command", &[(46, 46)]),
    ("regulating-step-command", &[(47, 47)]),
    ("setpoint-normalized", &[(48, 48)]),
    ("setpoint-scaled", &[(49, 49)]),
    ("setpoint-float", &[(50, 50)]),
    ("bitstring-command", &[(51, 51)]),
    ("single-command-with-time", &[(58, 58)]),
    ("double-command-with-time", &[(59, 59)]),
    ("regulating-step-command-with-time", &[(60, 60)]),
    ("setpoint-normalized-with-time", &[(61, 61)]),
    ("setpoint-scaled-with-time", &[(62, 62)]),
    ("setpoint-float-with-time", &[(63, 63)]),
    ("bitstring-command-with-time", &[(64, 64)]),
    ("end-of-initialization", &[(70, 70)]),
    ("interrogation", &[(100, 100)]),
    ("counter-interrogation", &[(101, 101)]),
    ("read", &[(102, 102)]),
    ("clock-sync", &[(103, 103)]),
    ("test", &[(104, 104)]),
    ("reset-process", &[(105, 105)]),
    ("delay-acquisition", &[(106, 106)]),
    ("test-with-time", &[(107, 107)]),
    ("parameter-normalized", &[(110, 110)]),
    ("parameter-scaled", &[(111, 111)]),
    ("parameter-float", &[(112, 112)]),
    ("parameter-activation", &[(113, 113)]),
    ("file-ready", &[(120, 120)]),
    ("section-ready", &[(121, 121)]),
    ("file-call", &[(122, 122)]),
    ("last-section", &[(123, 123)]),
    ("file-ack", &[(124, 124)]),
    ("file-segment", &[(125, 125)]),
    ("file-directory", &[(126, 126)]),
    ("log-query", &[(127, 127)]),
    // Groups.
    ("commands", &[(45, 51), (58, 64)]),
    ("setpoints", &[(48, 50), (61, 63)]),
    ("parameters", &[(110, 113)]),
    ("file-transfer", &[(120, 127)]),
    ("private", &[(128, 255)]),
];

/// What each preset holds here:
/// - `read-only`: Interrogation, counter interrogation, read and the test commands: the controlling station asks for data and changes nothing.
/// - `read-write`: Read-only, every process command (single, double, regulating step, setpoints, bitstring; with and without time tag), clock synchronisation and delay acquisition.
/// - `programming`: Read-write, reset process, parameter loading and activation (P_*), file transfer (F_*) and the private range 128-255 vendors use for engineering.
/// - `all`: Every type identification.
trait Iec104Sets {
    fn types(self) -> Vec<(u32, u32)>;
}

impl Iec104Sets for Preset {
    fn types(self) -> Vec<(u32, u32)> {
        let mut v = READS.to_vec();
        if self == Preset::ReadOnly {
            return v;
        }
        v.extend_from_slice(WRITES);
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

/// A compiled `[rule.iec104]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iec104Rule {
    pub preset: Option<Preset>,
    /// Common addresses of the ASDU (0-65535; 65535 is the global address).
    pub common_addresses: Ranges,
    /// Type identifications (0-255).
    pub types: Ranges,
    /// Causes of transmission (0-63).
    pub causes: Ranges,
    /// Information object addresses (0-16777215) every object an ASDU touches must
    /// lie in.
    pub ioas: Ranges,
}

/// Every name `types` accepts: the standard mnemonics and the aliases.
fn lookup_type(name: &str) -> Option<Vec<u32>> {
    if let Some(t) = TypeId::from_name(name) {
        return Some(vec![u32::from(u8::from(t))]);
    }
    let (_, ranges) = ALIASES.iter().find(|(n, _)| *n == name)?;
    Some(ranges.iter().flat_map(|&(lo, hi)| lo..=hi).collect())
}

fn lookup_cause(name: &str) -> Option<Vec<u32>> {
    Cause::from_name(name).map(|c| vec![u32::from(u8::from(c))])
}

/// Monitoring-direction types (1-44, 70) named in `types`: the controlled station
/// sends them, and what it sends is not judged, so listing them allows nothing a
/// controlling station normally sends.
fn monitoring_names(field: &Spanned<Items>) -> Vec<String> {
    items(field)
        .filter_map(|(item, _)| match item {
            Scalar::Str(s) => lookup_type(&s.to_ascii_lowercase())
                .filter(|v| v.iter().all(|&t| matches!(t, 1..=44 | 70)))
                .map(|_| s.clone()),
            Scalar::Int(_) => None,
        })
        .collect()
}

pub(crate) fn compile(d: &mut Diags<'_>, label: &str, raw: Option<&Spanned<Raw>>) -> Iec104Rule {
    let mut rule = Iec104Rule {
        preset: None,
        common_addresses: Ranges::all(65535),
        types: Ranges::new(Preset::All.types()),
        causes: Ranges::all(63),
        ioas: Ranges::all(MAX_IOA),
    };
    let Some(raw) = raw.map(Spanned::get_ref) else {
        return rule;
    };
    let preset = raw
        .preset
        .as_ref()
        .and_then(|p| preset(d, label, p, Preset::NAMES));
    rule.preset = preset;
    let listed = raw.types.as_ref().and_then(|f| {
        let known = "the standard mnemonics (c-sc-na-1, m-me-nc-1 …) and the aliases of \
                     config/protocols/iec104.md (single-command, interrogation, commands …)";
        let monitoring = monitoring_names(f);
        if !monitoring.is_empty() {
            d.warn(
                &f.span(),
                format!(
                    "{label}: `types` lists monitoring-direction types ({}): the controlled \
                     station sends those and they are not judged; the controlling station \
                     asks for data with interrogation (c-ic-na-1) or read (c-rd-na-1)",
                    monitoring.join(", ")
                ),
            );
        }
        codes(d, label, "type", f, 255, lookup_type, known)
    });
    rule.types = match (preset, listed) {
        (Some(p), Some(l)) => Ranges::new(p.types()).union(&l),
        (Some(p), None) => Ranges::new(p.types()),
        (None, Some(l)) => l,
        (None, None) => rule.types,
    };
    if let Some(f) = &raw.causes {
        let known = known_names(Cause::NAMES);
        rule.causes = codes(d, label, "cause", f, 63, lookup_cause, &known).unwrap_or(rule.causes);
    }
    if let Some(f) = &raw.common_addresses {
        rule.common_addresses =
            ranges(d, label, "common address", f, 0, 65535).unwrap_or(rule.common_addresses);
    }
    if let Some(f) = &raw.ioas {
        rule.ioas = ranges(d, label, "ioa", f, 0, MAX_IOA).unwrap_or(rule.ioas);
    }
    rule
}

impl Iec104Rule {
    /// Whether an APDU is inside the rule. Checked in the order common address, type,
    /// cause, object addresses, so the violation names the first field that failed.
    /// S- and U-frames carry nothing the section limits.
    #[inline]
    pub fn check(&self, msg: &Apdu<'_>) -> Result<(), Violation> {
        let Some(asdu) = msg.asdu() else {
            return Ok(());
        };
        if !self.common_addresses.contains(asdu.common_address().into()) {
            return Err(Violation::Unit);
        }
        if !self.types.contains(asdu.type_code().into()) {
            return Err(Violation::Function);
        }
        if !self.causes.contains(asdu.cause_code().into()) {
            return Err(Violation::Function);
        }
        if !self.ioas.is_all(MAX_IOA) {
            // Addresses that cannot be known (a type without a layout, several
            // objects) cannot be shown to be inside.
            let inside = asdu
                .addresses()
                .is_some_and(|mut a| a.all(|(lo, hi)| self.ioas.contains_range(lo, hi)));
            if !inside {
                return Err(Violation::Address);
            }
        }
        Ok(())
    }

    pub fn covers(&self, other: &Iec104Rule) -> bool {
        self.common_addresses.covers(&other.common_addresses)
            && self.types.covers(&other.types)
            && self.causes.covers(&other.causes)
            && self.ioas.covers(&other.ioas)
    }
}

impl fmt::Display for Iec104Rule {
    /// `common-addresses 1; preset read-only; ioas 5000-5999`, leaving out what is
    /// unrestricted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Codes<'r>(&'r Ranges, fn(u32) -> Option<&'static str>);
        impl fmt::Display for Codes<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt_codes(f, self.0, self.1)
            }
        }
        let mut parts: Vec<String> = Vec::new();
        if !self.common_addresses.is_all(65535) {
            parts.push(format!("common-addresses {}", self.common_addresses));
        }
        let all = Ranges::new(Preset::All.types());
        match self.preset {
            Some(p) if Ranges::new(p.types()) == self.types => {
                parts.push(format!("preset {}", p.name()))
            }
            _ if self.types == all => {}
            _ => {
                let name = |v: u32| TypeId::from(v as u8).name();
                parts.push(format!("types {}", Codes(&self.types, name)));
            }
        }
        if !self.causes.is_all(63) {
            let name = |v: u32| Cause::from(v as u8).name();
            parts.push(format!("causes {}", Codes(&self.causes, name)));
        }
        if !self.ioas.is_all(MAX_IOA) {
            parts.push(format!("ioas {}", self.ioas));
        }
        if parts.is_empty() {
            f.write_str("every type")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::AppRule;
    use crate::Policy;
    use gk_inspect::iec104::{self, ApduRepr, AsduRepr, ObjectsRepr};
    use gk_inspect::Dir;

    fn frame(type_id: TypeId, cause: Cause, ca: u16, objects: ObjectsRepr<'_>) -> Vec<u8> {
        let mut out = [0u8; iec104::MAX_APDU];
        let n = ApduRepr::I {
            send: 0,
            recv: 0,
            asdu: AsduRepr {
                type_id,
                cause,
                negative: false,
                test: false,
                originator: 0,
                common_address: ca,
                objects,
            },
        }
        .emit(&mut out)
        .unwrap();
        out[..n].to_vec()
    }

    fn one(type_id: TypeId, cause: Cause, ca: u16, ioa: u32, element: &[u8]) -> Vec<u8> {
        frame(type_id, cause, ca, ObjectsRepr::Each(&[(ioa, element)]))
    }

    fn check(rule: &Iec104Rule, bytes: &[u8]) -> Result<(), Violation> {
        let a = iec104::parse(bytes, bytes.len(), Dir::Request).unwrap();
        rule.check(&a)
    }

    /// The compiled section of the policy's only rule, and the warnings.
    fn section(body: &str) -> (Iec104Rule, Vec<String>) {
        let text = format!(
            "schema = 1\n[gatekeeper]\nname = \"t\"\nmode = \"enforce\"\n\
             [[rule]]\nname = \"r\"\nfrom = \"any\"\nto = \"any\"\nproto = \"iec104\"\n\
             action = \"allow\"\n[rule.iec104]\n{body}"
        );
        let (p, warnings) = Policy::from_toml(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
        let Some(AppRule::Iec104(rule)) = p.rules()[0].app.clone() else {
            panic!("not an iec104 rule")
        };
        (rule, warnings.iter().map(ToString::to_string).collect())
    }

    fn errors(body: &str) -> Vec<String> {
        let text = format!(
            "schema = 1\n[gatekeeper]\nname = \"t\"\nmode = \"enforce\"\n\
             [[rule]]\nname = \"r\"\nfrom = \"any\"\nto = \"any\"\nproto = \"iec104\"\n\
             action = \"allow\"\n[rule.iec104]\n{body}"
        );
        match Policy::from_toml(&text, "t.toml") {
            Ok(_) => panic!("accepted: {body}"),
            Err(e) => e.errors().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn presets_nest() {
        let ro = Ranges::new(Preset::ReadOnly.types());
        let rw = Ranges::new(Preset::ReadWrite.types());
        let pr = Ranges::new(Preset::Programming.types());
        let all = Ranges::new(Preset::All.types());
        assert!(rw.covers(&ro) && pr.covers(&rw) && all.covers(&pr));
        assert!(ro.contains(100) && ro.contains(102) && !ro.contains(103) && !ro.contains(45));
        assert!(rw.contains(45) && rw.contains(63) && rw.contains(103) && !rw.contains(105));
        assert!(pr.contains(105) && pr.contains(112) && pr.contains(125) && !pr.contains(1));
        assert!(all.is_all(255));
    }

    #[test]
    fn names_aliases_and_numbers() {
        let (r, w) =
            section("types = [\"c-sc-na-1\", \"double-command\", \"setpoints\", 107, \"110-111\"]");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            r.types.ranges(),
            &[(45, 46), (48, 50), (61, 63), (107, 107), (110, 111)]
        );
        assert_eq!(
            r.to_string(),
            "types c-sc-na-1,c-dc-na-1,c-se-na-1,c-se-nb-1,c-se-nc-1,c-se-ta-1,c-se-tb-1,\
             c-se-tc-1,c-ts-ta-1,p-me-na-1,p-me-nb-1"
        );
        let (r, _) = section(
            "preset = \"read-only\"\ncommon-addresses = [1, \"10-12\"]\n\
             causes = [\"activation\", \"deactivation\"]\nioas = [\"5000-5999\"]",
        );
        assert_eq!(
            r.to_string(),
            "common-addresses 1,10-12; preset read-only; causes activation,deactivation; \
             ioas 5000-5999"
        );
        let (r, _) = section("preset = \"read-only\"\ntypes = [\"clock-sync\"]");
        assert!(r.types.contains(103) && r.types.contains(100));
        let (r, _) = section("");
        assert_eq!(r.to_string(), "every type");
    }

    #[test]
    fn errors_and_warnings_point_at_the_place() {
        let e = errors("types = [\"c-sc-na-1\", \"c-zz-na-1\"]");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("t.toml:12:23: error: rule \"r\": unknown type \"c-zz-na-1\""),
            "{e:?}"
        );
        let e = errors("causes = [\"activation\", 64]");
        assert!(e[0].contains("unknown cause 64"), "{e:?}");
        let e = errors("ioas = [\"0-16777216\"]");
        assert!(e[0].contains("out of range (0-16777215)"), "{e:?}");
        let e = errors("preset = \"read-mostly\"");
        assert!(
            e[0].contains("unknown preset \"read-mostly\" (presets are: read-only, read-write, programming, all)"),
            "{e:?}"
        );
        let e = errors("units = [1]");
        assert!(e[0].contains("unknown field `units`"), "{e:?}");
        let (_, w) = section("types = [\"m-sp-na-1\", \"interrogation\"]");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("monitoring-direction types (m-sp-na-1)"),
            "{w:?}"
        );
    }

    #[test]
    fn check_names_the_first_failing_field() {
        let (rule, _) = section(
            "preset = \"read-write\"\ncommon-addresses = [1]\ncauses = [\"activation\", \"deactivation\"]\nioas = [\"5000-5099\"]",
        );
        let sc = |ca, cause, ioa| one(TypeId::CScNa1, cause, ca, ioa, &[0x01]);
        assert_eq!(check(&rule, &sc(1, Cause::Activation, 5000)), Ok(()));
        assert_eq!(check(&rule, &sc(1, Cause::Deactivation, 5099)), Ok(()));
        assert_eq!(
            check(&rule, &sc(2, Cause::Activation, 5000)),
            Err(Violation::Unit)
        );
        assert_eq!(
            check(&rule, &sc(1, Cause::Spontaneous, 5000)),
            Err(Violation::Function)
        );
        assert_eq!(
            check(&rule, &sc(1, Cause::Activation, 5100)),
            Err(Violation::Address)
        );
        let reset = one(TypeId::CRpNa1, Cause::Activation, 1, 0, &[1]);
        assert_eq!(check(&rule, &reset), Err(Violation::Function));
        // A station command with IOA 0 touches no object: the IOA ranges do not apply.
        let gi = one(TypeId::CIcNa1, Cause::Activation, 1, 0, &[20]);
        assert_eq!(check(&rule, &gi), Ok(()));
        let gi_broadcast = one(TypeId::CIcNa1, Cause::Activation, 65535, 0, &[20]);
        assert_eq!(check(&rule, &gi_broadcast), Err(Violation::Unit));
        // A read names the object it reads.
        let rd = one(TypeId::CRdNa1, Cause::Request, 1, 5001, &[]);
        assert_eq!(check(&rule, &rd), Err(Violation::Function), "cause request");
        // S- and U-frames carry nothing the section limits.
        let u = [0x68, 4, 0x07, 0, 0, 0];
        assert_eq!(check(&rule, &u), Ok(()));
    }

    #[test]
    fn every_object_and_sequences_are_checked() {
        let (rule, _) = section("preset = \"all\"\nioas = [\"100-199\"]");
        let seq = |ioa, count: u8| {
            let elements = vec![1u8; count as usize];
            frame(
                TypeId::MSpNa1,
                Cause::Spontaneous,
                1,
                ObjectsRepr::Sequence {
                    ioa,
                    count,
                    elements: &elements,
                },
            )
        };
        assert_eq!(check(&rule, &seq(100, 100)), Ok(()));
        assert_eq!(check(&rule, &seq(100, 101)), Err(Violation::Address));
        let each = |second| {
            frame(
                TypeId::MSpNa1,
                Cause::Spontaneous,
                1,
                ObjectsRepr::Each(&[(150, &[1]), (second, &[0])]),
            )
        };
        assert_eq!(check(&rule, &each(199)), Ok(()));
        assert_eq!(check(&rule, &each(200)), Err(Violation::Address));
        // A type without a layout: one object is known, several are not.
        let unknown = |objects| frame(TypeId::Unknown(200), Cause::Activation, 1, objects);
        assert_eq!(
            check(&rule, &unknown(ObjectsRepr::Each(&[(150, &[1, 2])]))),
            Ok(())
        );
        assert_eq!(
            check(
                &rule,
                &unknown(ObjectsRepr::Each(&[(150, &[1]), (151, &[2])]))
            ),
            Err(Violation::Address)
        );
        let (open, _) = section("preset = \"all\"");
        assert_eq!(
            check(
                &open,
                &unknown(ObjectsRepr::Each(&[(150, &[1]), (151, &[2])]))
            ),
            Ok(())
        );
    }

    #[test]
    fn covers_is_sound() {
        let (ro, _) = section("preset = \"read-only\"");
        let (rw, _) = section("preset = \"read-write\"\nioas = [\"0-10\"]");
        let (all, _) = section("");
        assert!(all.covers(&ro) && all.covers(&rw));
        assert!(!rw.covers(&ro), "rw limits addresses");
        assert!(!ro.covers(&rw));
    }
}
