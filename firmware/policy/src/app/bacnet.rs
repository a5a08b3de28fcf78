//! `[rule.bacnet]`.
//!
//! PLACEHOLDER until the protocol lands: the section takes no keys and allows every
//! well-formed message. `modbus.rs` shows the shape this module follows.

use std::fmt;

use gk_inspect::bacnet::Message;
use serde::Deserialize;
use serde_spanned::Spanned;

use super::Violation;
use crate::diag::Diags;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Raw {}

/// A compiled `[rule.bacnet]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BacnetRule {}

pub(crate) fn compile(_d: &mut Diags<'_>, _label: &str, _raw: Option<&Spanned<Raw>>) -> BacnetRule {
    BacnetRule {}
}

impl BacnetRule {
    #[inline]
    pub fn check(&self, _msg: &Message<'_>) -> Result<(), Violation> {
        Ok(())
    }

    pub fn covers(&self, _other: &BacnetRule) -> bool {
        true
    }
}

impl fmt::Display for BacnetRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("every message")
    }
}
