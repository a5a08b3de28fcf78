//! The message space of each industrial protocol, as the diff sees it.
//!
//! A protocol rule's section is a handful of sets (units, functions, addresses …, the
//! public fields of `gk_policy::app::*Rule`), and a request is inside the section when
//! each thing it carries is in the matching set. So, as for conversations, every field
//! is cut into atoms at the edges of every section of both policies, a *point* takes one
//! atom per field (or "not carried" for fields a request may lack), and judging each
//! point with the rules that judge the conversation, in order, tells exactly which
//! requests the two policies treat differently. Requests that name several values of a
//! field at once (a Modbus block of registers) get extra points: blocks that straddle
//! the edges between atoms.
//!
//! What a field means for which request (Modbus addresses only for the functions that
//! have data addresses, DNP3 writes …) follows the protocol pages in
//! `config/protocols/`. Sets are named with the sections' own `Display`, so the output
//! uses the policy's vocabulary: a section with one field restricted displays as that
//! field alone.

use std::collections::BTreeSet;

use gk_policy::app::Preset;
use gk_policy::app::{
    bacnet::BacnetRule, dnp3::Dnp3Rule, enip::EnipIoRule, enip::EnipRule, iec104::Iec104Rule,
    modbus::ModbusRule, opcua::OpcUaRule, s7::S7Rule,
};
use gk_policy::{AppRule, Policy, Protocol, Ranges};

use super::space::{cut, Span};

/// One coordinate of a point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum V {
    /// The request does not carry the field.
    Na,
    /// An atom: no section tells its values apart.
    Val(u32, u32),
    /// A block of values that straddles atoms (from the last of one to the first of
    /// another): inside a set only if the set holds it whole.
    Block(u32, u32),
    /// A value a set can only hold by being unrestricted (see `Dim::special`).
    Special,
}

/// What a box of requests says of one field.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    /// Every value (left out of the words).
    Every,
    /// The requests do not carry the field.
    Absent,
    /// These values, and these other words (blocks across atoms, special values).
    Limited(Ranges, Vec<String>),
}

/// A field of a protocol's requests.
#[derive(Debug)]
struct Dim {
    /// As the section's `Display` names it.
    name: &'static str,
    /// The set of every value, in words.
    every: &'static str,
    /// Codes (functions, services): changes read "now also …"; otherwise ranges: "widened
    /// from … to …".
    codes: bool,
    /// What `V::Special` stands for, when the field has one.
    special: Option<&'static str>,
    /// Values are indices of names (ENIP tags, S7 PI services), not numbers.
    names: bool,
    /// Whether a request carries the field follows from its function alone (Modbus
    /// addresses), rather than from the request (DNP3 objects).
    implied: bool,
}

const fn dim(name: &'static str, every: &'static str, codes: bool) -> Dim {
    Dim {
        name,
        every,
        codes,
        special: None,
        names: false,
        implied: false,
    }
}

/// A field carried by some functions only.
const fn implied(name: &'static str, every: &'static str, codes: bool) -> Dim {
    Dim {
        implied: true,
        ..dim(name, every, codes)
    }
}

const MODBUS: &[Dim] = &[
    dim("units", "every unit", false),
    dim("functions", "every function", true),
    implied("addresses", "every address", false),
    implied("diagnostics", "every sub-function", true),
];
const DNP3: &[Dim] = &[
    dim("outstations", "every outstation", false),
    dim("masters", "every master", false),
    dim("functions", "every function", true),
    dim("objects", "every object", true),
    dim("indices", "every index", false),
];
const ENIP: &[Dim] = &[
    dim("commands", "every command", true),
    dim("services", "every service", true),
    dim("classes", "every class", true),
    dim("instances", "every instance", false),
    Dim {
        name: "tags",
        every: "every tag",
        codes: true,
        special: None,
        names: true,
        implied: false,
    },
];
const ENIP_IO: &[Dim] = &[dim("sizes", "every size", false)];
const S7: &[Dim] = &[
    Dim {
        name: "tsaps",
        every: "every TSAP",
        codes: false,
        special: Some("connections that called a named TSAP (S7comm-plus)"),
        names: false,
        implied: false,
    },
    dim("functions", "every function", true),
    Dim {
        name: "pi-services",
        every: "every PI service",
        codes: true,
        special: None,
        names: true,
        implied: true,
    },
    Dim {
        name: "areas",
        every: "every area",
        codes: true,
        special: Some("addresses in another syntax"),
        names: false,
        implied: true,
    },
    implied("dbs", "every data block", false),
];
const IEC104: &[Dim] = &[
    dim("common-addresses", "every common address", false),
    dim("types", "every type", true),
    dim("causes", "every cause", true),
    Dim {
        name: "ioas",
        every: "every object address",
        codes: false,
        special: Some("objects whose addresses cannot be known"),
        names: false,
        implied: false,
    },
];
const OPCUA: &[Dim] = &[
    dim("services", "every request", true),
    dim("security-policies", "every security policy", true),
    dim("security-modes", "every security mode", true),
];
const BACNET: &[Dim] = &[
    dim("services", "every service", true),
    dim("networks", "every network", false),
    Dim {
        name: "objects",
        every: "every object",
        codes: false,
        special: Some("objects that cannot be decoded"),
        names: false,
        implied: false,
    },
    dim("properties", "every property", false),
];

/// The key OPC UA opaque requests (no service of namespace 0) get in `services`.
const OPAQUE_SERVICE: u32 = u32::MAX;

/// Modbus functions with data addresses, and the longest block each can touch.
const MODBUS_BLOCKS: &[(u32, u32)] = &[
    (1, 2000),
    (2, 2000),
    (3, 125),
    (4, 125),
    (5, 1),
    (6, 1),
    (15, 1968),
    (16, 123),
    (22, 1),
    (23, 125),
];
const MODBUS_DIAGNOSTICS: u32 = 8;
const MODBUS_MEI: u32 = 43;
const MEI_BASE: u32 = 256;

/// DNP3: confirm and the three responses are not requests.
const DNP3_NOT_REQUESTS: &[u32] = &[0, 129, 130, 131];
const DNP3_WRITE: u32 = 2;

/// S7: read-var, write-var and the cyclic subscriptions carry addresses (the userdata
/// keys are 0x10000 + group × 256 + subfunction: cyclic-data is group 2).
const S7_ADDRESSED: &[u32] = &[0x04, 0x05, 0x1_0201, 0x1_0205];
const S7_PLC_CONTROL: u32 = 0x28;
const S7_DB_AREAS: &[u32] = &[0x84, 0x85];

/// ENIP service keys above this are object-specific codes on a named class (the code is
/// the low byte) or class 3 Forward Opens.
const ENIP_MAX_SERVICE: u32 = 0x7f;

/// The compiled section of a one-rule policy with `body` as its `[rule.P]` table.
fn template(protocol: Protocol, body: &str) -> AppRule {
    let p = protocol.name();
    let text = format!(
        "schema = 1\n[gatekeeper]\nname = \"diff\"\nmode = \"enforce\"\n\
         [[rule]]\nname = \"r\"\nfrom = \"any\"\nto = \"any\"\nproto = \"{p}\"\naction = \"allow\"\n{body}"
    );
    let (policy, _) = Policy::from_toml(&text, "template").expect("a one-rule policy compiles");
    policy.rules()[0]
        .app
        .clone()
        .expect("a protocol rule has a section")
}

fn spans(r: &Ranges) -> &[Span] {
    r.ranges()
}

/// How many values a set holds.
fn size(r: &Ranges) -> u64 {
    r.ranges()
        .iter()
        .map(|&(lo, hi)| u64::from(hi - lo) + 1)
        .sum()
}

/// `a` without `b`.
pub(super) fn minus(a: &Ranges, b: &Ranges) -> Ranges {
    let mut out = Vec::new();
    for &(lo, hi) in a.ranges() {
        let mut start = u64::from(lo);
        let end = u64::from(hi);
        for &(blo, bhi) in b.ranges() {
            let (blo, bhi) = (u64::from(blo), u64::from(bhi));
            if bhi < start || blo > end {
                continue;
            }
            if blo > start {
                out.push((start as u32, (blo - 1) as u32));
            }
            start = bhi + 1;
        }
        if start <= end {
            out.push((start as u32, end as u32));
        }
    }
    Ranges::new(out)
}

fn one(v: u32) -> Ranges {
    Ranges::new(vec![(v, v)])
}

/// Whether `set` holds `v` (`Na`: nothing to hold; `Special`: only an unrestricted set).
fn has(set: &Ranges, domain: &Ranges, v: V) -> bool {
    match v {
        V::Na => true,
        V::Val(lo, _) => set.contains(lo),
        V::Block(lo, hi) => set.contains_range(lo, hi),
        V::Special => set.covers(domain),
    }
}

/// A protocol's message space for the sections of two policies.
#[derive(Debug)]
pub(super) struct Model {
    pub protocol: Protocol,
    dims: &'static [Dim],
    /// The unrestricted section (no `[rule.P]` table), to display sets with.
    base: AppRule,
    /// Every value of each field.
    domains: Vec<Ranges>,
    /// The names behind the indices of a `names` field (index 0: any other name).
    names: Vec<Vec<u8>>,
    /// The columns of the sections that hold a preset alone.
    presets: Vec<(Preset, Vec<Ranges>)>,
    /// The atoms of each field.
    atoms: Vec<Vec<Span>>,
    /// Each field's values over every point (for "every …" in displays).
    seen: Vec<BTreeSet<V>>,
    points: Vec<Vec<V>>,
}

impl Model {
    /// The space that tells apart every request the `sections` judge differently.
    pub fn new(protocol: Protocol, sections: &[&AppRule]) -> Model {
        let base = template(protocol, "");
        let all = template(
            protocol,
            &format!("[rule.{}]\npreset = \"all\"\n", protocol),
        );
        let dims = match protocol {
            Protocol::Modbus => MODBUS,
            Protocol::Dnp3 => DNP3,
            Protocol::Enip => ENIP,
            Protocol::EnipIo => ENIP_IO,
            Protocol::S7 => S7,
            Protocol::Iec104 => IEC104,
            Protocol::OpcUa => OPCUA,
            Protocol::Bacnet => BACNET,
        };
        let mut names: BTreeSet<Vec<u8>> = BTreeSet::new();
        for s in sections.iter().copied().chain([&base, &all]) {
            match s {
                AppRule::Enip(r) => {
                    for t in r.tags.iter().flatten() {
                        names.insert(t.as_bytes().to_vec());
                    }
                }
                AppRule::S7(r) => names.extend(r.pi_services.iter().flatten().cloned()),
                _ => {}
            }
        }
        let mut model = Model {
            protocol,
            dims,
            base: base.clone(),
            domains: Vec::new(),
            names: std::iter::once(Vec::new()).chain(names).collect(),
            presets: Vec::new(),
            atoms: Vec::new(),
            seen: Vec::new(),
            points: Vec::new(),
        };
        // A field's domain: whatever the unrestricted sections hold, and anything a
        // section names beyond (ENIP's scoped services).
        let mut domains: Vec<Ranges> = vec![Ranges::none(); dims.len()];
        let columns: Vec<Vec<Ranges>> = sections
            .iter()
            .copied()
            .chain([&base, &all])
            .map(|s| model.columns(s))
            .collect();
        for cols in &columns {
            for (c, set) in cols.iter().enumerate() {
                let d = model.col_dim(c);
                domains[d] = domains[d].union(set);
            }
        }
        model.domains = domains;
        model.presets = [Preset::ReadOnly, Preset::ReadWrite, Preset::Programming]
            .into_iter()
            .map(|p| {
                let body = format!("[rule.{protocol}]\npreset = \"{}\"\n", p.name());
                (p, model.columns(&template(protocol, &body)))
            })
            .collect();
        let extra = model.extra_cuts();
        model.atoms = (0..dims.len())
            .map(|d| {
                let sets: Vec<&[Span]> = columns
                    .iter()
                    .flat_map(|cols| {
                        cols.iter()
                            .enumerate()
                            .filter(|(c, _)| model.col_dim(*c) == d)
                            .map(|(_, s)| spans(s))
                    })
                    .chain(extra[d].iter().map(std::slice::from_ref))
                    .collect();
                cut(spans(&model.domains[d]), sets)
            })
            .collect();
        model.points = model.enumerate();
        model.seen = (0..dims.len())
            .map(|d| model.points.iter().map(|p| p[d]).collect())
            .collect();
        model
    }

    pub fn points(&self) -> &[Vec<V>] {
        &self.points
    }

    /// The sets of a section, one per column: a column per field, and DNP3's `writes`
    /// (a second column of `objects`).
    fn columns(&self, app: &AppRule) -> Vec<Ranges> {
        let names = |list: Option<Vec<&[u8]>>| -> Ranges {
            let n = self.names.len() as u32 - 1;
            match list {
                None => Ranges::all(n),
                Some(list) => Ranges::new(
                    list.into_iter()
                        .filter_map(|x| self.names.iter().position(|y| y == x))
                        .map(|i| (i as u32, i as u32))
                        .collect(),
                ),
            }
        };
        match app {
            AppRule::Modbus(r) => vec![
                r.units.clone(),
                r.functions.clone(),
                r.addresses.clone(),
                r.diagnostics.clone(),
            ],
            AppRule::Dnp3(r) => vec![
                r.outstations.clone(),
                r.masters.clone(),
                r.functions.clone(),
                r.objects.clone(),
                r.indices.clone(),
                r.writes.clone(),
            ],
            AppRule::Enip(r) => {
                // A pattern of stars alone matches every tag.
                let every = r
                    .tags
                    .as_ref()
                    .is_none_or(|t| t.iter().any(|p| p.bytes().all(|c| c == b'*')));
                let tags = (!every).then(|| {
                    r.tags
                        .iter()
                        .flatten()
                        .map(|t| t.as_bytes())
                        .collect::<Vec<_>>()
                });
                vec![
                    r.commands.clone(),
                    r.services.clone(),
                    r.classes.clone(),
                    r.instances.clone(),
                    names(tags),
                ]
            }
            AppRule::EnipIo(r) => vec![r.sizes.clone()],
            AppRule::S7(r) => vec![
                r.tsaps.clone(),
                r.functions.clone(),
                names(
                    r.pi_services
                        .as_ref()
                        .map(|l| l.iter().map(Vec::as_slice).collect()),
                ),
                r.areas.clone(),
                r.dbs.clone(),
            ],
            AppRule::Iec104(r) => vec![
                r.common_addresses.clone(),
                r.types.clone(),
                r.causes.clone(),
                r.ioas.clone(),
            ],
            AppRule::OpcUa(r) => vec![
                match &r.services {
                    None => Ranges::all(u32::MAX),
                    Some(s) => minus(s, &one(OPAQUE_SERVICE)),
                },
                r.policies.clone(),
                r.modes.clone(),
            ],
            AppRule::Bacnet(r) => vec![
                r.services.clone(),
                r.networks.clone(),
                r.objects.clone(),
                r.properties.clone(),
            ],
        }
    }

    fn col_dim(&self, col: usize) -> usize {
        match (self.protocol, col) {
            // DNP3 `writes` is a set of objects.
            (Protocol::Dnp3, 5) => 3,
            (_, c) => c,
        }
    }

    /// Cuts the judging itself needs: values that change what a request carries.
    fn extra_cuts(&self) -> Vec<Vec<Span>> {
        let mut extra = vec![Vec::new(); self.dims.len()];
        let singles = |v: &[u32]| v.iter().map(|&x| (x, x)).collect::<Vec<Span>>();
        match self.protocol {
            Protocol::Modbus => {
                let mut f: Vec<u32> = MODBUS_BLOCKS.iter().map(|&(f, _)| f).collect();
                f.extend([MODBUS_DIAGNOSTICS, MODBUS_MEI]);
                extra[1] = singles(&f);
            }
            Protocol::Dnp3 => {
                let mut f = DNP3_NOT_REQUESTS.to_vec();
                f.push(DNP3_WRITE);
                extra[2] = singles(&f);
            }
            Protocol::Enip => extra[1] = vec![(0, ENIP_MAX_SERVICE)],
            Protocol::S7 => {
                let mut f = S7_ADDRESSED.to_vec();
                f.push(S7_PLC_CONTROL);
                extra[1] = singles(&f);
                extra[3] = singles(S7_DB_AREAS);
            }
            Protocol::OpcUa => extra[0] = singles(&[OPAQUE_SERVICE]),
            _ => {}
        }
        extra
    }

    fn vals(&self, d: usize) -> impl Iterator<Item = V> + '_ {
        self.atoms[d].iter().map(|&(lo, hi)| V::Val(lo, hi))
    }

    /// Atoms, and blocks across atoms no longer than `max` values.
    fn blocks(&self, d: usize, max: u32) -> Vec<V> {
        let atoms = &self.atoms[d];
        let mut out: Vec<V> = self.vals(d).collect();
        for (i, a) in atoms.iter().enumerate() {
            for b in &atoms[i + 1..] {
                if b.0 - a.1 >= max {
                    break;
                }
                out.push(V::Block(a.1, b.0));
            }
        }
        out
    }

    /// Every point worth judging: one atom per field, only the combinations a request
    /// can carry.
    fn enumerate(&self) -> Vec<Vec<V>> {
        let mut out = Vec::new();
        let opt = |d: usize| {
            std::iter::once(V::Na)
                .chain(self.vals(d))
                .collect::<Vec<V>>()
        };
        match self.protocol {
            Protocol::Modbus => {
                for u in self.vals(0) {
                    for f in self.vals(1) {
                        let V::Val(code, _) = f else { continue };
                        if code == MODBUS_MEI {
                            continue; // function 43 is judged with its MEI type (256 + type)
                        }
                        if let Some(&(_, max)) = MODBUS_BLOCKS.iter().find(|(c, _)| *c == code) {
                            for a in self.blocks(2, max) {
                                out.push(vec![u, f, a, V::Na]);
                            }
                        } else if code == MODBUS_DIAGNOSTICS {
                            for s in self.vals(3) {
                                out.push(vec![u, f, V::Na, s]);
                            }
                        } else {
                            out.push(vec![u, f, V::Na, V::Na]);
                        }
                    }
                }
            }
            Protocol::Dnp3 => {
                for o in self.vals(0) {
                    for m in self.vals(1) {
                        for f in self.vals(2) {
                            let V::Val(code, _) = f else { continue };
                            if DNP3_NOT_REQUESTS.contains(&code) {
                                continue;
                            }
                            for obj in opt(3) {
                                let idx = if obj == V::Na { vec![V::Na] } else { opt(4) };
                                for i in idx {
                                    out.push(vec![o, m, f, obj, i]);
                                }
                            }
                        }
                    }
                }
            }
            Protocol::Enip => {
                for c in self.vals(0) {
                    out.push(vec![c, V::Na, V::Na, V::Na, V::Na]);
                    for s in self.vals(1) {
                        for cl in opt(2) {
                            let inst = if cl == V::Na { vec![V::Na] } else { opt(3) };
                            for i in inst {
                                for t in opt(4) {
                                    out.push(vec![c, s, cl, i, t]);
                                }
                            }
                        }
                    }
                }
            }
            Protocol::EnipIo => out.extend(self.vals(0).map(|v| vec![v])),
            Protocol::S7 => {
                let tsaps: Vec<V> = self.vals(0).chain([V::Special]).collect();
                for t in tsaps {
                    for f in self.vals(1) {
                        let V::Val(code, _) = f else { continue };
                        let pis = if code == S7_PLC_CONTROL {
                            self.vals(2).collect()
                        } else {
                            vec![V::Na]
                        };
                        for pi in pis {
                            if !S7_ADDRESSED.contains(&code) {
                                out.push(vec![t, f, pi, V::Na, V::Na]);
                                continue;
                            }
                            for a in self.vals(3).chain([V::Special]) {
                                let db = matches!(a, V::Val(x, _) if S7_DB_AREAS.contains(&x));
                                let dbs = if db {
                                    self.vals(4).collect()
                                } else {
                                    vec![V::Na]
                                };
                                for b in dbs {
                                    out.push(vec![t, f, pi, a, b]);
                                }
                            }
                        }
                    }
                }
            }
            Protocol::Iec104 => {
                let mut ioas = self.blocks(3, 2);
                ioas.push(V::Special);
                for ca in self.vals(0) {
                    for ty in self.vals(1) {
                        for cause in self.vals(2) {
                            for &i in &ioas {
                                out.push(vec![ca, ty, cause, i]);
                            }
                        }
                    }
                }
            }
            Protocol::OpcUa => {
                for s in self.vals(0) {
                    for p in opt(1) {
                        for m in opt(2) {
                            out.push(vec![s, p, m]);
                        }
                    }
                }
            }
            Protocol::Bacnet => {
                let objects: Vec<V> = opt(2).into_iter().chain([V::Special]).collect();
                for s in self.vals(0) {
                    for n in opt(1) {
                        for &o in &objects {
                            for p in opt(3) {
                                out.push(vec![s, n, o, p]);
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Whether a section (its columns, see `columns`) takes the request `p`.
    pub fn contains(&self, cols: &[Ranges], p: &[V]) -> bool {
        let dom = &self.domains;
        let h = |c: usize, d: usize| has(&cols[c], &dom[d], p[d]);
        match self.protocol {
            Protocol::Modbus => {
                let function = match p[1] {
                    V::Val(code, _) if code >= MEI_BASE => {
                        cols[1].contains(MODBUS_MEI) && cols[1].contains(code)
                    }
                    _ => h(1, 1),
                };
                h(0, 0) && function && h(2, 2) && h(3, 3)
            }
            Protocol::Dnp3 => {
                let write = matches!(p[2], V::Val(DNP3_WRITE, _));
                let indices = cols[4].covers(&dom[4]) || h(4, 4);
                h(0, 0) && h(1, 1) && h(2, 2) && h(3, 3) && (!write || h(5, 3)) && indices
            }
            Protocol::Enip => {
                let service = match p[1] {
                    V::Val(k, _) if k > ENIP_MAX_SERVICE => {
                        cols[1].contains(k) || cols[1].contains(k & 0xff)
                    }
                    _ => h(1, 1),
                };
                let every = |c: usize| cols[c].covers(&dom[c]);
                h(0, 0)
                    && service
                    && (every(2) || h(2, 2))
                    && (every(3) || h(3, 3))
                    && (every(4) || h(4, 4))
            }
            Protocol::EnipIo => h(0, 0),
            Protocol::S7 => {
                let restricted = !cols[3].covers(&dom[3]) || !cols[4].covers(&dom[4]);
                let addresses = !restricted || (p[3] != V::Special && h(3, 3) && h(4, 4));
                h(0, 0) && h(1, 1) && h(2, 2) && addresses
            }
            Protocol::Iec104 => h(0, 0) && h(1, 1) && h(2, 2) && h(3, 3),
            Protocol::OpcUa => {
                let policy = match p[1] {
                    V::Na => cols[1].covers(&dom[1]),
                    _ => h(1, 1),
                };
                let mode = match p[2] {
                    // Not shown yet (a secured channel's OPN): sign or sign-and-encrypt.
                    V::Na => cols[2].contains(2) || cols[2].contains(3),
                    _ => h(2, 2),
                };
                h(0, 0) && policy && mode
            }
            Protocol::Bacnet => {
                // What cannot be decoded passes only a rule that limits neither.
                let targets = (cols[2].covers(&dom[2]) && cols[3].covers(&dom[3]))
                    || (p[2] != V::Special && h(2, 2) && h(3, 3));
                h(0, 0) && h(1, 1) && targets
            }
        }
    }

    /// The columns of a section, for `contains`.
    pub fn section(&self, app: &AppRule) -> Vec<Ranges> {
        self.columns(app)
    }

    /// The base section with field `d` (or DNP3's writes, column 5) set to `set`.
    fn with(&self, col: usize, set: &Ranges) -> AppRule {
        let s = set.clone();
        let mut app = self.base.clone();
        match &mut app {
            AppRule::Modbus(r) => {
                let r: &mut ModbusRule = r;
                match col {
                    0 => r.units = s,
                    1 => r.functions = s,
                    2 => r.addresses = s,
                    _ => r.diagnostics = s,
                }
            }
            AppRule::Dnp3(r) => {
                let r: &mut Dnp3Rule = r;
                match col {
                    0 => r.outstations = s,
                    1 => r.masters = s,
                    2 => r.functions = s,
                    3 => r.objects = s,
                    4 => r.indices = s,
                    _ => r.writes = s,
                }
            }
            AppRule::Enip(r) => {
                let r: &mut EnipRule = r;
                match col {
                    0 => r.commands = s,
                    1 => r.services = s,
                    2 => r.classes = s,
                    _ => r.instances = s,
                }
            }
            AppRule::EnipIo(r) => {
                let r: &mut EnipIoRule = r;
                r.sizes = s;
            }
            AppRule::S7(r) => {
                let r: &mut S7Rule = r;
                match col {
                    0 => r.tsaps = s,
                    1 => r.functions = s,
                    3 => r.areas = s,
                    _ => r.dbs = s,
                }
            }
            AppRule::Iec104(r) => {
                let r: &mut Iec104Rule = r;
                match col {
                    0 => r.common_addresses = s,
                    1 => r.types = s,
                    2 => r.causes = s,
                    _ => r.ioas = s,
                }
            }
            AppRule::OpcUa(r) => {
                let r: &mut OpcUaRule = r;
                match col {
                    0 => r.services = Some(minus(&s, &one(OPAQUE_SERVICE))),
                    1 => r.policies = s,
                    _ => r.modes = s,
                }
            }
            AppRule::Bacnet(r) => {
                let r: &mut BacnetRule = r;
                match col {
                    0 => r.services = s,
                    1 => r.networks = s,
                    2 => r.objects = s,
                    _ => r.properties = s,
                }
            }
        }
        app
    }

    /// The values of `set` in column `col`, in the policy's words (without the field's
    /// name): `read-coils,write-single-coil`, `0-99`; "every …" for the whole domain.
    fn words(&self, col: usize, set: &Ranges) -> String {
        let d = self.col_dim(col);
        let dim = &self.dims[d];
        if set.covers(&self.domains[d]) {
            return dim.every.to_string();
        }
        if set.is_empty() {
            return "none".to_string();
        }
        if dim.names {
            let v: Vec<String> = set
                .values()
                .map(|i| match self.names.get(i as usize) {
                    Some(n) if i > 0 => String::from_utf8_lossy(n).into_owned(),
                    _ => "other names".to_string(),
                })
                .collect();
            return shorten(&v.join(","));
        }
        let mut extra = String::new();
        let mut set = set.clone();
        if self.protocol == Protocol::OpcUa && col == 0 && set.contains(OPAQUE_SERVICE) {
            set = minus(&set, &one(OPAQUE_SERVICE));
            extra = " and opaque requests".to_string();
            if set.is_empty() {
                return "opaque requests".to_string();
            }
        }
        // MEI types are function 43's: name them with it.
        if self.protocol == Protocol::Modbus
            && col == 1
            && set.ranges().iter().any(|&(_, hi)| hi >= MEI_BASE)
        {
            set = set.union(&one(MODBUS_MEI));
        }
        // A preset's set reads as the preset, and a little more as "preset + …".
        if dim.codes && col == d {
            let best = self
                .presets
                .iter()
                .filter(|(_, cols)| set.covers(&cols[col]) && !cols[col].is_empty())
                .enumerate()
                .max_by_key(|(i, (_, cols))| (size(&cols[col]), std::cmp::Reverse(*i)))
                .map(|(_, p)| p);
            if let Some((p, cols)) = best {
                let more = minus(&set, &cols[col]);
                if more.is_empty() {
                    return format!("preset {}", p.name()) + &extra;
                }
                let words = self.listed(col, &more);
                if words.split(',').count() <= 6 {
                    return format!("preset {} + {words}", p.name()) + &extra;
                }
            }
        }
        self.listed(col, &set) + &extra
    }

    /// The values of `set` as the section's `Display` lists them.
    fn listed(&self, col: usize, set: &Ranges) -> String {
        // Some displays name every value: not for sets of millions.
        if size(set) > 65536 {
            return set.to_string();
        }
        let text = self.with(col, set).to_string();
        // The base displays as "every …" alone; one restricted field as "name values".
        let values = text
            .split("; ")
            .find_map(|part| {
                part.split_once(' ')
                    .filter(|(n, _)| *n == self.col_name(col))
            })
            .map_or(text.clone(), |(_, v)| v.to_string());
        shorten(&values)
    }

    fn col_name(&self, col: usize) -> &'static str {
        match (self.protocol, col) {
            (Protocol::Dnp3, 5) => "writes",
            _ => self.dims[self.col_dim(col)].name,
        }
    }

    /// Leaves out the blocks (requests across atoms) that reach into an atom whose own
    /// requests are among `points` already: "addresses 200-299" says those blocks too.
    /// What is left are blocks that differ where none of their atoms does (one rule for
    /// 0-199 against two for 0-99 and 100-199).
    pub fn explained(&self, points: &BTreeSet<Vec<V>>) -> BTreeSet<Vec<V>> {
        points
            .iter()
            .filter(|p| {
                p.iter().enumerate().all(|(d, v)| {
                    let V::Block(lo, hi) = *v else { return true };
                    !self.atoms[d]
                        .iter()
                        .filter(|a| a.0 <= hi && a.1 >= lo)
                        .any(|&(alo, ahi)| {
                            let mut q = (*p).clone();
                            q[d] = V::Val(alo, ahi);
                            points.contains(&q)
                        })
                })
            })
            .cloned()
            .collect()
    }

    /// Boxes of points in the policy's words, one line each. Lines merge where the
    /// policy's own words would: boxes that differ in one code field only (functions …)
    /// share a line, and a box of requests that do not carry a field goes into the box
    /// that limits it, as a section that lists classes still takes requests without one.
    pub fn describe_all(&self, boxes: &[Vec<BTreeSet<V>>]) -> Vec<String> {
        let mut lines: Vec<Vec<Part>> = boxes.iter().map(|b| self.parts(b)).collect();
        while let Some((i, j, line)) = self.merge_one(&lines) {
            lines[i] = line;
            lines.remove(j);
        }
        lines
            .iter()
            .map(|parts| {
                let v: Vec<String> = parts
                    .iter()
                    .enumerate()
                    .filter_map(|(d, p)| match p {
                        Part::Limited(vals, extra) => {
                            let mut words = Vec::new();
                            if !vals.is_empty() {
                                words.push(self.words(d, vals));
                            }
                            words.extend(extra.iter().cloned());
                            Some(format!("{} {}", self.dims[d].name, words.join(" and ")))
                        }
                        Part::Every | Part::Absent => None,
                    })
                    .collect();
                if v.is_empty() {
                    format!("every well-formed {} request", self.protocol)
                } else {
                    v.join("; ")
                }
            })
            .collect()
    }

    /// Two lines that can be one, and that one: a line whose every field is the other's
    /// or not carried goes into the other; two lines that differ in one code field
    /// (functions …) share a line when the other differences are fields the codes
    /// themselves carry or not (Modbus addresses exist for some functions only).
    fn merge_one(&self, lines: &[Vec<Part>]) -> Option<(usize, usize, Vec<Part>)> {
        for i in 0..lines.len() {
            for j in 0..lines.len() {
                if i == j {
                    continue;
                }
                let (a, b) = (&lines[i], &lines[j]);
                let mut code = None;
                let mut inside = true;
                let mut implied = true;
                let mut ok = true;
                for k in 0..a.len() {
                    match (&a[k], &b[k]) {
                        (x, y) if x == y => {}
                        (_, Part::Absent) => implied &= self.dims[k].implied,
                        (Part::Absent, _) => {
                            inside = false;
                            implied &= self.dims[k].implied;
                        }
                        (Part::Limited(_, ex), Part::Limited(_, ey))
                            if self.dims[k].codes && ex == ey && code.is_none() =>
                        {
                            code = Some(k)
                        }
                        _ => ok = false,
                    }
                }
                if !ok {
                    continue;
                }
                let (lo, hi) = (i.min(j), i.max(j));
                if code.is_none() && inside {
                    return Some((lo, hi, a.clone()));
                }
                if implied && j > i {
                    let line = a
                        .iter()
                        .zip(b)
                        .map(|(x, y)| match (x, y) {
                            (Part::Absent, y) => y.clone(),
                            (Part::Limited(x, ex), Part::Limited(y, _)) => {
                                Part::Limited(x.union(y), ex.clone())
                            }
                            (x, _) => x.clone(),
                        })
                        .collect();
                    return Some((lo, hi, line));
                }
            }
        }
        None
    }

    /// A box of points (a set of values per field), in the policy's words:
    /// `units 1; functions write-single-register; addresses 100-199`.
    #[cfg(test)]
    pub fn describe(&self, sets: &[BTreeSet<V>]) -> String {
        self.describe_all(&[sets.to_vec()]).remove(0)
    }

    /// What a box says of each field.
    fn parts(&self, sets: &[BTreeSet<V>]) -> Vec<Part> {
        let mut parts = Vec::new();
        for (d, set) in sets.iter().enumerate() {
            if set.iter().all(|v| *v == V::Na) {
                parts.push(Part::Absent);
                continue;
            }
            if self.seen[d].iter().all(|v| *v == V::Na || set.contains(v)) {
                parts.push(Part::Every);
                continue;
            }
            let vals = Ranges::new(
                set.iter()
                    .filter_map(|v| match v {
                        V::Val(lo, hi) => Some((*lo, *hi)),
                        _ => None,
                    })
                    .collect(),
            );
            let mut extra = Vec::new();
            for v in set {
                if let V::Block(lo, hi) = v {
                    // A block that reaches into the values named already is said by them.
                    let named = self.atoms[d]
                        .iter()
                        .filter(|a| a.0 <= *hi && a.1 >= *lo)
                        .any(|a| vals.contains(a.0));
                    if !named {
                        extra.push(format!("spanning {lo}-{hi}"));
                    }
                }
            }
            if set.contains(&V::Special) {
                extra.push(self.dims[d].special.unwrap_or("other values").to_string());
            }
            if extra.is_empty() && vals.covers(&self.domains[d]) {
                parts.push(Part::Every);
            } else {
                parts.push(Part::Limited(vals, extra));
            }
        }
        parts
    }

    /// What changed between two sections of a rule, field by field, in words.
    pub fn changes(&self, old: &AppRule, new: &AppRule) -> Vec<String> {
        let (a, b) = (self.columns(old), self.columns(new));
        let mut out = Vec::new();
        let preset = |app: &AppRule| match app {
            AppRule::Modbus(r) => r.preset,
            AppRule::Dnp3(r) => r.preset,
            AppRule::Enip(r) => r.preset,
            AppRule::EnipIo(r) => r.preset,
            AppRule::S7(r) => r.preset,
            AppRule::Iec104(r) => r.preset,
            AppRule::OpcUa(r) => r.preset,
            AppRule::Bacnet(r) => r.preset,
        };
        let (pa, pb) = (preset(old), preset(new));
        if pa != pb {
            let name = |p: Option<Preset>| p.map_or("none", |p| p.name());
            out.push(format!("preset: {} -> {}", name(pa), name(pb)));
        }
        for (col, (x, y)) in a.iter().zip(&b).enumerate() {
            if x == y {
                continue;
            }
            let name = self.col_name(col);
            let d = self.col_dim(col);
            let (added, removed) = (minus(y, x), minus(x, y));
            if self.dims[d].codes {
                let mut s = Vec::new();
                if !added.is_empty() {
                    s.push(format!("now also {}", self.words(col, &added)));
                }
                if !removed.is_empty() {
                    s.push(format!("no longer {}", self.words(col, &removed)));
                }
                out.push(format!("{name}: {}", s.join("; ")));
            } else {
                let how = if removed.is_empty() {
                    "widened"
                } else if added.is_empty() {
                    "narrowed"
                } else {
                    "changed"
                };
                out.push(format!(
                    "{name}: {how} from {} to {}",
                    self.words(col, x),
                    self.words(col, y)
                ));
            }
        }
        out
    }
}

/// Runs of plain numbers become ranges (`65,66,67` reads `65-67`), and a very long list
/// is cut: `a,b,c,… (80 in all)`.
fn shorten(list: &str) -> String {
    let mut items: Vec<String> = Vec::new();
    let mut run: Option<(u64, u64)> = None;
    let flush = |run: &mut Option<(u64, u64)>, items: &mut Vec<String>| {
        if let Some((lo, hi)) = run.take() {
            items.push(if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            });
        }
    };
    let mut count = 0usize;
    for item in list.split(',') {
        count += 1;
        match (item.parse::<u64>(), &mut run) {
            (Ok(n), Some((_, hi))) if *hi + 1 == n => *hi = n,
            (Ok(n), _) => {
                flush(&mut run, &mut items);
                run = Some((n, n));
            }
            (Err(_), _) => {
                flush(&mut run, &mut items);
                items.push(item.to_string());
            }
        }
    }
    flush(&mut run, &mut items);
    if items.len() <= 40 {
        return items.join(",");
    }
    format!("{},… ({count} in all)", items[..30].join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(proto: &str, body: &str) -> AppRule {
        let text = format!(
            "schema = 1\n[gatekeeper]\nname = \"t\"\nmode = \"enforce\"\n[[rule]]\nname = \"r\"\n\
             from = \"any\"\nto = \"any\"\nproto = \"{proto}\"\naction = \"allow\"\n[rule.{proto}]\n{body}\n"
        );
        Policy::from_toml(&text, "t.toml").unwrap().0.rules()[0]
            .app
            .clone()
            .unwrap()
    }

    /// The boxes of points one section takes and the other does not.
    fn wider(model: &Model, a: &AppRule, b: &AppRule) -> Vec<String> {
        let (ca, cb) = (model.section(a), model.section(b));
        let points: BTreeSet<Vec<V>> = model
            .points()
            .iter()
            .filter(|p| model.contains(&cb, p) && !model.contains(&ca, p))
            .cloned()
            .collect();
        super::super::space::boxes(&points)
            .iter()
            .map(|b| model.describe(b))
            .collect()
    }

    #[test]
    fn modbus_widening_is_named_in_the_policy_words() {
        let old = section(
            "modbus",
            "units = [1]\nfunctions = [\"read-holding-registers\"]\naddresses = [\"0-99\"]",
        );
        let new = section(
            "modbus",
            "units = [1]\nfunctions = [\"read-holding-registers\", \"write-single-register\"]\naddresses = [\"0-199\"]",
        );
        let model = Model::new(Protocol::Modbus, &[&old, &new]);
        let w = wider(&model, &old, &new);
        assert_eq!(
            w,
            vec![
                "units 1; functions read-holding-registers; addresses 100-199",
                "units 1; functions write-single-register; addresses 0-199",
            ],
            "{w:#?}"
        );
        assert!(wider(&model, &new, &old).is_empty());
        assert_eq!(
            model.changes(&old, &new),
            vec![
                "functions: now also write-single-register",
                "addresses: widened from 0-99 to 0-199"
            ]
        );
    }

    #[test]
    fn modbus_functions_without_addresses_ignore_address_changes() {
        let old = section(
            "modbus",
            "functions = [\"report-server-id\"]\naddresses = [\"0-99\"]",
        );
        let new = section(
            "modbus",
            "functions = [\"report-server-id\"]\naddresses = [\"0-199\"]",
        );
        let model = Model::new(Protocol::Modbus, &[&old, &new]);
        assert!(wider(&model, &old, &new).is_empty());
    }

    #[test]
    fn modbus_blocks_across_rules_are_probed() {
        // One rule for 0-199 versus two for 0-99 and 100-199: single registers are the
        // same, a block across 99/100 is not.
        let whole = section("modbus", "functions = [3]\naddresses = [\"0-199\"]");
        let low = section("modbus", "functions = [3]\naddresses = [\"0-99\"]");
        let high = section("modbus", "functions = [3]\naddresses = [\"100-199\"]");
        let model = Model::new(Protocol::Modbus, &[&whole, &low, &high]);
        let (w, l, h) = (
            model.section(&whole),
            model.section(&low),
            model.section(&high),
        );
        let differ: Vec<&Vec<V>> = model
            .points()
            .iter()
            .filter(|p| model.contains(&w, p) != (model.contains(&l, p) || model.contains(&h, p)))
            .collect();
        assert!(!differ.is_empty());
        assert!(differ.iter().all(|p| matches!(p[2], V::Block(99, 100))));
    }

    #[test]
    fn modbus_mei_types_and_diagnostics() {
        let ro = section("modbus", "preset = \"read-only\"");
        let prog = section(
            "modbus",
            "preset = \"programming\"\ndiagnostics = [\"return-query-data\"]",
        );
        let model = Model::new(Protocol::Modbus, &[&ro, &prog]);
        let w = wider(&model, &ro, &prog).join("\n");
        assert!(w.contains("canopen-general-reference"), "{w}");
        assert!(w.contains("functions diagnostics; diagnostics 0"), "{w}");
        assert!(wider(&model, &prog, &ro).is_empty());
    }

    #[test]
    fn every_protocol_has_a_space_and_equal_sections_never_differ() {
        let cases = [
            (
                "dnp3",
                "preset = \"read-only\"\noutstations = [10]",
                "preset = \"read-write\"\noutstations = [10]\nindices = [\"0-3\"]",
            ),
            (
                "enip",
                "preset = \"read-only\"\ntags = [\"hmi_*\"]",
                "preset = \"read-write\"",
            ),
            ("enip-io", "sizes = [\"0-2\"]", "sizes = [\"0-64\"]"),
            (
                "s7",
                "preset = \"read-only\"\nareas = [\"db\"]\ndbs = [\"1-9\"]",
                "preset = \"read-write\"\nareas = [\"db\"]\ndbs = [\"1-19\"]",
            ),
            (
                "iec104",
                "preset = \"read-only\"",
                "preset = \"read-write\"\nioas = [\"100-199\"]",
            ),
            (
                "opcua",
                "preset = \"read-only\"\nsecurity-policies = [\"basic256sha256\"]",
                "preset = \"read-write\"",
            ),
            (
                "bacnet",
                "preset = \"read-only\"",
                "preset = \"read-write\"\nobjects = [\"analog-value:1-20\"]",
            ),
        ];
        for (proto, a, b) in cases {
            let (a, b) = (section(proto, a), section(proto, b));
            let model = Model::new(a.protocol(), &[&a, &b]);
            assert!(!model.points().is_empty(), "{proto}");
            assert!(
                model.points().len() < 200_000,
                "{proto}: {}",
                model.points().len()
            );
            assert!(wider(&model, &a, &a).is_empty(), "{proto}");
            let w = wider(&model, &a, &b);
            assert!(!w.is_empty(), "{proto}: no widening found");
            assert!(!model.changes(&a, &b).is_empty(), "{proto}");
        }
    }

    #[test]
    fn bacnet_undecoded_objects_pass_only_an_unlimited_rule() {
        let all = section("bacnet", "preset = \"read-only\"");
        let props = section(
            "bacnet",
            "preset = \"read-only\"\nproperties = [\"present-value\"]",
        );
        let model = Model::new(Protocol::Bacnet, &[&all, &props]);
        let w = wider(&model, &props, &all).join("\n");
        assert!(w.contains("objects that cannot be decoded"), "{w}");
        assert!(wider(&model, &all, &props).is_empty());
    }

    #[test]
    fn minus_cuts_holes() {
        let a = Ranges::new(vec![(0, 100), (200, 300)]);
        let b = Ranges::new(vec![(50, 60), (100, 250)]);
        assert_eq!(minus(&a, &b).ranges(), &[(0, 49), (61, 99), (251, 300)]);
        assert_eq!(
            minus(&Ranges::all(u32::MAX), &one(u32::MAX)).ranges(),
            &[(0, u32::MAX - 1)]
        );
        assert!(minus(&a, &a).is_empty());
    }
}
