//! `[rule.opcua]`.
//!
//! PLACEHOLDER until the protocol lands: the section takes no keys and allows every
//! well-formed message. `modbus.rs` shows the shape this module follows.

use std::fmt;

use gk_inspect::opcua::Message;
use serde::Deserialize;
use serde_spanned::Spanned;

use super::Violation;
use crate::diag::Diags;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Raw {}

/// A compiled `[rule.opcua]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpcUaRule {}

pub(crate) fn compile(_d: &mut Diags<'_>, _label: &str, _raw: Option<&Spanned<Raw>>) -> OpcUaRule {
    OpcUaRule {}
}

impl OpcUaRule {
    #[inline]
    pub fn check(&self, _msg: &Message<'_>) -> Result<(), Violation> {
        Ok(())
    }

    pub fn covers(&self, _other: &OpcUaRule) -> bool {
        true
    }
}

impl fmt::Display for OpcUaRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("every message")
    }
}
