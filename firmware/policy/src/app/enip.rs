//! `[rule.enip]`.
//!
//! PLACEHOLDER until the protocol lands: the section takes no keys and allows every
//! well-formed message. `modbus.rs` shows the shape this module follows.

use std::fmt;

use gk_inspect::enip::{IoMessage, Message};
use serde::Deserialize;
use serde_spanned::Spanned;

use super::Violation;
use crate::diag::Diags;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Raw {}

/// A compiled `[rule.enip]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnipRule {}

pub(crate) fn compile(_d: &mut Diags<'_>, _label: &str, _raw: Option<&Spanned<Raw>>) -> EnipRule {
    EnipRule {}
}

impl EnipRule {
    #[inline]
    pub fn check(&self, _msg: &Message<'_>) -> Result<(), Violation> {
        Ok(())
    }

    pub fn covers(&self, _other: &EnipRule) -> bool {
        true
    }
}

impl fmt::Display for EnipRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("every message")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawIo {}

/// A compiled `[rule.enip-io]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnipIoRule {}

pub(crate) fn compile_io(
    _d: &mut Diags<'_>,
    _label: &str,
    _raw: Option<&Spanned<RawIo>>,
) -> EnipIoRule {
    EnipIoRule {}
}

impl EnipIoRule {
    #[inline]
    pub fn check(&self, _msg: &IoMessage<'_>) -> Result<(), Violation> {
        Ok(())
    }

    pub fn covers(&self, _other: &EnipIoRule) -> bool {
        true
    }
}

impl fmt::Display for EnipIoRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("every message")
    }
}
