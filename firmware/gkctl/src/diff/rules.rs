//! Rule by rule: rules matched by name, added, removed, changed field by field, and
//! moved (order decides: the first match wins).

use std::collections::{BTreeSet, HashMap};

use gk_policy::{IcmpTypes, Policy, Proto, Ranges, Rule};

use super::app::{minus, Model};
use super::effect::{overlap, Space};
use super::labels::icmp_name;
use super::{Item, Mark};

/// The rule-by-rule changes, in the new file's order (removed rules last).
pub(super) fn changes(old: &Policy, new: &Policy, space: &Space) -> Vec<Item> {
    let index = |p: &Policy| -> HashMap<String, usize> {
        p.rules()
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.clone(), i))
            .collect()
    };
    let (in_old, in_new) = (index(old), index(new));
    let moved = moved(new, &in_old);
    let mut out = Vec::new();
    for (j, r) in new.rules().iter().enumerate() {
        let Some(&i) = in_old.get(&r.name) else {
            out.push(Item::new(
                "rules",
                Mark::Note,
                format!("added    {:?} (line {}): {}", r.name, r.line, body(r)),
                serde_json::json!({"change": "added", "rule": r.name, "line": r.line, "rule_text": body(r)}),
            ));
            continue;
        };
        let o = &old.rules()[i];
        let fields = fields(o, r);
        if !fields.is_empty() {
            let mut item = Item::new(
                "rules",
                Mark::Note,
                format!("changed  {:?} (line {}, was {}):", r.name, r.line, o.line),
                serde_json::json!({"change": "changed", "rule": r.name, "line": r.line,
                    "old": body(o), "new": body(r), "fields": fields}),
            );
            item.detail = fields;
            out.push(item);
        }
        if moved.contains(&r.name) {
            out.push(move_item(old, new, space, i, j, &in_new));
        }
    }
    for r in old.rules() {
        if !in_new.contains_key(&r.name) {
            out.push(Item::new(
                "rules",
                Mark::Note,
                format!("removed  {:?} (old line {}): {}", r.name, r.line, body(r)),
                serde_json::json!({"change": "removed", "rule": r.name, "line": r.line, "rule_text": body(r)}),
            ));
        }
    }
    out
}

/// The rule as `Display` shows it, without its name.
fn body(r: &Rule) -> String {
    let text = r.to_string();
    text.split_once(": ")
        .map_or(text.clone(), |(_, b)| b.to_string())
}

/// The rules present in both whose order relative to the others changed: those outside
/// a longest run that kept its order.
fn moved(new: &Policy, in_old: &HashMap<String, usize>) -> BTreeSet<String> {
    // Old positions of the common rules, in new order.
    let seq: Vec<(usize, &str)> = new
        .rules()
        .iter()
        .filter_map(|r| in_old.get(&r.name).map(|&i| (i, r.name.as_str())))
        .collect();
    // Longest increasing subsequence (quadratic: policies have at most a few hundred rules).
    let n = seq.len();
    let mut len = vec![1usize; n];
    let mut prev = vec![usize::MAX; n];
    for i in 0..n {
        for j in 0..i {
            if seq[j].0 < seq[i].0 && len[j] + 1 > len[i] {
                len[i] = len[j] + 1;
                prev[i] = j;
            }
        }
    }
    let mut keep = BTreeSet::new();
    if let Some(mut k) = (0..n).max_by_key(|&i| (len[i], std::cmp::Reverse(i))) {
        loop {
            keep.insert(k);
            if prev[k] == usize::MAX {
                break;
            }
            k = prev[k];
        }
    }
    (0..n)
        .filter(|i| !keep.contains(i))
        .map(|i| seq[i].1.to_string())
        .collect()
}

fn move_item(
    old: &Policy,
    new: &Policy,
    space: &Space,
    i: usize,
    j: usize,
    in_new: &HashMap<String, usize>,
) -> Item {
    let name = &new.rules()[j].name;
    // The common rules it changed places with: now above it, now below it.
    let mut above = Vec::new();
    let mut below = Vec::new();
    for (k, o) in old.rules().iter().enumerate() {
        let Some(&m) = in_new.get(&o.name) else {
            continue;
        };
        if k < i && m > j {
            // Was above it, is now below it.
            below.push(m);
        } else if k > i && m < j {
            above.push(m);
        }
    }
    below.sort_unstable();
    above.sort_unstable();
    let names = |v: &[usize]| -> String {
        let n: Vec<String> = v
            .iter()
            .map(|&m| format!("{:?}", new.rules()[m].name))
            .collect();
        n.join(", ")
    };
    let mut parts = Vec::new();
    if !below.is_empty() {
        parts.push(format!("now above {} (was below)", names(&below)));
    }
    if !above.is_empty() {
        parts.push(format!("now below {} (was above)", names(&above)));
    }
    let crossed: Vec<usize> = above.iter().chain(&below).copied().collect();
    let matters: Vec<usize> = crossed
        .iter()
        .copied()
        .filter(|&m| overlap(new, space, j, m))
        .collect();
    let why = if matters.is_empty() {
        "they never match the same conversation: the order makes no difference".to_string()
    } else {
        format!(
            "it matches some of the same conversations as {}: the order decides which rule judges them",
            names(&matters)
        )
    };
    Item::new(
        "rules",
        Mark::Note,
        format!("moved    {name:?}: {}; {why}", parts.join(", ")),
        serde_json::json!({"change": "moved", "rule": name, "line": new.rules()[j].line,
            "crossed": crossed.iter().map(|&m| &new.rules()[m].name).collect::<Vec<_>>(),
            "order_matters": !matters.is_empty()}),
    )
}

fn ports_ranges(r: &Rule) -> Ranges {
    Ranges::new(
        r.ports
            .ranges()
            .iter()
            .map(|&(lo, hi)| (u32::from(lo), u32::from(hi)))
            .collect(),
    )
}

fn icmp_ranges(t: &IcmpTypes) -> Ranges {
    Ranges::new(t.iter().map(|t| (u32::from(t), u32::from(t))).collect())
}

/// What changed in a rule, field by field.
fn fields(o: &Rule, r: &Rule) -> Vec<String> {
    let mut out = Vec::new();
    // Host names: a host's addresses are compared in the settings.
    if o.from.hosts() != r.from.hosts() {
        out.push(format!("from: {} -> {}", o.from, r.from));
    }
    if o.to.hosts() != r.to.hosts() {
        out.push(format!("to: {} -> {}", o.to, r.to));
    }
    if o.proto != r.proto {
        out.push(format!("proto: {} -> {}", o.proto, r.proto));
    }
    if o.ports != r.ports {
        let (a, b) = (ports_ranges(o), ports_ranges(r));
        let text = |s: &Ranges| {
            if s.is_all(65535) {
                "every port".to_string()
            } else {
                s.to_string()
            }
        };
        let (added, removed) = (minus(&b, &a), minus(&a, &b));
        out.push(match (added.is_empty(), removed.is_empty()) {
            (false, true) => format!("ports: now also {} (was {})", text(&added), text(&a)),
            (true, false) => format!("ports: no longer {} (was {})", text(&removed), text(&a)),
            _ => format!("ports: {} -> {}", text(&a), text(&b)),
        });
    }
    if o.icmp != r.icmp {
        let v6 = r.proto == Proto::Icmpv6;
        let text = |s: &Ranges| -> String {
            if s.is_all(255) {
                return "every type".to_string();
            }
            let v: Vec<String> = s.values().map(|t| icmp_name(v6, t)).collect();
            v.join(",")
        };
        let (a, b) = (icmp_ranges(&o.icmp), icmp_ranges(&r.icmp));
        let mut s = Vec::new();
        let (added, removed) = (minus(&b, &a), minus(&a, &b));
        if !added.is_empty() {
            s.push(format!("now also {}", text(&added)));
        }
        if !removed.is_empty() {
            s.push(format!("no longer {}", text(&removed)));
        }
        out.push(format!("icmp types: {}", s.join("; ")));
    }
    if o.action != r.action {
        let warn = if !o.action.permits() && r.action.permits() {
            " (what it matched is now allowed)"
        } else if o.action.permits() && !r.action.permits() {
            " (what it matched is now denied)"
        } else {
            ""
        };
        out.push(format!("action: {} -> {}{warn}", o.action, r.action));
    }
    if o.log != r.log {
        let onoff = |b: bool| if b { "on" } else { "off" };
        out.push(format!("log: {} -> {}", onoff(o.log), onoff(r.log)));
    }
    if o.on_deny != r.on_deny {
        out.push(format!(
            "on-deny: {} -> {}",
            o.on_deny.as_str(),
            r.on_deny.as_str()
        ));
    }
    match (&o.app, &r.app) {
        (Some(a), Some(b)) if a.protocol() == b.protocol() => {
            if a != b {
                let model = Model::new(a.protocol(), &[a, b]);
                let p = a.protocol();
                for c in model.changes(a, b) {
                    out.push(format!("{p} {c}"));
                }
            }
        }
        (None, None) => {}
        (a, b) => {
            let text = |s: Option<&gk_policy::AppRule>| {
                s.map_or("no section".to_string(), |s| format!("[{s}]"))
            };
            out.push(format!(
                "section: {} -> {}",
                text(a.as_ref()),
                text(b.as_ref())
            ));
        }
    }
    out
}
