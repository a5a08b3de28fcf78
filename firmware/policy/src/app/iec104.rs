//! `[rule.iec104]`.
//!
//! PLACEHOLDER until the protocol lands: the section takes no keys and allows every
//! well-formed message. `modbus.rs` shows the shape this module follows.

use std::fmt;

use gk_inspect::iec104::Apdu;
use serde::Deserialize;
use serde_spanned::Spanned;

use super::Violation;
use crate::diag::Diags;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Raw {}

/// A compiled `[rule.iec104]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iec104Rule {}

pub(crate) fn compile(_d: &mut Diags<'_>, _label: &str, _raw: Option<&Spanned<Raw>>) -> Iec104Rule {
    Iec104Rule {}
}

impl Iec104Rule {
    #[inline]
    pub fn check(&self, _msg: &Apdu<'_>) -> Result<(), Violation> {
        Ok(())
    }

    pub fn covers(&self, _other: &Iec104Rule) -> bool {
        true
    }
}

impl fmt::Display for Iec104Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("every message")
    }
}
