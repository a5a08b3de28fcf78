//! The policy file exactly as written: serde structs that only check shape, with spans.
//!
//! Nothing outside this crate sees these; `compile` turns them into validated tables.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_spanned::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawPolicy {
    pub schema: Spanned<i64>,
    pub inspection: Option<RawInspection>,
    pub gatekeeper: RawGatekeeper,
    pub l2: Option<RawL2>,
    #[serde(default)]
    pub hosts: BTreeMap<Spanned<String>, Spanned<RawHost>>,
    #[serde(default)]
    pub rule: Vec<Spanned<RawRule>>,
    #[serde(default)]
    pub health: Vec<Spanned<RawHealth>>,
    pub flows: Option<RawFlows>,
    pub events: Option<RawEvents>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawGatekeeper {
    pub name: Spanned<String>,
    pub mode: RawMode,
    #[serde(default)]
    pub link_propagation: bool,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawMode {
    Enforce,
    Monitor,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawL2 {
    pub ethertypes: Option<Spanned<Items>>,
    pub vlans: Option<Spanned<Items>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawHost {
    pub ip: Option<Spanned<Items>>,
    pub mac: Option<Spanned<String>>,
}

/// Every key is optional here so that a missing one is reported with the rule's line,
/// alongside every other error, rather than as serde's lone first error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawRule {
    pub name: Option<Spanned<String>>,
    pub from: Option<Spanned<Items>>,
    pub to: Option<Spanned<Items>>,
    pub proto: Option<Spanned<Scalar>>,
    pub ports: Option<Spanned<Items>>,
    pub icmp: Option<Spanned<Items>>,
    pub action: Option<RawAction>,
    pub log: Option<Spanned<bool>>,
    /// What happens to a TCP conversation when a message in it is denied.
    pub on_deny: Option<Spanned<String>>,
    // Protocol sections: at most the one that `proto` names.
    pub modbus: Option<Spanned<crate::app::modbus::Raw>>,
    pub dnp3: Option<Spanned<crate::app::dnp3::Raw>>,
    pub enip: Option<Spanned<crate::app::enip::Raw>>,
    pub enip_io: Option<Spanned<crate::app::enip::RawIo>>,
    pub s7: Option<Spanned<crate::app::s7::Raw>>,
    pub iec104: Option<Spanned<crate::app::iec104::Raw>>,
    pub opcua: Option<Spanned<crate::app::opcua::Raw>>,
    pub bacnet: Option<Spanned<crate::app::bacnet::Raw>>,
}

/// `[[health]]`: traffic that must keep flowing after a new bundle is applied.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawHealth {
    pub name: Option<Spanned<String>>,
    pub from: Option<Spanned<Items>>,
    pub to: Option<Spanned<Items>>,
    pub proto: Option<Spanned<Scalar>>,
    pub ports: Option<Spanned<Items>>,
    pub within: Option<Spanned<i64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawAction {
    Allow,
    Deny,
    Alert,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawFlows {
    pub capacity: Option<Spanned<i64>>,
    pub tcp_syn_timeout: Option<Spanned<i64>>,
    pub tcp_established_timeout: Option<Spanned<i64>>,
    pub tcp_closing_timeout: Option<Spanned<i64>>,
    pub udp_timeout: Option<Spanned<i64>>,
    pub icmp_timeout: Option<Spanned<i64>>,
    pub other_timeout: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawInspection {
    pub streams: Option<Spanned<i64>>,
    pub buffer: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawEvents {
    pub rate: Option<Spanned<i64>>,
    pub burst: Option<Spanned<i64>>,
}

/// A string or an integer: ports, VLANs, ethertypes and ICMP types take either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scalar {
    Int(i64),
    Str(String),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Int(n) => write!(f, "{n}"),
            Scalar::Str(s) => write!(f, "{s:?}"),
        }
    }
}

struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an integer")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        i64::try_from(v)
            .map(Scalar::Int)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_string()))
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// One scalar or a list of them. A list keeps each element's span; a lone scalar has
/// none of its own and borrows its key's (see [`items`]).
#[derive(Debug, Clone)]
pub(crate) struct Items(pub Vec<(Scalar, Option<Range<usize>>)>);

impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ItemsVisitor;
        impl<'de> Visitor<'de> for ItemsVisitor {
            type Value = Items;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, an integer or a list of them")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Items, E> {
                ScalarVisitor.visit_i64(v).map(|s| Items(vec![(s, None)]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Items, E> {
                ScalarVisitor.visit_u64(v).map(|s| Items(vec![(s, None)]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Items, E> {
                ScalarVisitor.visit_str(v).map(|s| Items(vec![(s, None)]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<Scalar>>()? {
                    let span = item.span();
                    items.push((item.into_inner(), Some(span)));
                }
                Ok(Items(items))
            }
        }
        d.deserialize_any(ItemsVisitor)
    }
}

/// The elements of a one-or-list key, each with the span to blame for it.
pub(crate) fn items(field: &Spanned<Items>) -> impl Iterator<Item = (&Scalar, Range<usize>)> {
    let outer = field.span();
    field
        .get_ref()
        .0
        .iter()
        .map(move |(s, span)| (s, span.clone().unwrap_or(outer.clone())))
}
