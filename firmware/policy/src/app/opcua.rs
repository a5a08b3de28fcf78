//! `[rule.opcua]`: services (with presets and groups), and the security policy and mode
//! of the secure channel.
//!
//! ```toml
//! [rule.opcua]
//! preset = "read-only"                    # read-only | read-write | programming | all
//! services = ["write", "call"]            # added to the preset; names, groups, numbers
//! security-policies = ["basic256sha256", "aes256-sha256-rsapss"]   # default: every policy
//! security-modes = ["sign", "sign-and-encrypt"]                    # default: every mode
//! ```
//!
//! What each request is judged on (in the order function, then security):
//! - OPN: the service `open-secure-channel`; its SecurityPolicyUri; its requested mode
//!   when the body is plain (policy None). The OPN of a secured channel is encrypted:
//!   its mode could be `sign` or `sign-and-encrypt`, and a rule that lists either takes
//!   it; the first MSG then shows the mode and is judged on it;
//! - MSG: its service when the body can be read (an opaque body is taken only by a
//!   rule without `preset` and `services`), the channel's policy and mode;
//! - CLO: `close-secure-channel`, the channel's policy and mode;
//! - RHE (reverse connect, from the server): the name `reverse-hello` in `services`,
//!   which only the preset `all` includes.

use std::fmt;

use gk_inspect::opcua::{Message, MessageType, NodeId, SecurityMode, SecurityPolicy, Service};
use serde::Deserialize;
use serde_spanned::Spanned;

use super::{codes, known_names, preset, Preset, Ranges, Violation};
use crate::diag::Diags;
use crate::raw::{items, Items, Scalar};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Raw {
    pub preset: Option<Spanned<String>>,
    pub services: Option<Spanned<Items>>,
    pub security_policies: Option<Spanned<Items>>,
    pub security_modes: Option<Spanned<Items>>,
}

/// The pseudo-service of a ReverseHello in the compiled set (no NodeId is this high in
/// namespace 0; listed numbers stop at 65535).
const REVERSE_HELLO: u32 = u32::MAX;
/// Numbers `services` accepts: namespace-0 ids of the four-byte encoding.
const MAX_SERVICE_NUMBER: u32 = 65535;

/// Named groups of services (OPC 10000-4's service sets).
const GROUPS: &[(&str, &[Service])] = &[
    (
        "discovery",
        &[
            Service::FindServers,
            Service::FindServersOnNetwork,
            Service::GetEndpoints,
        ],
    ),
    (
        "secure-channel",
        &[Service::OpenSecureChannel, Service::CloseSecureChannel],
    ),
    (
        "session",
        &[
            Service::CreateSession,
            Service::ActivateSession,
            Service::CloseSession,
            Service::Cancel,
        ],
    ),
    (
        "view",
        &[
            Service::Browse,
            Service::BrowseNext,
            Service::TranslateBrowsePaths,
            Service::RegisterNodes,
            Service::UnregisterNodes,
        ],
    ),
    ("query", &[Service::QueryFirst, Service::QueryNext]),
    (
        "monitored-items",
        &[
            Service::CreateMonitoredItems,
            Service::ModifyMonitoredItems,
            Service::SetMonitoringMode,
            Service::SetTriggering,
            Service::DeleteMonitoredItems,
        ],
    ),
    (
        "subscriptions",
        &[
            Service::CreateSubscription,
            Service::ModifySubscription,
            Service::SetPublishingMode,
            Service::Publish,
            Service::Republish,
            Service::TransferSubscriptions,
            Service::DeleteSubscriptions,
        ],
    ),
    (
        "node-management",
        &[
            Service::AddNodes,
            Service::AddReferences,
            Service::DeleteNodes,
            Service::DeleteReferences,
        ],
    ),
];

fn group(name: &str) -> &'static [Service] {
    GROUPS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(&[], |(_, s)| s)
}

/// What each preset holds here:
/// - `read-only`: Discovery, the secure channel, sessions, browsing and queries, reads, history reads, subscriptions and monitored items.
/// - `read-write`: Read-only, writes, method calls and history updates.
/// - `programming`: Read-write, adding and deleting nodes and references, registering servers.
/// - `all`: Every service id, and ReverseHello.
trait OpcUaSets {
    fn services(self) -> Ranges;
}

impl OpcUaSets for Preset {
    fn services(self) -> Ranges {
        if self == Preset::All {
            return Ranges::new(vec![(0, u32::MAX)]);
        }
        let mut v: Vec<Service> = Vec::new();
        for g in [
            "discovery",
            "secure-channel",
            "session",
            "view",
            "query",
            "monitored-items",
            "subscriptions",
        ] {
            v.extend_from_slice(group(g));
        }
        v.extend([Service::Read, Service::HistoryRead]);
        if self != Preset::ReadOnly {
            v.extend([Service::Write, Service::Call, Service::HistoryUpdate]);
        }
        if self == Preset::Programming {
            v.extend_from_slice(group("node-management"));
            v.extend([Service::RegisterServer, Service::RegisterServer2]);
        }
        let ids = v.into_iter().map(|s| {
            let id = u32::from(s);
            (id, id)
        });
        Ranges::new(ids.collect())
    }
}

/// A compiled `[rule.opcua]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpcUaRule {
    pub preset: Option<Preset>,
    /// Request ids (namespace 0) and [`REVERSE_HELLO`]; `None`: every request, opaque
    /// ones included.
    pub services: Option<Ranges>,
    /// Security policy codes ([`SecurityPolicy::code`]; 255 for URIs without a name).
    pub policies: Ranges,
    /// `MessageSecurityMode` values.
    pub modes: Ranges,
}

const ALL_POLICIES: u32 = 255;
const ALL_MODES: u32 = u32::MAX;

/// Every name `services` accepts.
fn lookup_service(name: &str) -> Option<Vec<u32>> {
    if name == "reverse-hello" {
        return Some(vec![REVERSE_HELLO]);
    }
    if let Some(s) = Service::from_name(name) {
        return Some(vec![u32::from(s)]);
    }
    let g = group(name);
    (!g.is_empty()).then(|| g.iter().map(|&s| u32::from(s)).collect())
}

fn service_names() -> String {
    let groups: Vec<&str> = GROUPS.iter().map(|(n, _)| *n).collect();
    format!(
        "{}, reverse-hello; groups: {}",
        known_names(Service::NAMES),
        groups.join(", ")
    )
}

fn policy_names() -> String {
    let v: Vec<&str> = SecurityPolicy::NAMES.iter().map(|(n, _, _)| *n).collect();
    v.join(", ")
}

/// `security-policies`: names, or the policies' URIs.
fn policies(d: &mut Diags<'_>, label: &str, field: &Spanned<Items>) -> Option<Ranges> {
    let mut out = Vec::new();
    for (item, span) in items(field) {
        let policy = match item {
            Scalar::Str(s) => SecurityPolicy::from_name(&s.to_ascii_lowercase()).or_else(|| {
                Some(SecurityPolicy::from_uri(s.as_bytes())).filter(|p| *p != SecurityPolicy::Other)
            }),
            Scalar::Int(_) => None,
        };
        match policy {
            Some(p) => out.push(u32::from(p.code())),
            None => d.error(
                &span,
                format!(
                    "{label}: unknown security policy {item} (policies are: {}; or a policy URI)",
                    policy_names()
                ),
            ),
        }
    }
    if field.get_ref().0.is_empty() {
        d.error(
            &field.span(),
            format!("{label}: `security-policies` is empty (leave it out to allow every security policy)"),
        );
        return None;
    }
    Some(Ranges::new(out.into_iter().map(|v| (v, v)).collect()))
}

pub(crate) fn compile(d: &mut Diags<'_>, label: &str, raw: Option<&Spanned<Raw>>) -> OpcUaRule {
    let mut rule = OpcUaRule {
        preset: None,
        services: None,
        policies: Ranges::all(ALL_POLICIES),
        modes: Ranges::all(ALL_MODES),
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
        let known = service_names();
        codes(
            d,
            label,
            "service",
            f,
            MAX_SERVICE_NUMBER,
            lookup_service,
            &known,
        )
    });
    rule.services = match (preset, listed) {
        (Some(p), Some(l)) => Some(p.services().union(&l)),
        (Some(p), None) => Some(p.services()),
        (None, l) => l,
    };
    if let Some(f) = &raw.security_policies {
        rule.policies = policies(d, label, f).unwrap_or(rule.policies);
    }
    if let Some(f) = &raw.security_modes {
        let lookup = |n: &str| SecurityMode::from_name(n).map(|m| vec![u32::from(m)]);
        let known = known_names(SecurityMode::NAMES);
        let modes = codes(d, label, "security mode", f, 255, lookup, &known);
        rule.modes = modes.unwrap_or(rule.modes);
    }
    // Policy None goes with mode none; every other policy with sign or sign-and-encrypt.
    let none = u32::from(SecurityPolicy::None.code());
    let none_channel = rule.policies.contains(none) && rule.modes.contains(1);
    let secured_policy = rule
        .policies
        .ranges()
        .iter()
        .any(|&(lo, hi)| lo != none || hi != none);
    let secured_channel = secured_policy && (rule.modes.contains(2) || rule.modes.contains(3));
    if !none_channel && !secured_channel {
        let span = raw
            .security_modes
            .as_ref()
            .or(raw.security_policies.as_ref())
            .map(Spanned::span);
        if let Some(span) = span {
            d.warn(
                &span,
                format!("{label}: no secure channel has one of these security policies and one of these modes (policy none goes with mode none, the others with sign or sign-and-encrypt)"),
            );
        }
    }
    rule
}

impl OpcUaRule {
    /// Whether a request is inside the rule: its service (function), then its secure
    /// channel's policy and mode (security).
    #[inline]
    pub fn check(&self, msg: &Message<'_>) -> Result<(), Violation> {
        if !msg.is_request() {
            return Ok(());
        }
        let service = match msg.message_type() {
            MessageType::ReverseHello => {
                return match &self.services {
                    Some(s) if !s.contains(REVERSE_HELLO) => Err(Violation::Function),
                    _ => Ok(()),
                };
            }
            MessageType::Open => Some(u32::from(Service::OpenSecureChannel)),
            MessageType::Close => Some(u32::from(Service::CloseSecureChannel)),
            MessageType::Message if msg.is_opaque() => None,
            MessageType::Message => msg.type_id().and_then(NodeId::ns0),
            _ => return Ok(()),
        };
        if let Some(services) = &self.services {
            // An opaque body or a type outside namespace 0 has no service to list.
            if !service.is_some_and(|id| id != REVERSE_HELLO && services.contains(id)) {
                return Err(Violation::Function);
            }
        }
        let policy_ok = match msg.security_policy() {
            Some(p) => self.policies.contains(p.code().into()),
            None => self.policies.is_all(ALL_POLICIES),
        };
        let mode_ok = match msg.security_mode() {
            Some(m) => self.modes.contains(m.into()),
            // Not shown yet (a secured channel's OPN): sign or sign-and-encrypt.
            None => self.modes.contains(2) || self.modes.contains(3),
        };
        if !policy_ok || !mode_ok {
            return Err(Violation::Security);
        }
        Ok(())
    }

    pub fn covers(&self, other: &OpcUaRule) -> bool {
        let services = match (&self.services, &other.services) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a.covers(b),
        };
        services && self.policies.covers(&other.policies) && self.modes.covers(&other.modes)
    }
}

fn service_name(v: u32) -> Option<&'static str> {
    if v == REVERSE_HELLO {
        return Some("reverse-hello");
    }
    Service::of_request(v).and_then(Service::name)
}

impl fmt::Display for OpcUaRule {
    /// `preset read-only; security-policies basic256sha256; security-modes sign`,
    /// leaving out what is unrestricted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(services) = &self.services {
            match self.preset {
                Some(p) if p.services() == *services => parts.push(format!("preset {}", p.name())),
                _ => {
                    let mut names: Vec<String> = Vec::new();
                    for &(lo, hi) in services.ranges() {
                        if hi - lo > 64 {
                            // Large ranges (the preset `all`, numbers): as numbers.
                            names.push(format!("{lo}-{hi}"));
                            continue;
                        }
                        for v in lo..=hi {
                            names.push(service_name(v).map_or_else(|| v.to_string(), String::from));
                        }
                    }
                    parts.push(format!("services {}", names.join(",")));
                }
            }
        }
        if !self.policies.is_all(ALL_POLICIES) {
            let names: Vec<&str> = self
                .policies
                .values()
                .map(|c| SecurityPolicy::from_code(c as u8).name().unwrap_or("other"))
                .collect();
            parts.push(format!("security-policies {}", names.join(",")));
        }
        if !self.modes.is_all(ALL_MODES) {
            let names: Vec<String> = self
                .modes
                .values()
                .map(|m| SecurityMode::from(m).to_string())
                .collect();
            parts.push(format!("security-modes {}", names.join(",")));
        }
        if parts.is_empty() {
            f.write_str("every message")
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
    use gk_inspect::opcua::{
        self, Body, ChunkRepr, ChunkType, NodeIdEncoding, OpenBody, OpenRepr, RequestType,
    };
    use gk_inspect::Dir;

    const NONE_URI: &str = "http://opcfoundation.org/UA/SecurityPolicy#None";
    const SHA256_URI: &str = "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256";

    /// The rule `[rule.opcua]` with `body` compiles to, and the warnings.
    fn compile_section(body: &str) -> Result<(OpcUaRule, Vec<String>), String> {
        let text = format!(
            "schema = 1\n[gatekeeper]\nname = \"t\"\nmode = \"enforce\"\n[[rule]]\nname = \"r\"\nfrom = \"any\"\nto = \"any\"\nproto = \"opcua\"\naction = \"allow\"\n[rule.opcua]\n{body}\n"
        );
        let (p, warnings) = Policy::from_toml(&text, "t.toml").map_err(|e| e.to_string())?;
        let Some(AppRule::OpcUa(rule)) = p.rules()[0].app.clone() else {
            panic!("not an OPC UA rule")
        };
        Ok((rule, warnings.iter().map(|w| w.to_string()).collect()))
    }

    fn rule(body: &str) -> OpcUaRule {
        let (r, w) = compile_section(body).unwrap();
        assert!(w.is_empty(), "{w:?}");
        r
    }

    fn open(uri: &str, mode: SecurityMode) -> Vec<u8> {
        let mut out = [0u8; 512];
        let body = if uri == NONE_URI {
            OpenBody::Request {
                request_type: RequestType::Issue,
                mode,
                nonce: None,
                lifetime: 60_000,
            }
        } else {
            OpenBody::Encrypted(&[0x11; 128])
        };
        let n = opcua::emit_open(
            &mut out,
            &OpenRepr {
                channel: 0,
                policy_uri: uri,
                certificate: None,
                thumbprint: None,
                sequence: 1,
                request_id: 1,
                body,
            },
        )
        .unwrap();
        out[..n].to_vec()
    }

    fn msg(service: u32) -> Vec<u8> {
        let mut out = [0u8; 512];
        let body = Body::Request {
            type_id: service,
            encoding: NodeIdEncoding::Shortest,
            handle: 1,
            params: &[],
        };
        let r = ChunkRepr {
            message: MessageType::Message,
            chunk: ChunkType::Final,
            channel: 1,
            token: 1,
            sequence: 2,
            request_id: 2,
            body,
        };
        let n = opcua::emit_chunk(&mut out, &r).unwrap();
        out[..n].to_vec()
    }

    fn check(rule: &OpcUaRule, bytes: &[u8]) -> Result<(), Violation> {
        rule.check(&opcua::parse(bytes, bytes.len(), Dir::Request).unwrap())
    }

    /// Judges `bytes` as the client's next message on a channel with policy None.
    fn in_channel(rule: &OpcUaRule, bytes: &[u8]) -> Result<(), Violation> {
        let mut s = opcua::Session::default();
        let mut out = [0u8; 128];
        let n = opcua::emit_hello(&mut out, &opcua::Buffers::TYPICAL, "opc.tcp://plc").unwrap();
        let opn = open(NONE_URI, SecurityMode::None);
        for b in [&out[..n], &opn[..]] {
            s.message(b, b.len(), Dir::Request, &mut [])
                .unwrap()
                .unwrap();
        }
        match s.message(bytes, bytes.len(), Dir::Request, &mut []) {
            Some(Ok(gk_inspect::Message::OpcUa(m))) => rule.check(&m),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn presets_nest() {
        let ro = Preset::ReadOnly.services();
        let rw = Preset::ReadWrite.services();
        let pr = Preset::Programming.services();
        let all = Preset::All.services();
        assert!(rw.covers(&ro) && pr.covers(&rw) && all.covers(&pr));
        let id = |s: Service| u32::from(s);
        assert!(ro.contains(id(Service::Read)) && ro.contains(id(Service::OpenSecureChannel)));
        assert!(ro.contains(id(Service::Publish)) && ro.contains(id(Service::GetEndpoints)));
        assert!(!ro.contains(id(Service::Write)) && rw.contains(id(Service::Write)));
        assert!(rw.contains(id(Service::Call)) && !rw.contains(id(Service::AddNodes)));
        assert!(pr.contains(id(Service::DeleteNodes)) && !pr.contains(REVERSE_HELLO));
        assert!(all.contains(REVERSE_HELLO) && all.contains(70_000));
    }

    #[test]
    fn services_are_judged_on_plain_bodies_and_opaque_ones_only_without_services() {
        let ro = rule("preset = \"read-only\"");
        assert_eq!(in_channel(&ro, &msg(631)), Ok(()));
        assert_eq!(in_channel(&ro, &msg(673)), Err(Violation::Function));
        assert_eq!(check(&ro, &open(NONE_URI, SecurityMode::None)), Ok(()));
        // Unknown ids are data: by number.
        assert_eq!(in_channel(&ro, &msg(15000)), Err(Violation::Function));
        assert_eq!(in_channel(&rule("services = [15000]"), &msg(15000)), Ok(()));
        // A body that reads as neither: opaque.
        let mut enc = msg(631);
        for b in &mut enc[16..] {
            *b ^= 0xa5;
        }
        let m = opcua::parse(&enc, enc.len(), Dir::Request).unwrap();
        assert!(m.is_opaque());
        assert_eq!(ro.check(&m), Err(Violation::Function));
        assert_eq!(rule("preset = \"all\"").check(&m), Err(Violation::Function));
        assert_eq!(
            rule("security-modes = [\"sign-and-encrypt\"]").check(&m),
            Ok(())
        );
        // Groups and presets add up.
        let r = rule("preset = \"read-only\"\nservices = [\"node-management\", \"write\"]");
        assert_eq!(in_channel(&r, &msg(673)), Ok(()));
        assert_eq!(in_channel(&r, &msg(500)), Ok(()));
        assert_eq!(in_channel(&r, &msg(712)), Err(Violation::Function));
    }

    #[test]
    fn security_is_judged_on_the_open_and_the_channel() {
        let signed = rule("preset = \"read-write\"\nsecurity-policies = [\"basic256sha256\"]");
        assert_eq!(
            check(&signed, &open(NONE_URI, SecurityMode::None)),
            Err(Violation::Security)
        );
        assert_eq!(
            check(&signed, &open(SHA256_URI, SecurityMode::Sign)),
            Ok(())
        );
        // Service first: a denied service says function.
        let ro = rule("preset = \"read-only\"\nsecurity-policies = [\"basic256sha256\"]");
        let m = msg(673);
        let m = opcua::parse(&m, m.len(), Dir::Request).unwrap();
        assert_eq!(ro.check(&m), Err(Violation::Function));
        // The requested mode of a plain OPN.
        let modes = rule("security-modes = [\"none\", \"sign-and-encrypt\"]");
        assert_eq!(check(&modes, &open(NONE_URI, SecurityMode::None)), Ok(()));
        assert_eq!(
            check(&modes, &open(NONE_URI, SecurityMode::Sign)),
            Err(Violation::Security)
        );
        // An encrypted OPN could be either secured mode.
        let sign_only = rule("security-modes = [\"sign\"]");
        assert_eq!(
            check(&sign_only, &open(SHA256_URI, SecurityMode::Sign)),
            Ok(())
        );
        let none_only = rule("security-modes = [\"none\"]");
        assert_eq!(
            check(&none_only, &open(SHA256_URI, SecurityMode::Sign)),
            Err(Violation::Security)
        );
        // By URI too.
        let by_uri = rule(&format!("security-policies = [\"{SHA256_URI}\"]"));
        assert_eq!(by_uri, rule("security-policies = [\"basic256sha256\"]"));
    }

    #[test]
    fn reverse_hello_needs_its_name_when_services_are_limited() {
        let mut out = [0u8; 128];
        let n = opcua::emit_reverse_hello(&mut out, "urn:plc", "opc.tcp://plc:4840").unwrap();
        let rhe = &out[..n];
        assert_eq!(
            check(&rule("preset = \"read-only\""), rhe),
            Err(Violation::Function)
        );
        assert_eq!(
            check(
                &rule("preset = \"read-only\"\nservices = [\"reverse-hello\"]"),
                rhe
            ),
            Ok(())
        );
        assert_eq!(check(&rule("preset = \"all\""), rhe), Ok(()));
        assert_eq!(check(&rule("security-modes = [\"sign\"]"), rhe), Ok(()));
    }

    #[test]
    fn compile_errors_and_warnings_say_where() {
        let e = compile_section("services = [\"reed\"]").unwrap_err();
        assert!(
            e.contains("t.toml:12:") && e.contains("unknown service \"reed\""),
            "{e}"
        );
        let e = compile_section("security-policies = [\"basic512\"]").unwrap_err();
        assert!(e.contains("unknown security policy \"basic512\""), "{e}");
        let e = compile_section("security-policies = [3]").unwrap_err();
        assert!(e.contains("unknown security policy 3"), "{e}");
        let e = compile_section("security-modes = [\"encrypt\"]").unwrap_err();
        assert!(e.contains("unknown security mode \"encrypt\""), "{e}");
        let e = compile_section("preset = \"read-mostly\"").unwrap_err();
        assert!(e.contains("unknown preset"), "{e}");
        let e = compile_section("services = []").unwrap_err();
        assert!(e.contains("`service` is empty"), "{e}");
        let e = compile_section("nodes = [1]").unwrap_err();
        assert!(e.contains("nodes"), "{e}");
        let (_, w) =
            compile_section("security-policies = [\"none\"]\nsecurity-modes = [\"sign\"]").unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("no secure channel"), "{w:?}");
        let (_, w) = compile_section(
            "security-policies = [\"basic256sha256\"]\nsecurity-modes = [\"none\"]",
        )
        .unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
    }

    #[test]
    fn display_and_covers() {
        assert_eq!(
            rule("preset = \"read-only\"").to_string(),
            "preset read-only"
        );
        assert_eq!(
            rule("services = [\"read\", \"browse\", 15000]\nsecurity-policies = [\"basic256sha256\", \"aes256-sha256-rsapss\"]\nsecurity-modes = [\"sign\"]").to_string(),
            "services browse,read,15000; security-policies basic256sha256,aes256-sha256-rsapss; security-modes sign"
        );
        assert_eq!(rule("preset = \"all\"").to_string(), "preset all");
        assert_eq!(
            rule("security-modes = [\"sign\", \"sign-and-encrypt\"]").to_string(),
            "security-modes sign,sign-and-encrypt"
        );
        let any = rule("security-modes = [\"none\", \"sign\", \"sign-and-encrypt\"]");
        let all = OpcUaRule {
            preset: None,
            services: None,
            policies: Ranges::all(ALL_POLICIES),
            modes: Ranges::all(ALL_MODES),
        };
        assert_eq!(all.to_string(), "every message");
        let ro = rule("preset = \"read-only\"");
        let rw = rule("preset = \"read-write\"");
        let secured = rule("preset = \"read-only\"\nsecurity-policies = [\"basic256sha256\"]");
        assert!(rw.covers(&ro) && !ro.covers(&rw) && ro.covers(&secured) && !secured.covers(&ro));
        assert!(all.covers(&rw) && !rw.covers(&all) && all.covers(&any));
        assert!(rule("preset = \"all\"").covers(&rw));
        assert!(!rule("preset = \"all\"").covers(&all), "opaque requests");
    }
}
