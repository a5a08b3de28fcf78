//! What traffic the two policies treat differently: every probe conversation judged by
//! both (`Policy::evaluate`), and for inspected conversations every probe request judged
//! by the rules that judge its messages, in the same order `Policy::judge_message`
//! tries them. Differences are grouped back into boxes of (from, to, service) and, for
//! requests, boxes of the protocol's fields.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use gk_policy::{Action, FlowQuery, Policy, Protocol, Ranges};

use super::app::{Model, V};
use super::space::{self, AddrAtom, Cell, Net, Service};

/// The atoms and services of two policies, and every probe.
#[derive(Debug)]
pub(super) struct Space {
    pub atoms: Vec<AddrAtom>,
    pub services: Vec<Service>,
    pub cells: Vec<Cell>,
}

impl Space {
    pub fn new(old: &Policy, new: &Policy) -> Space {
        let nets = [old, new]
            .into_iter()
            .flat_map(|p| p.hosts())
            .flat_map(|h| h.nets.iter().map(Net::of));
        let atoms = space::address_atoms(nets);
        let services = space::services(&[old, new]);
        let cells = space::cells(&atoms, &services);
        Space {
            atoms,
            services,
            cells,
        }
    }

    pub fn query(&self, cell: &Cell) -> FlowQuery {
        let [s, d, k] = *cell;
        space::query(self.atoms[s].rep, self.atoms[d].rep, self.services[k])
    }
}

/// Which way a difference goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Kind {
    /// The new policy allows what the old one denied.
    Widens,
    /// The new policy denies what the old one allowed.
    Narrows,
    /// Both allow, inspected in another way (another protocol).
    Changes,
    /// Both allow, but one reports it (alert, log) and the other does not.
    Reporting,
}

/// What one policy does with a conversation, or with one request of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Outcome {
    /// No rule matches the conversation: the default deny.
    NoRule,
    /// A rule decides: a rule without a protocol section for a whole conversation (or
    /// every request that reaches it), or a protocol rule whose section takes the request.
    Rule(usize),
    /// An inspected conversation's request that no rule takes.
    NoSection(Protocol),
    /// The conversation is inspected with this protocol (conversation-level only).
    Inspected(usize, Protocol),
}

impl Outcome {
    pub fn permits(&self, p: &Policy) -> bool {
        match self {
            Outcome::Rule(r) => p.rules()[*r].action.permits(),
            Outcome::Inspected(..) => true,
            Outcome::NoRule | Outcome::NoSection(_) => false,
        }
    }

    pub fn reported(&self, p: &Policy) -> bool {
        match self {
            Outcome::Rule(r) => {
                let r = &p.rules()[*r];
                r.action != Action::Allow || r.log
            }
            _ => true,
        }
    }

    /// `allowed by rule "hmi-reads"`, in the words a reviewer reads.
    pub fn text(&self, p: &Policy) -> String {
        match self {
            Outcome::NoRule => "denied: no rule matches".to_string(),
            Outcome::NoSection(proto) => format!("denied: no {proto} rule takes them"),
            Outcome::Inspected(r, proto) => {
                format!(
                    "allowed as {proto} by rule {:?}, request by request",
                    p.rules()[*r].name
                )
            }
            Outcome::Rule(r) => {
                let r = &p.rules()[*r];
                match (r.action, r.log) {
                    (Action::Deny, _) => format!("denied by rule {:?}", r.name),
                    (Action::Alert, _) => {
                        format!("allowed and reported (alert) by rule {:?}", r.name)
                    }
                    (Action::Allow, true) => format!("allowed and logged by rule {:?}", r.name),
                    (Action::Allow, false) => format!("allowed by rule {:?}", r.name),
                }
            }
        }
    }

    /// The rule's name, for JSON.
    pub fn rule<'p>(&self, p: &'p Policy) -> Option<&'p str> {
        match self {
            Outcome::Rule(r) | Outcome::Inspected(r, _) => Some(&p.rules()[*r].name),
            _ => None,
        }
    }
}

/// How a policy treats a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Conv {
    /// Decided as a whole.
    Whole(Outcome),
    /// Judged request by request by the rules of `chain`, in order (see
    /// `Policy::judge_message`).
    Inspected {
        rule: usize,
        protocol: Protocol,
        chain: Vec<usize>,
    },
}

fn conv(p: &Policy, q: &FlowQuery) -> Conv {
    let d = p.evaluate(q);
    match (d.rule, d.inspect) {
        (None, _) => Conv::Whole(Outcome::NoRule),
        (Some(r), None) => Conv::Whole(Outcome::Rule(usize::from(r.0))),
        (Some(r), Some(protocol)) => {
            let first = usize::from(r.0);
            let mut chain = Vec::new();
            for (i, rule) in p.rules().iter().enumerate().skip(first) {
                if !rule.matches(q) {
                    continue;
                }
                match rule.inspects() {
                    Some(other) if other != protocol => continue,
                    Some(_) => chain.push(i),
                    None => {
                        chain.push(i);
                        break;
                    }
                }
            }
            Conv::Inspected {
                rule: first,
                protocol,
                chain,
            }
        }
    }
}

fn kind(old: &Policy, a: &Outcome, new: &Policy, b: &Outcome) -> Option<Kind> {
    match (a.permits(old), b.permits(new)) {
        (false, true) => Some(Kind::Widens),
        (true, false) => Some(Kind::Narrows),
        (true, true) if a.reported(old) != b.reported(new) => Some(Kind::Reporting),
        _ => None,
    }
}

/// One difference, before grouping: what the two policies do, and for inspected
/// conversations which requests (boxes of fields, in words) it is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Key {
    pub kind: Kind,
    pub old: Outcome,
    pub new: Outcome,
    /// The requests, when not the whole conversation.
    pub requests: Option<(Protocol, Vec<String>)>,
    /// A remark on the whole conversation (inspection started or stopped).
    pub note: Option<String>,
}

/// A group of conversations (a box of atoms and services) the policies treat alike.
#[derive(Clone, Debug)]
pub(super) struct Effect {
    pub key: Key,
    pub from: BTreeSet<usize>,
    pub to: BTreeSet<usize>,
    pub services: BTreeSet<usize>,
}

/// Every difference between `old` and `new`, grouped.
pub(super) fn effects(old: &Policy, new: &Policy, space: &Space) -> Vec<Effect> {
    let mut models: HashMap<Protocol, Model> = HashMap::new();
    let mut memo: HashMap<(Conv, Conv), Vec<Key>> = HashMap::new();
    let mut groups: BTreeMap<Key, BTreeSet<Vec<usize>>> = BTreeMap::new();
    for cell in &space.cells {
        let q = space.query(cell);
        let (a, b) = (conv(old, &q), conv(new, &q));
        let keys = memo
            .entry((a.clone(), b.clone()))
            .or_insert_with(|| compare(old, &a, new, &b, &mut models));
        for k in keys.iter() {
            groups.entry(k.clone()).or_default().insert(cell.to_vec());
        }
    }
    let mut out = Vec::new();
    for (key, cells) in groups {
        for b in space::boxes(&cells) {
            let mut it = b.into_iter();
            let (Some(from), Some(to), Some(services)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            out.push(Effect {
                key: key.clone(),
                from,
                to,
                services,
            });
        }
    }
    out
}

/// The differences for one pair of treatments.
fn compare(
    old: &Policy,
    a: &Conv,
    new: &Policy,
    b: &Conv,
    models: &mut HashMap<Protocol, Model>,
) -> Vec<Key> {
    let whole = |c: &Conv| match c {
        Conv::Whole(o) => Some(*o),
        Conv::Inspected { .. } => None,
    };
    if let (Some(x), Some(y)) = (whole(a), whole(b)) {
        return kind(old, &x, new, &y)
            .map(|kind| Key {
                kind,
                old: x,
                new: y,
                requests: None,
                note: None,
            })
            .into_iter()
            .collect();
    }
    let conv_outcome = |c: &Conv| match c {
        Conv::Whole(o) => *o,
        Conv::Inspected { rule, protocol, .. } => Outcome::Inspected(*rule, *protocol),
    };
    let (ca, cb) = (conv_outcome(a), conv_outcome(b));
    let protocol_of = |c: &Conv| match c {
        Conv::Inspected { protocol, .. } => Some(*protocol),
        Conv::Whole(_) => None,
    };
    let protocol = match (protocol_of(a), protocol_of(b)) {
        (Some(x), Some(y)) if x != y => {
            return vec![Key {
                kind: Kind::Changes,
                old: ca,
                new: cb,
                requests: None,
                note: Some(format!("inspected as {x} before, as {y} now")),
            }];
        }
        (Some(x), _) | (_, Some(x)) => x,
        (None, None) => unreachable!("one side is inspected"),
    };
    let mut keys = Vec::new();
    // Traffic that is not well-formed requests of the protocol passes a rule without a
    // section, never an inspected conversation.
    match (whole(a), whole(b)) {
        (Some(x), None) if x.permits(old) => keys.push(Key {
            kind: Kind::Narrows,
            old: x,
            new: cb,
            requests: None,
            note: Some(format!(
                "now inspected: only {protocol} requests a rule takes pass (not any bytes)"
            )),
        }),
        (None, Some(y)) if y.permits(new) => keys.push(Key {
            kind: Kind::Widens,
            old: ca,
            new: y,
            requests: None,
            note: Some(format!(
                "no longer inspected as {protocol}: any bytes pass, malformed or not"
            )),
        }),
        _ => {}
    }
    let model: &Model = models.entry(protocol).or_insert_with(|| {
        let sections: Vec<&gk_policy::AppRule> = [old, new]
            .iter()
            .flat_map(|p| p.rules())
            .filter_map(|r| r.app.as_ref())
            .filter(|s| s.protocol() == protocol)
            .collect();
        Model::new(protocol, &sections)
    });
    let judge = |p: &Policy, c: &Conv| -> Judge {
        match c {
            Conv::Whole(o) => Judge::Whole(*o),
            Conv::Inspected { chain, .. } => Judge::Chain(
                chain
                    .iter()
                    .map(|&i| (i, p.rules()[i].app.as_ref().map(|s| model.section(s))))
                    .collect(),
                protocol,
            ),
        }
    };
    let (ja, jb) = (judge(old, a), judge(new, b));
    let mut by: BTreeMap<(Kind, Outcome, Outcome), BTreeSet<Vec<V>>> = BTreeMap::new();
    for p in model.points() {
        let (x, y) = (ja.judge(model, p), jb.judge(model, p));
        if let Some(k) = kind(old, &x, new, &y) {
            by.entry((k, x, y)).or_default().insert(p.clone());
        }
    }
    for ((kind, x, y), points) in by {
        let boxes = model.describe_all(&space::boxes(&model.explained(&points)));
        keys.push(Key {
            kind,
            old: x,
            new: y,
            requests: Some((protocol, boxes)),
            note: None,
        });
    }
    keys
}

/// How one policy judges the requests of a conversation.
enum Judge {
    Whole(Outcome),
    /// Rules in order, with their sections' columns (`None`: a rule without a section,
    /// which takes every request that reaches it).
    Chain(Vec<(usize, Option<Vec<Ranges>>)>, Protocol),
}

impl Judge {
    fn judge(&self, model: &Model, p: &[V]) -> Outcome {
        match self {
            Judge::Whole(o) => *o,
            Judge::Chain(chain, protocol) => chain
                .iter()
                .find(|(_, cols)| cols.as_ref().is_none_or(|c| model.contains(c, p)))
                .map_or(Outcome::NoSection(*protocol), |(i, _)| Outcome::Rule(*i)),
        }
    }
}

/// Whether rules `a` and `b` of `p` match a conversation in common.
pub(super) fn overlap(p: &Policy, space: &Space, a: usize, b: usize) -> bool {
    let (ra, rb) = (&p.rules()[a], &p.rules()[b]);
    space.cells.iter().any(|c| {
        let q = space.query(c);
        ra.matches(&q) && rb.matches(&q)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::app::V;

    const HEAD: &str = "schema = 1\n[gatekeeper]\nname = \"t\"\nmode = \"enforce\"\n\
        [hosts.plc]\nip = \"10.10.0.10\"\n[hosts.hmi]\nip = [\"10.10.0.21\", \"10.10.0.22\"]\n\
        [hosts.eng]\nip = \"10.10.0.31\"\n";

    fn policy(rules: &str) -> Policy {
        Policy::from_toml(&format!("{HEAD}{rules}"), "t.toml")
            .unwrap_or_else(|e| panic!("{e}"))
            .0
    }

    fn diff(a: &str, b: &str) -> (Policy, Policy, Space, Vec<Effect>) {
        let (a, b) = (policy(a), policy(b));
        let space = Space::new(&a, &b);
        let e = effects(&a, &b, &space);
        (a, b, space, e)
    }

    const POLL: &str = "[[rule]]\nname = \"poll\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"tcp\"\nports = [502]\naction = \"allow\"\n";

    #[test]
    fn identical_policies_have_no_effect() {
        let (_, _, _, e) = diff(POLL, POLL);
        assert!(e.is_empty(), "{e:#?}");
    }

    #[test]
    fn a_widened_port_range_is_one_box() {
        let wider = POLL.replace("[502]", "[\"502-503\"]");
        let (_, b, space, e) = diff(POLL, &wider);
        assert_eq!(e.len(), 1, "{e:#?}");
        let e = &e[0];
        assert_eq!(e.key.kind, Kind::Widens);
        assert_eq!((e.key.old, e.key.new), (Outcome::NoRule, Outcome::Rule(0)));
        // Both HMI addresses, the PLC, TCP 503.
        let nets: Vec<String> = e.from.iter().map(|&i| space.atoms[i].net.text()).collect();
        assert_eq!(nets, ["10.10.0.21", "10.10.0.22"]);
        assert_eq!(e.to.len(), 1);
        let svcs: Vec<Service> = e.services.iter().map(|&i| space.services[i]).collect();
        assert_eq!(svcs, [Service::Tcp((503, 503))]);
        assert_eq!(e.key.new.text(&b), "allowed by rule \"poll\"");
    }

    #[test]
    fn order_matters_only_when_rules_overlap() {
        let deny = "[[rule]]\nname = \"no-hmi\"\nfrom = \"hmi\"\nto = \"any\"\naction = \"deny\"\n";
        let ping = "[[rule]]\nname = \"ping\"\nfrom = \"eng\"\nto = \"plc\"\nproto = \"icmp\"\naction = \"allow\"\n";
        let (_, _, _, e) = diff(&format!("{POLL}{deny}"), &format!("{deny}{POLL}"));
        assert!(e.iter().all(|e| e.key.kind == Kind::Narrows) && !e.is_empty());
        let (a, _, space, e) = diff(&format!("{POLL}{ping}"), &format!("{ping}{POLL}"));
        assert!(e.is_empty(), "{e:#?}");
        assert!(!overlap(&a, &space, 0, 1));
    }

    #[test]
    fn modbus_sections_are_compared_request_by_request() {
        let read = "[[rule]]\nname = \"reads\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"modbus\"\naction = \"allow\"\n\
                    [rule.modbus]\nunits = [1]\nfunctions = [\"read-holding-registers\"]\naddresses = [\"0-99\"]\n";
        let wider = read.replace("\"0-99\"", "\"0-199\"");
        let (_, b, _, e) = diff(read, &wider);
        assert_eq!(e.len(), 1, "{e:#?}");
        let k = &e[0].key;
        assert_eq!(k.kind, Kind::Widens);
        assert_eq!(k.old, Outcome::NoSection(Protocol::Modbus));
        assert_eq!(k.new.text(&b), "allowed by rule \"reads\"");
        let (p, boxes) = k.requests.clone().unwrap();
        assert_eq!(p, Protocol::Modbus);
        assert_eq!(
            boxes,
            ["units 1; functions read-holding-registers; addresses 100-199"]
        );
        // One rule for 0-199 against two for 0-99 and 100-199: only blocks across the
        // edge differ, and they are named.
        let one = read.replace("\"0-99\"", "\"0-199\"");
        let two = format!(
            "{read}{}",
            read.replace("\"reads\"", "\"reads-2\"")
                .replace("\"0-99\"", "\"100-199\"")
        );
        let (_, _, _, e) = diff(&one, &two);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert_eq!(
            e[0].key.requests.as_ref().unwrap().1,
            ["units 1; functions read-holding-registers; addresses spanning 99-100"]
        );
        // A plain TCP rule replaced by an inspected one narrows twice: requests outside
        // the section, and bytes that are not Modbus at all.
        let (_, _, _, e) = diff(POLL, read);
        assert!(e.iter().all(|e| e.key.kind == Kind::Narrows), "{e:#?}");
        assert!(e.iter().any(|e| e.key.note.is_some()));
        assert!(e.iter().any(|e| e.key.requests.is_some()));
    }

    /// A Modbus/TCP request for a point of the Modbus space, as a client sends it.
    fn adu(p: &[V]) -> Option<Vec<u8>> {
        let V::Val(unit, _) = p[0] else { return None };
        let V::Val(code, _) = p[1] else { return None };
        let be = |v: u32| (v as u16).to_be_bytes();
        let block = match p[2] {
            V::Val(lo, _) => Some((lo, 1)),
            V::Block(a, b) => Some((a, b - a + 1)),
            _ => None,
        };
        let mut pdu: Vec<u8> = Vec::new();
        let function = if code >= 256 {
            pdu.push((code - 256) as u8);
            if code - 256 == 14 {
                pdu.extend([1, 0]);
            }
            43
        } else {
            code as u8
        };
        match (function, block) {
            (1..=4, Some((start, count))) => {
                pdu.extend(be(start));
                pdu.extend(be(count));
            }
            (5, Some((start, _))) => {
                pdu.extend(be(start));
                pdu.extend([0xff, 0]);
            }
            (6, Some((start, _))) => {
                pdu.extend(be(start));
                pdu.extend([0, 1]);
            }
            (15, Some((start, count))) => {
                pdu.extend(be(start));
                pdu.extend(be(count));
                let n = count.div_ceil(8) as usize;
                pdu.push(n as u8);
                pdu.extend(std::iter::repeat_n(0, n));
            }
            (16, Some((start, count))) => {
                pdu.extend(be(start));
                pdu.extend(be(count));
                pdu.push((2 * count) as u8);
                pdu.extend(std::iter::repeat_n(0, 2 * count as usize));
            }
            (22, Some((start, _))) => {
                pdu.extend(be(start));
                pdu.extend([0xff, 0xff, 0, 0]);
            }
            (23, Some((start, count))) if count <= 121 => {
                pdu.extend(be(start));
                pdu.extend(be(count));
                pdu.extend(be(start));
                pdu.extend(be(count));
                pdu.push((2 * count) as u8);
                pdu.extend(std::iter::repeat_n(0, 2 * count as usize));
            }
            (8, None) => {
                let V::Val(sub, _) = p[3] else { return None };
                pdu.extend(be(sub));
                pdu.extend([0, 0]);
            }
            (1..=6 | 15 | 16 | 22 | 23, _) => return None,
            _ => {}
        }
        let mut out = vec![0, 1, 0, 0];
        out.extend(be(pdu.len() as u32 + 2));
        out.push(unit as u8);
        out.push(function);
        out.extend(pdu);
        Some(out)
    }

    /// The model's judgement of Modbus requests is the data plane's: every point of the
    /// space, sent as a real request through the pipeline, gets the verdict and the rule
    /// the model says.
    #[test]
    fn the_modbus_model_judges_as_the_pipeline_does() {
        let rules = "[[rule]]\nname = \"no-write-0\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"modbus\"\naction = \"deny\"\n\
            [rule.modbus]\nfunctions = [\"write-single-register\"]\naddresses = [\"0-9\"]\n\
            [[rule]]\nname = \"reads\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"modbus\"\naction = \"allow\"\n\
            [rule.modbus]\nunits = [1, \"5-6\"]\npreset = \"read-only\"\naddresses = [\"0-99\", \"200-299\"]\n\
            [[rule]]\nname = \"writes\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"modbus\"\naction = \"alert\"\n\
            [rule.modbus]\nunits = [1]\nfunctions = [\"write-single-register\", \"write-multiple-registers\", 23, \"diagnostics\"]\n\
            addresses = [\"100-199\"]\ndiagnostics = [\"return-query-data\"]\n\
            [[rule]]\nname = \"high\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"modbus\"\naction = \"allow\"\n\
            [rule.modbus]\nunits = [1]\nfunctions = [3]\naddresses = [\"100-149\", \"150-160\"]\n";
        let text = format!("{HEAD}{rules}");
        let p = policy(rules);
        let q = space::query(
            "10.10.0.21".parse().unwrap(),
            "10.10.0.10".parse().unwrap(),
            Service::Tcp((502, 502)),
        );
        let Conv::Inspected { chain, .. } = conv(&p, &q) else {
            panic!("not inspected")
        };
        let sections: Vec<&gk_policy::AppRule> =
            p.rules().iter().filter_map(|r| r.app.as_ref()).collect();
        let model = Model::new(Protocol::Modbus, &sections);
        let judge = Judge::Chain(
            chain
                .iter()
                .map(|&i| (i, p.rules()[i].app.as_ref().map(|s| model.section(s))))
                .collect(),
            Protocol::Modbus,
        );
        let mut h = gk_dataplane::testing::Harness::new(&text);
        let (mut checked, mut skipped) = (0, 0);
        for (n, point) in model.points().iter().enumerate() {
            let Some(bytes) = adu(point) else {
                skipped += 1;
                continue;
            };
            let sport = 10000 + n as u16;
            let mut c = gk_dataplane::testing::TcpConv::open(
                &mut h,
                ([2, 0, 0, 0, 0, 0x21], "10.10.0.21", sport),
                ([2, 0, 0, 0, 0, 0x10], "10.10.0.10", 502),
            );
            let out = c.client(&mut h, &bytes);
            if out.reason == gk_dataplane::Reason::Malformed {
                skipped += 1;
                continue;
            }
            let want = judge.judge(&model, point);
            assert_eq!(
                out.forward,
                want.permits(&p),
                "{point:?} {bytes:02x?}: {out:?}"
            );
            let rule = match want {
                Outcome::Rule(r) => Some(r),
                _ => None,
            };
            // A forwarded segment names its conversation's rule; a denied one the rule
            // that denied it.
            if rule.is_some_and(|r| !p.rules()[r].action.permits()) {
                assert_eq!(
                    out.rule.map(|r| usize::from(r.0)),
                    rule,
                    "{point:?}: {out:?}"
                );
            }
            checked += 1;
        }
        assert!(checked > 200, "checked {checked}, skipped {skipped}");
        assert!(
            skipped < checked / 4,
            "checked {checked}, skipped {skipped}"
        );
    }

    #[test]
    fn alert_versus_allow_is_a_reporting_change_only() {
        let alert = POLL.replace("\"allow\"", "\"alert\"");
        let (_, _, _, e) = diff(POLL, &alert);
        assert!(!e.is_empty() && e.iter().all(|e| e.key.kind == Kind::Reporting));
    }
}
