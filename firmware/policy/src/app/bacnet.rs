//! `[rule.bacnet]`: services (with presets), objects, properties and destination
//! networks of BACnet/IP requests.
//!
//! ```toml
//! [rule.bacnet]
//! preset = "read-only"                          # read-only | read-write | programming | all
//! services = ["write-property"]                 # added to the preset
//! objects = ["analog-value:1-10", "device"]     # object types, type:instance(-range)
//! properties = ["present-value", "priority-array"]
//! networks = [0, 5]                             # DNET of routed requests
//! ```
//!
//! `services` names confirmed and unconfirmed services, network-layer messages and the
//! BVLC functions that are requests to a BBMD, in one vocabulary (their names do not
//! collide). Plain numbers are confirmed service choices; the others are written
//! `"unconfirmed:N"`, `"network:N"` and `"bvlc:N"` (ranges too: `"network:128-255"`).
//! Requests are judged whichever way they travel (see `gk_inspect::bacnet`): the
//! device's own I-Am and notifications need a rule from the device too.

use std::fmt;

use gk_inspect::bacnet::{
    BvlcFunction, ConfirmedService, Message, NetworkMessage, ObjectType, PropertyId, Service,
    Target, UnconfirmedService, MAX_INSTANCE, MAX_PROPERTY,
};
use serde::Deserialize;
use serde_spanned::Spanned;

use super::{codes, known_names, parse_range, preset, ranges, Preset, Ranges, Violation};
use crate::diag::Diags;
use crate::raw::{items, Items, Scalar};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Raw {
    pub preset: Option<Spanned<String>>,
    pub services: Option<Spanned<Items>>,
    pub objects: Option<Spanned<Items>>,
    pub properties: Option<Spanned<Items>>,
    pub networks: Option<Spanned<Items>>,
}

/// Where each kind of code lives in the `services` key space.
const UNCONFIRMED: u32 = 256;
const NETWORK: u32 = 512;
const BVLC: u32 = 768;
const SERVICES_MAX: u32 = 1023;

use ConfirmedService as C;
use NetworkMessage as N;
use UnconfirmedService as U;

const READ_CONFIRMED: &[C] = &[
    C::ConfirmedCovNotification,
    C::ConfirmedEventNotification,
    C::GetAlarmSummary,
    C::GetEnrollmentSummary,
    C::SubscribeCov,
    C::AtomicReadFile,
    C::ReadProperty,
    C::ReadPropertyMultiple,
    C::ReadRange,
    C::SubscribeCovProperty,
    C::GetEventInformation,
    C::SubscribeCovPropertyMultiple,
    C::ConfirmedCovNotificationMultiple,
    C::ConfirmedAuditNotification,
    C::AuditLogQuery,
];
const READ_UNCONFIRMED: &[U] = &[
    U::IAm,
    U::IHave,
    U::UnconfirmedCovNotification,
    U::UnconfirmedEventNotification,
    U::WhoHas,
    U::WhoIs,
    U::UnconfirmedCovNotificationMultiple,
    U::UnconfirmedAuditNotification,
];
const READ_NETWORK: &[N] = &[
    N::WhoIsRouterToNetwork,
    N::IAmRouterToNetwork,
    N::WhatIsNetworkNumber,
    N::NetworkNumberIs,
];
const READ_BVLC: &[BvlcFunction] = &[BvlcFunction::ReadBdt, BvlcFunction::ReadFdt];

const WRITE_CONFIRMED: &[C] = &[
    C::AcknowledgeAlarm,
    C::AddListElement,
    C::RemoveListElement,
    C::WriteProperty,
    C::WritePropertyMultiple,
    C::ConfirmedTextMessage,
    C::LifeSafetyOperation,
];
const WRITE_UNCONFIRMED: &[U] = &[
    U::UnconfirmedTextMessage,
    U::TimeSynchronization,
    U::UtcTimeSynchronization,
    U::WriteGroup,
];

const PROGRAM_CONFIRMED: &[C] = &[
    C::AtomicWriteFile,
    C::CreateObject,
    C::DeleteObject,
    C::DeviceCommunicationControl,
    C::ConfirmedPrivateTransfer,
    C::ReinitializeDevice,
    C::VtOpen,
    C::VtClose,
    C::VtData,
];
const PROGRAM_UNCONFIRMED: &[U] = &[U::UnconfirmedPrivateTransfer, U::WhoAmI, U::YouAre];
const PROGRAM_BVLC: &[BvlcFunction] = &[
    BvlcFunction::WriteBdt,
    BvlcFunction::RegisterForeignDevice,
    BvlcFunction::DeleteFdtEntry,
    BvlcFunction::DistributeBroadcast,
    BvlcFunction::SecureBvll,
];

fn confirmed_key(s: C) -> u32 {
    u32::from(u8::from(s))
}

fn unconfirmed_key(s: U) -> u32 {
    UNCONFIRMED + u32::from(u8::from(s))
}

fn network_key(m: N) -> u32 {
    NETWORK + u32::from(u8::from(m))
}

fn bvlc_key(f: BvlcFunction) -> u32 {
    BVLC + u32::from(u8::from(f))
}

/// The network-layer messages that are requests (every one but the routing-table ACK
/// and reject-message-to-network, which report).
fn is_network_request(m: N) -> bool {
    !matches!(m, N::InitializeRoutingTableAck | N::RejectMessageToNetwork)
}

/// What each preset holds here:
/// - `read-only`: Discovery (who-is, who-has and their answers, router discovery), reads of properties, ranges, files, alarms and events, COV subscriptions and the notifications that answer them, reads of the BBMD's tables.
/// - `read-write`: Read-only, writes of properties and lists, write-group, alarm acknowledgement and life-safety operations, text messages, time synchronisation.
/// - `programming`: Read-write, objects created and deleted, file writes, reinitialize-device, device-communication-control, private transfers, virtual terminals, who-am-i/you-are, every network-layer message and BBMD management (foreign-device registration, table writes, distribute-broadcast).
/// - `all`: Every service, network message and BVLC function.
trait BacnetSets {
    fn services(self) -> Ranges;
}

impl BacnetSets for Preset {
    fn services(self) -> Ranges {
        let one = |k: u32| (k, k);
        if self == Preset::All {
            return Ranges::all(SERVICES_MAX);
        }
        let mut v: Vec<(u32, u32)> = Vec::new();
        v.extend(READ_CONFIRMED.iter().map(|&s| one(confirmed_key(s))));
        v.extend(READ_UNCONFIRMED.iter().map(|&s| one(unconfirmed_key(s))));
        v.extend(READ_NETWORK.iter().map(|&m| one(network_key(m))));
        v.extend(READ_BVLC.iter().map(|&f| one(bvlc_key(f))));
        if self == Preset::ReadOnly {
            return Ranges::new(v);
        }
        v.extend(WRITE_CONFIRMED.iter().map(|&s| one(confirmed_key(s))));
        v.extend(WRITE_UNCONFIRMED.iter().map(|&s| one(unconfirmed_key(s))));
        if self == Preset::ReadWrite {
            return Ranges::new(v);
        }
        v.extend(PROGRAM_CONFIRMED.iter().map(|&s| one(confirmed_key(s))));
        v.extend(PROGRAM_UNCONFIRMED.iter().map(|&s| one(unconfirmed_key(s))));
        v.extend(PROGRAM_BVLC.iter().map(|&f| one(bvlc_key(f))));
        v.extend(
            N::NAMES
                .iter()
                .map(|&(_, m)| N::from(m))
                .filter(|&m| is_network_request(m))
                .map(|m| one(network_key(m))),
        );
        // Proprietary network-layer messages.
        v.push((NETWORK + 0x80, NETWORK + 0xff));
        Ranges::new(v)
    }
}

/// A compiled `[rule.bacnet]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BacnetRule {
    pub preset: Option<Preset>,
    /// Confirmed services (0-255), unconfirmed (256 + choice), network-layer messages
    /// (512 + type) and BVLC functions (768 + function).
    pub services: Ranges,
    /// Object identifiers as on the wire: type << 22 | instance.
    pub objects: Ranges,
    /// Property identifiers (0-4194303).
    pub properties: Ranges,
    /// Destination networks (DNET, 0-65535) of routed requests.
    pub networks: Ranges,
}

/// The name of a key of the `services` space: its code's name, or a prefixed number.
fn service_name(key: u32) -> String {
    let code = (key & 0xff) as u8;
    let (name, prefix) = match key >> 8 {
        0 => (C::from(code).name(), ""),
        1 => (U::from(code).name(), "unconfirmed:"),
        2 => (N::from(code).name(), "network:"),
        _ => (BvlcFunction::from(code).name(), "bvlc:"),
    };
    match name {
        Some(n) => n.to_string(),
        None => format!("{prefix}{code}"),
    }
}

/// Every name `services` accepts, and the prefixed numbers.
fn lookup_service(name: &str) -> Option<Vec<u32>> {
    if let Some(s) = C::from_name(name) {
        return Some(vec![confirmed_key(s)]);
    }
    if let Some(s) = U::from_name(name) {
        return Some(vec![unconfirmed_key(s)]);
    }
    if let Some(m) = N::from_name(name).filter(|&m| is_network_request(m)) {
        return Some(vec![network_key(m)]);
    }
    if let Some(f) = BvlcFunction::from_name(name).filter(|f| bvlc_names().contains(f)) {
        return Some(vec![bvlc_key(f)]);
    }
    let (prefix, rest) = name.split_once(':')?;
    let base = match prefix {
        "confirmed" => 0,
        "unconfirmed" => UNCONFIRMED,
        "network" => NETWORK,
        "bvlc" => BVLC,
        _ => return None,
    };
    let (lo, hi) = parse_range(rest).filter(|&(lo, hi)| lo <= hi && hi <= 255)?;
    Some((base + lo..=base + hi).collect())
}

/// The BVLC functions that are requests (the ones `services` can name).
fn bvlc_names() -> &'static [BvlcFunction] {
    &[
        BvlcFunction::WriteBdt,
        BvlcFunction::ReadBdt,
        BvlcFunction::RegisterForeignDevice,
        BvlcFunction::ReadFdt,
        BvlcFunction::DeleteFdtEntry,
        BvlcFunction::DistributeBroadcast,
        BvlcFunction::SecureBvll,
    ]
}

fn known_services() -> String {
    let network: Vec<&str> = N::NAMES
        .iter()
        .filter(|&&(_, m)| is_network_request(N::from(m)))
        .map(|(n, _)| *n)
        .collect();
    let bvlc: Vec<&str> = bvlc_names().iter().filter_map(|f| f.name()).collect();
    format!(
        "{}, {}, {}, {}; \"unconfirmed:N\", \"network:N\", \"bvlc:N\" for other codes",
        known_names(C::NAMES),
        known_names(U::NAMES),
        network.join(", "),
        bvlc.join(", ")
    )
}

/// An object type by name or number (0-1023).
fn object_type(s: &str) -> Option<u32> {
    if let Some(t) = ObjectType::from_name(s) {
        return Some(u32::from(u16::from(t)));
    }
    parse_range(s)
        .filter(|&(lo, hi)| lo == hi && lo <= 1023)
        .map(|(t, _)| t)
}

/// An object item: a type (`"analog-value"`, `2`, `"0-5"` for types 0 to 5, every
/// instance), or a type with an instance or a range of them (`"analog-value:1-10"`,
/// `"device:1234"`, `"2:7"`). Returns inclusive ranges of object identifiers.
fn lookup_object(item: &Scalar) -> Option<(u32, u32)> {
    let whole =
        |lo: u32, hi: u32| (lo <= hi && hi <= 1023).then_some((lo << 22, hi << 22 | MAX_INSTANCE));
    match item {
        Scalar::Int(n) => {
            let t = u32::try_from(*n).ok()?;
            whole(t, t)
        }
        Scalar::Str(s) => {
            let s = s.trim().to_ascii_lowercase();
            match s.split_once(':') {
                Some((t, instances)) => {
                    let t = object_type(t.trim())?;
                    let (lo, hi) = if instances.trim() == "*" {
                        (0, MAX_INSTANCE)
                    } else {
                        parse_range(instances.trim())?
                    };
                    (lo <= hi && hi <= MAX_INSTANCE).then_some((t << 22 | lo, t << 22 | hi))
                }
                None => match object_type(&s) {
                    Some(t) => whole(t, t),
                    None => {
                        let (lo, hi) = parse_range(&s)?;
                        whole(lo, hi)
                    }
                },
            }
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
                    "{label}: unknown object {item} (objects are an object type, by name or \
                     number 0-1023, or \"type:instance\" and \"type:first-last\" with \
                     instances 0-4194303; types are: {})",
                    known_names(ObjectType::NAMES)
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

pub(crate) fn compile(d: &mut Diags<'_>, label: &str, raw: Option<&Spanned<Raw>>) -> BacnetRule {
    let mut rule = BacnetRule {
        preset: None,
        services: Preset::All.services(),
        objects: Ranges::all(u32::MAX),
        properties: Ranges::all(MAX_PROPERTY),
        networks: Ranges::all(65535),
    };
    let Some(raw) = raw.map(Spanned::get_ref) else {
        return rule;
    };
    let preset = raw
        .preset
        .as_ref()
        .and_then(|p| preset(d, label, p, Preset::NAMES));
    rule.preset = preset;
    let listed = raw.services.as_ref().and_then(|f| {
        codes(
            d,
            label,
            "service",
            f,
            255,
            lookup_service,
            &known_services(),
        )
    });
    rule.services = match (preset, listed) {
        (Some(p), Some(l)) => p.services().union(&l),
        (Some(p), None) => p.services(),
        (None, Some(l)) => l,
        (None, None) => rule.services,
    };
    if let Some(f) = &raw.objects {
        rule.objects = objects(d, label, f).unwrap_or(rule.objects);
    }
    if let Some(f) = &raw.properties {
        let lookup = |n: &str| PropertyId::from_name(n).map(|p| vec![u32::from(p)]);
        let known = "the standard's property identifiers in kebab-case, such as \
                     present-value, object-name, priority-array, out-of-service, all \
                     (config/protocols/bacnet.md)";
        rule.properties =
            codes(d, label, "property", f, MAX_PROPERTY, lookup, known).unwrap_or(rule.properties);
    }
    if let Some(f) = &raw.networks {
        rule.networks = ranges(d, label, "network", f, 0, 65535).unwrap_or(rule.networks);
    }
    rule
}

impl BacnetRule {
    /// Whether a request is inside the rule. Checked in the order services (the BVLC
    /// function, the network message or the service), destination network, objects
    /// and properties, so the violation names the first field that failed.
    #[inline]
    pub fn check(&self, msg: &Message<'_>) -> Result<(), Violation> {
        if let Some(f) = msg.bvlc_request() {
            if !self.services.contains(bvlc_key(f)) {
                return Err(Violation::Function);
            }
        }
        if let Some(m) = msg.network_request() {
            if !self.services.contains(network_key(m)) {
                return Err(Violation::Function);
            }
        }
        if let Some(s) = msg.service() {
            let key = match s {
                Service::Confirmed(s) => confirmed_key(s),
                Service::Unconfirmed(s) => unconfirmed_key(s),
            };
            if !self.services.contains(key) {
                return Err(Violation::Function);
            }
        }
        if let Some(dnet) = msg.dnet() {
            if !self.networks.contains(dnet.into()) {
                return Err(Violation::Address);
            }
        }
        if self.objects.is_all(u32::MAX) && self.properties.is_all(MAX_PROPERTY) {
            return Ok(());
        }
        for t in msg.targets() {
            let inside = match t {
                Target::Object(o) => self.objects.contains(o.raw()),
                Target::ObjectType(t) => {
                    let base = u32::from(u16::from(t)) << 22;
                    self.objects.contains_range(base, base | MAX_INSTANCE)
                }
                Target::Property(p) => self.properties.contains(p.into()),
                // What cannot be decoded cannot be shown to be inside.
                Target::Undecoded => false,
            };
            if !inside {
                return Err(Violation::Object);
            }
        }
        Ok(())
    }

    pub fn covers(&self, other: &BacnetRule) -> bool {
        self.services.covers(&other.services)
            && self.objects.covers(&other.objects)
            && self.properties.covers(&other.properties)
            && self.networks.covers(&other.networks)
    }
}

/// `analog-value:1-10,device,binary-output:3`
struct ObjectList<'r>(&'r Ranges);

impl fmt::Display for ObjectList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for &(lo, hi) in self.0.ranges() {
            for t in (lo >> 22)..=(hi >> 22) {
                let a = lo.max(t << 22) & MAX_INSTANCE;
                let b = hi.min(t << 22 | MAX_INSTANCE) & MAX_INSTANCE;
                let name = ObjectType::from(t as u16);
                if !first {
                    f.write_str(",")?;
                }
                first = false;
                if a == 0 && b == MAX_INSTANCE {
                    write!(f, "{name}")?;
                } else if a == b {
                    write!(f, "{name}:{a}")?;
                } else {
                    write!(f, "{name}:{a}-{b}")?;
                }
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

impl fmt::Display for BacnetRule {
    /// `preset read-only + write-property; objects analog-value:1-10; properties
    /// present-value`, leaving out what is unrestricted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        let base = self.preset.map(Preset::services);
        let extra = |base: Option<&Ranges>| -> Vec<String> {
            self.services
                .values()
                .filter(|v| !base.is_some_and(|b| b.contains(*v)))
                .map(service_name)
                .collect()
        };
        match (self.preset, &base) {
            _ if self.services == Preset::All.services() => {}
            (Some(p), Some(b)) if self.services.covers(b) => {
                let more = extra(Some(b));
                if more.is_empty() {
                    parts.push(format!("preset {}", p.name()));
                } else {
                    parts.push(format!("preset {} + {}", p.name(), more.join(",")));
                }
            }
            _ => parts.push(format!("services {}", extra(None).join(","))),
        }
        if !self.objects.is_all(u32::MAX) {
            parts.push(format!("objects {}", ObjectList(&self.objects)));
        }
        if !self.properties.is_all(MAX_PROPERTY) {
            let names: Vec<String> = self
                .properties
                .ranges()
                .iter()
                .map(|&(lo, hi)| {
                    let name = |v: u32| PropertyId::from(v).to_string();
                    if lo == hi {
                        name(lo)
                    } else if hi - lo < 8 {
                        (lo..=hi).map(name).collect::<Vec<_>>().join(",")
                    } else {
                        format!("{lo}-{hi}")
                    }
                })
                .collect();
            parts.push(format!("properties {}", names.join(",")));
        }
        if !self.networks.is_all(65535) {
            parts.push(format!("networks {}", self.networks));
        }
        if parts.is_empty() {
            f.write_str("every service")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gk_inspect::bacnet::{self, Body, Encoder, NpciRepr, ObjectId, Repr, Segment};
    use gk_inspect::Dir;

    fn rule(toml_section: &str) -> Result<BacnetRule, String> {
        let text = format!(
            "schema = 1\n[gatekeeper]\nname = \"t\"\nmode = \"enforce\"\n[[rule]]\nname = \"r\"\nfrom = \"any\"\n\
             to = \"any\"\nproto = \"bacnet\"\naction = \"allow\"\n[rule.bacnet]\n{toml_section}\n"
        );
        let (policy, warnings) =
            crate::Policy::from_toml(&text, "t.toml").map_err(|e| e.to_string())?;
        assert!(warnings.is_empty(), "{warnings:?}");
        match policy.rules()[0].app.clone() {
            Some(crate::AppRule::Bacnet(r)) => Ok(r),
            other => panic!("{other:?}"),
        }
    }

    fn av(i: u32) -> ObjectId {
        ObjectId::new(2, i).unwrap()
    }

    fn datagram(body: Body<'_>, dnet: Option<u16>) -> Vec<u8> {
        let mut out = [0u8; 256];
        let repr = Repr::Npdu {
            carrier: bacnet::Carrier::OriginalUnicast,
            npci: NpciRepr {
                destination: dnet.map(|n| (n, &[][..], 255)),
                ..NpciRepr::default()
            },
            body,
        };
        let n = repr.emit(&mut out).unwrap();
        out[..n].to_vec()
    }

    fn confirmed(service: ConfirmedService, data: &[u8]) -> Vec<u8> {
        datagram(
            Body::Confirmed {
                invoke_id: 1,
                service: service.into(),
                segment: None,
                data,
            },
            None,
        )
    }

    fn read(o: ObjectId, p: PropertyId) -> Vec<u8> {
        let mut d = [0u8; 32];
        let n = Encoder::new(&mut d)
            .read_property(o, p, None)
            .finish()
            .unwrap();
        confirmed(C::ReadProperty, &d[..n])
    }

    fn write(o: ObjectId, p: PropertyId) -> Vec<u8> {
        let mut d = [0u8; 32];
        let n = Encoder::new(&mut d)
            .write_property(o, p, &[0x44, 0x42, 0x90, 0, 0], Some(8))
            .finish()
            .unwrap();
        confirmed(C::WriteProperty, &d[..n])
    }

    fn check(rule: &BacnetRule, bytes: &[u8]) -> Result<(), Violation> {
        let m = bacnet::parse(bytes, Dir::Request).unwrap();
        assert!(m.is_request());
        rule.check(&m)
    }

    #[test]
    fn presets_nest() {
        let ro = Preset::ReadOnly.services();
        let rw = Preset::ReadWrite.services();
        let pr = Preset::Programming.services();
        let all = Preset::All.services();
        assert!(rw.covers(&ro) && pr.covers(&rw) && all.covers(&pr));
        let rp = confirmed_key(C::ReadProperty);
        let wp = confirmed_key(C::WriteProperty);
        let reinit = confirmed_key(C::ReinitializeDevice);
        assert!(ro.contains(rp) && !ro.contains(wp) && rw.contains(wp) && !rw.contains(reinit));
        assert!(pr.contains(reinit) && pr.contains(network_key(N::InitializeRoutingTable)));
        assert!(ro.contains(unconfirmed_key(U::WhoIs)) && ro.contains(unconfirmed_key(U::IAm)));
        assert!(!ro.contains(unconfirmed_key(U::TimeSynchronization)));
        assert!(!rw.contains(bvlc_key(BvlcFunction::RegisterForeignDevice)));
        assert!(pr.contains(bvlc_key(BvlcFunction::WriteBdt)));
        assert!(
            !pr.contains(confirmed_key(C::Authenticate)),
            "removed from the standard"
        );
    }

    #[test]
    fn services_objects_properties_networks() {
        let r = rule(
            r#"preset = "read-only"
services = ["write-property", "unconfirmed:10", "network:0x80-0x81"]
objects = ["analog-value:1-10", "device"]
properties = ["present-value", "object-name", 85, "512-520"]
networks = [5]"#,
        )
        .unwrap();
        assert_eq!(check(&r, &read(av(3), PropertyId::PresentValue)), Ok(()));
        assert_eq!(check(&r, &write(av(10), PropertyId::PresentValue)), Ok(()));
        assert_eq!(
            check(&r, &write(av(11), PropertyId::PresentValue)),
            Err(Violation::Object)
        );
        assert_eq!(
            check(
                &r,
                &read(ObjectId::new(8, 77).unwrap(), PropertyId::ObjectName)
            ),
            Ok(())
        );
        assert_eq!(
            check(&r, &read(av(3), PropertyId::PriorityArray)),
            Err(Violation::Object)
        );
        assert_eq!(check(&r, &read(av(3), PropertyId::Unknown(515))), Ok(()));
        let mut d = [0u8; 32];
        let n = Encoder::new(&mut d).raw(&[0x09, 0x01]).finish().unwrap();
        assert_eq!(
            check(&r, &confirmed(C::ReinitializeDevice, &d[..n])),
            Err(Violation::Function)
        );
        // Routed: network 5 is in, 6 is not.
        let mut d = [0u8; 32];
        let n = Encoder::new(&mut d)
            .read_property(av(1), PropertyId::PresentValue, None)
            .finish()
            .unwrap();
        let routed = |dnet| {
            datagram(
                Body::Confirmed {
                    invoke_id: 1,
                    service: 12,
                    segment: None,
                    data: &d[..n],
                },
                Some(dnet),
            )
        };
        assert_eq!(check(&r, &routed(5)), Ok(()));
        assert_eq!(check(&r, &routed(6)), Err(Violation::Address));
        // Who-Is names no object: objects do not limit it.
        let who_is = datagram(
            Body::Unconfirmed {
                service: 8,
                data: &[],
            },
            None,
        );
        assert_eq!(check(&r, &who_is), Ok(()));
        // A private transfer names what cannot be decoded: outside restricted objects.
        let r2 = rule("preset = \"programming\"\nobjects = [\"analog-value\"]").unwrap();
        let pt = confirmed(C::ConfirmedPrivateTransfer, &[0x09, 0x05, 0x19, 0x01]);
        assert_eq!(check(&r2, &pt), Err(Violation::Object));
        let r3 = rule("preset = \"programming\"").unwrap();
        assert_eq!(check(&r3, &pt), Ok(()));
    }

    #[test]
    fn create_object_by_type_needs_every_instance() {
        let mut d = [0u8; 32];
        let n = Encoder::new(&mut d)
            .opening(0)
            .enumerated(Some(0), 2)
            .closing(0)
            .finish()
            .unwrap();
        let create = confirmed(C::CreateObject, &d[..n]);
        let some = rule("preset = \"programming\"\nobjects = [\"analog-value:0-10\"]").unwrap();
        assert_eq!(check(&some, &create), Err(Violation::Object));
        let every = rule("preset = \"programming\"\nobjects = [\"analog-value\"]").unwrap();
        assert_eq!(check(&every, &create), Ok(()));
    }

    #[test]
    fn later_segments_are_outside_restricted_objects() {
        let seg = |sequence| {
            datagram(
                Body::Confirmed {
                    invoke_id: 1,
                    service: 16,
                    segment: Some(Segment {
                        sequence,
                        window: 2,
                        more_follows: sequence == 0,
                    }),
                    data: &[0x0c, 0, 0x80, 0, 1, 0x1e],
                },
                None,
            )
        };
        let r = rule("preset = \"read-write\"\nobjects = [\"analog-value\"]").unwrap();
        assert_eq!(check(&r, &seg(0)), Ok(()));
        assert_eq!(check(&r, &seg(1)), Err(Violation::Object));
        let open = rule("preset = \"read-write\"").unwrap();
        assert_eq!(check(&open, &seg(1)), Ok(()));
    }

    #[test]
    fn bvlc_and_network_requests() {
        let r = rule("preset = \"read-only\"").unwrap();
        let register = [0x81, 0x05, 0x00, 0x06, 0x01, 0x2c];
        assert_eq!(check(&r, &register), Err(Violation::Function));
        assert_eq!(check(&r, &[0x81, 0x02, 0x00, 0x04]), Ok(()), "read-bdt");
        let r = rule("preset = \"read-only\"\nservices = [\"register-foreign-device\", \"distribute-broadcast-to-network\"]").unwrap();
        assert_eq!(check(&r, &register), Ok(()));
        // Distribute-broadcast of a Who-Is: both the BVLC function and the service.
        assert_eq!(
            check(&r, &[0x81, 0x09, 0x00, 0x08, 0x01, 0x00, 0x10, 0x08]),
            Ok(())
        );
        assert_eq!(
            check(&r, &[0x81, 0x09, 0x00, 0x08, 0x01, 0x00, 0x10, 0x06]),
            Err(Violation::Function),
            "time-synchronization"
        );
        let init_rt = datagram(
            Body::Network {
                message: 6,
                vendor: None,
                data: &[0],
            },
            None,
        );
        assert_eq!(check(&r, &init_rt), Err(Violation::Function));
        let who_is_router = datagram(
            Body::Network {
                message: 0,
                vendor: None,
                data: &[],
            },
            None,
        );
        assert_eq!(check(&r, &who_is_router), Ok(()));
        let pr = rule("preset = \"programming\"").unwrap();
        assert_eq!(check(&pr, &init_rt), Ok(()));
    }

    #[test]
    fn services_alone_are_exact() {
        let r = rule("services = [\"read-property\", \"who-is\"]").unwrap();
        assert_eq!(check(&r, &read(av(1), PropertyId::PresentValue)), Ok(()));
        let i_am = {
            let mut d = [0u8; 32];
            let n = Encoder::new(&mut d)
                .i_am(ObjectId::new(8, 1).unwrap(), 1476, 3, 15)
                .finish()
                .unwrap();
            datagram(
                Body::Unconfirmed {
                    service: 0,
                    data: &d[..n],
                },
                None,
            )
        };
        assert_eq!(check(&r, &i_am), Err(Violation::Function));
        assert_eq!(
            check(&r, &[0x81, 0x02, 0x00, 0x04]),
            Err(Violation::Function)
        );
    }

    #[test]
    fn bad_values_are_errors_with_their_place() {
        for (section, needle) in [
            (
                "services = [\"read-proprety\"]",
                "unknown service \"read-proprety\"",
            ),
            ("services = [\"original-unicast-npdu\"]", "unknown service"),
            ("services = [\"result\"]", "unknown service"),
            ("services = [\"unconfirmed:300\"]", "unknown service"),
            ("services = [256]", "unknown service 256"),
            ("services = []", "`service` is empty"),
            (
                "objects = [\"analog-valve\"]",
                "unknown object \"analog-valve\"",
            ),
            ("objects = [\"analog-value:5-1\"]", "unknown object"),
            ("objects = [\"analog-value:4194304\"]", "unknown object"),
            ("objects = [1024]", "unknown object 1024"),
            (
                "properties = [\"present-valu\"]",
                "unknown property \"present-valu\"",
            ),
            ("properties = [4194304]", "unknown property 4194304"),
            ("networks = [65536]", "out of range"),
            ("preset = \"read-everything\"", "unknown preset"),
            ("colour = 1", "unknown field"),
        ] {
            let e = rule(section).unwrap_err();
            assert!(e.contains(needle), "{section}: {e}");
            assert!(e.contains("t.toml:"), "{e}");
        }
    }

    #[test]
    fn display_and_covers() {
        let r = rule("preset = \"read-only\"").unwrap();
        assert_eq!(r.to_string(), "preset read-only");
        let r2 = rule(
            "preset = \"read-only\"\nservices = [\"write-property\", \"unconfirmed:77\"]\n\
             objects = [\"analog-value:1-10\", \"device\", \"binary-output:3\", 300]\n\
             properties = [\"present-value\"]\nnetworks = [\"1-5\"]",
        )
        .unwrap();
        assert_eq!(
            r2.to_string(),
            "preset read-only + write-property,unconfirmed:77; \
             objects analog-value:1-10,binary-output:3,device,300; \
             properties present-value; networks 1-5"
        );
        assert!(!r.covers(&r2) && !r2.covers(&r));
        let all = rule("").unwrap();
        assert_eq!(all.to_string(), "every service");
        assert!(all.covers(&r) && all.covers(&r2));
        let exact = rule("services = [\"who-is\", 12]").unwrap();
        assert_eq!(exact.to_string(), "services read-property,who-is");
        assert!(r.covers(&exact));
    }
}
