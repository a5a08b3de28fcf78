//! `[rule.modbus]`: units, functions (with presets), data addresses, diagnostics
//! sub-functions.
//!
//! ```toml
//! [rule.modbus]
//! units = [1]                                   # default: every unit
//! preset = "read-only"                          # read-only | read-write | programming | all
//! functions = ["write-single-register", 65]     # added to the preset
//! addresses = ["0-999"]                         # every address a request touches
//! diagnostics = ["return-query-data"]           # sub-functions of `diagnostics` (8)
//! ```

use std::fmt;

use gk_inspect::modbus::{Adu, Diagnostic, Function, MeiType};
use serde::Deserialize;
use serde_spanned::Spanned;

use super::{codes, known_names, preset, ranges, Preset, Ranges, Violation};
use crate::diag::Diags;
use crate::raw::Items;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Raw {
    pub preset: Option<Spanned<String>>,
    pub functions: Option<Spanned<Items>>,
    pub units: Option<Spanned<Items>>,
    pub addresses: Option<Spanned<Items>>,
    pub diagnostics: Option<Spanned<Items>>,
}

const READS: &[u8] = &[1, 2, 3, 4, 7, 11, 12, 17, 20, 24];
const WRITES: &[u8] = &[5, 6, 15, 16, 21, 22, 23];
/// Modbus reserves 65-72 and 100-110 for user-defined functions.
const USER_DEFINED: [(u32, u32); 2] = [(65, 72), (100, 110)];

/// MEI type "function" keys live above the function codes: 256 + MEI type.
const MEI_BASE: u32 = 256;

/// What each preset holds here:
/// - `read-only`: Reads of the four tables, FIFO and file records, status and identification.
/// - `read-write`: Read-only and every write function.
/// - `programming`: Read-write, diagnostics, every MEI type, Schneider UMAS and the user-defined codes vendors use for configuration and programming.
/// - `all`: Every function code.
trait ModbusSets {
    fn functions(self) -> Vec<(u32, u32)>;
}

impl ModbusSets for Preset {
    /// Function codes and (as 256 + type) the MEI types of function 43.
    fn functions(self) -> Vec<(u32, u32)> {
        let mut v: Vec<(u32, u32)> = READS.iter().map(|&c| (c.into(), c.into())).collect();
        let read_device_id = MEI_BASE + u32::from(u8::from(MeiType::ReadDeviceIdentification));
        v.push((43, 43));
        v.push((read_device_id, read_device_id));
        if self == Preset::ReadOnly {
            return v;
        }
        v.extend(WRITES.iter().map(|&c| (c.into(), c.into())));
        if self == Preset::ReadWrite {
            return v;
        }
        v.extend([(8, 8), (90, 90), (MEI_BASE, MEI_BASE + 255)]);
        v.extend(USER_DEFINED);
        if self == Preset::All {
            v.push((1, 127));
        }
        v
    }
}

/// A compiled `[rule.modbus]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModbusRule {
    pub preset: Option<Preset>,
    /// Unit ids (0-255).
    pub units: Ranges,
    /// Function codes (1-127), and 256 + MEI type for function 43.
    pub functions: Ranges,
    /// Data addresses (0-65535) every block a request touches must lie in.
    pub addresses: Ranges,
    /// Diagnostics sub-functions (0-65535).
    pub diagnostics: Ranges,
}

/// Every name `functions` accepts: function codes, and the MEI types of function 43
/// (`read-device-identification`) on their own.
fn lookup_function(name: &str) -> Option<Vec<u32>> {
    if let Some(mei) = MeiType::from_name(name) {
        return Some(vec![43, MEI_BASE + u32::from(u8::from(mei))]);
    }
    let f = Function::from_name(name)?;
    let code = u32::from(u8::from(f));
    if f == Function::EncapsulatedInterface {
        return Some((MEI_BASE..=MEI_BASE + 255).chain([code]).collect());
    }
    Some(vec![code])
}

pub(crate) fn compile(d: &mut Diags<'_>, label: &str, raw: Option<&Spanned<Raw>>) -> ModbusRule {
    let mut rule = ModbusRule {
        preset: None,
        units: Ranges::all(255),
        functions: Ranges::new(Preset::All.functions()),
        addresses: Ranges::all(65535),
        diagnostics: Ranges::all(65535),
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
        let known = format!(
            "{}, {}",
            known_names(Function::NAMES),
            known_names(MeiType::NAMES)
        );
        codes(d, label, "function", f, 127, lookup_function, &known)
    });
    // A 43 written as a number allows every MEI type, like its name.
    let listed = listed.map(|l| {
        if l.contains(43) {
            l.union(&Ranges::new(vec![(MEI_BASE, MEI_BASE + 255)]))
        } else {
            l
        }
    });
    rule.functions = match (preset, listed) {
        (Some(p), Some(l)) => Ranges::new(p.functions()).union(&l),
        (Some(p), None) => Ranges::new(p.functions()),
        (None, Some(l)) => l,
        (None, None) => rule.functions,
    };
    if let Some(f) = &raw.units {
        rule.units = ranges(d, label, "unit", f, 0, 255).unwrap_or(rule.units);
    }
    if let Some(f) = &raw.addresses {
        rule.addresses = ranges(d, label, "address", f, 0, 65535).unwrap_or(rule.addresses);
    }
    if let Some(f) = &raw.diagnostics {
        if !rule.functions.contains(8) {
            d.warn(
                &f.span(),
                format!("{label}: `diagnostics` has no effect: the rule does not allow function diagnostics (8)"),
            );
        }
        let lookup = |n: &str| Diagnostic::from_name(n).map(|s| vec![u32::from(u16::from(s))]);
        let known = known_names(Diagnostic::NAMES);
        let subs = codes(
            d,
            label,
            "diagnostics sub-function",
            f,
            65535,
            lookup,
            &known,
        );
        rule.diagnostics = subs.unwrap_or(rule.diagnostics);
    }
    rule
}

impl ModbusRule {
    /// Whether a request is inside the rule. Checked in the order unit, function,
    /// addresses, so the violation names the first field that failed.
    #[inline]
    pub fn check(&self, adu: &Adu<'_>) -> Result<(), Violation> {
        if !self.units.contains(adu.unit().into()) {
            return Err(Violation::Unit);
        }
        let function = u8::from(adu.function());
        if !self.functions.contains(function.into()) {
            return Err(Violation::Function);
        }
        if let Some(mei) = adu.mei_type() {
            if !self.functions.contains(MEI_BASE + u32::from(u8::from(mei))) {
                return Err(Violation::Function);
            }
        }
        if let Some(sub) = adu.diagnostic() {
            if !self.diagnostics.contains(u16::from(sub).into()) {
                return Err(Violation::Function);
            }
        }
        for range in adu.ranges() {
            let lo = u32::from(range.start);
            let hi = lo + u32::from(range.count).saturating_sub(1);
            if !self.addresses.contains_range(lo, hi) {
                return Err(Violation::Address);
            }
        }
        Ok(())
    }

    pub fn covers(&self, other: &ModbusRule) -> bool {
        self.units.covers(&other.units)
            && self.functions.covers(&other.functions)
            && self.addresses.covers(&other.addresses)
            && self.diagnostics.covers(&other.diagnostics)
    }
}

impl fmt::Display for ModbusRule {
    /// `units 1; functions read-coils,...; addresses 0-999`, leaving out what is
    /// unrestricted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if !self.units.is_all(255) {
            parts.push(format!("units {}", self.units));
        }
        let preset_functions = self.preset.map(|p| Ranges::new(p.functions()));
        match (&self.preset, preset_functions) {
            (Some(p), Some(pf)) if pf == self.functions => {
                parts.push(format!("preset {}", p.name()))
            }
            _ if self.functions == Ranges::new(Preset::All.functions()) => {}
            _ => {
                let names: Vec<String> = self
                    .functions
                    .values()
                    .filter_map(|v| {
                        if v >= MEI_BASE {
                            let mei = MeiType::from((v - MEI_BASE) as u8);
                            // Listed only when function 43 as a whole is not.
                            let all = self.functions.contains_range(MEI_BASE, MEI_BASE + 255);
                            (!all).then(|| format!("43/{mei}"))
                        } else {
                            let func = Function::from(v as u8);
                            if v == 43 && !self.functions.contains_range(MEI_BASE, MEI_BASE + 255) {
                                return None;
                            }
                            Some(func.to_string())
                        }
                    })
                    .collect();
                parts.push(format!("functions {}", names.join(",")));
            }
        }
        if !self.addresses.is_all(65535) {
            parts.push(format!("addresses {}", self.addresses));
        }
        if !self.diagnostics.is_all(65535) {
            parts.push(format!("diagnostics {}", self.diagnostics));
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
    use gk_inspect::{modbus, Dir};

    fn adu(body: modbus::RequestBody<'_>, unit: u8) -> Vec<u8> {
        let mut out = [0u8; modbus::MAX_ADU];
        let n = modbus::RequestRepr {
            transaction_id: 1,
            unit,
            body,
        }
        .emit(&mut out)
        .unwrap();
        out[..n].to_vec()
    }

    fn check(rule: &ModbusRule, bytes: &[u8]) -> Result<(), Violation> {
        let a = modbus::parse(bytes, bytes.len(), Dir::Request).unwrap();
        rule.check(&a)
    }

    #[test]
    fn presets_nest() {
        let ro = Ranges::new(Preset::ReadOnly.functions());
        let rw = Ranges::new(Preset::ReadWrite.functions());
        let pr = Ranges::new(Preset::Programming.functions());
        let all = Ranges::new(Preset::All.functions());
        assert!(rw.covers(&ro) && pr.covers(&rw) && all.covers(&pr));
        assert!(!ro.contains(6) && rw.contains(6) && !rw.contains(8) && pr.contains(90));
        assert!(ro.contains(MEI_BASE + 14) && !ro.contains(MEI_BASE + 13));
    }

    #[test]
    fn check_names_the_first_failing_field() {
        let rule = ModbusRule {
            preset: Some(Preset::ReadOnly),
            units: Ranges::new(vec![(1, 1)]),
            functions: Ranges::new(Preset::ReadOnly.functions()),
            addresses: Ranges::new(vec![(0, 999)]),
            diagnostics: Ranges::all(65535),
        };
        let read = |start, count, unit| {
            adu(
                modbus::RequestBody::Read {
                    function: Function::ReadHoldingRegisters,
                    start,
                    count,
                },
                unit,
            )
        };
        assert_eq!(check(&rule, &read(0, 10, 1)), Ok(()));
        assert_eq!(check(&rule, &read(990, 10, 1)), Ok(()));
        assert_eq!(check(&rule, &read(991, 10, 1)), Err(Violation::Address));
        assert_eq!(check(&rule, &read(0, 10, 2)), Err(Violation::Unit));
        let write = adu(
            modbus::RequestBody::WriteRegister {
                address: 5,
                value: 1,
            },
            1,
        );
        assert_eq!(check(&rule, &write), Err(Violation::Function));
        let dev_id = adu(
            modbus::RequestBody::Raw {
                function: 43,
                data: &[14, 1, 0],
            },
            1,
        );
        assert_eq!(check(&rule, &dev_id), Ok(()));
        let canopen = adu(
            modbus::RequestBody::Raw {
                function: 43,
                data: &[13, 0],
            },
            1,
        );
        assert_eq!(check(&rule, &canopen), Err(Violation::Function));
    }

    #[test]
    fn both_blocks_of_function_23_are_checked() {
        let rule = ModbusRule {
            preset: None,
            units: Ranges::all(255),
            functions: Ranges::new(vec![(23, 23)]),
            addresses: Ranges::new(vec![(0, 99)]),
            diagnostics: Ranges::all(65535),
        };
        let rw = |write_start| {
            adu(
                modbus::RequestBody::ReadWrite {
                    read_start: 0,
                    read_count: 10,
                    write_start,
                    values: &[1, 2],
                },
                1,
            )
        };
        assert_eq!(check(&rule, &rw(98)), Ok(()));
        assert_eq!(check(&rule, &rw(99)), Err(Violation::Address));
    }
}
