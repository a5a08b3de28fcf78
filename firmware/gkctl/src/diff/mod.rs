//! `gkctl diff OLD NEW`: what a new policy allows that the old did not, and the reverse.
//!
//! The report has three parts:
//! - **Settings** ([`settings`]): mode, name, layer 2, MAC pins, hosts, limits;
//! - **Traffic** ([`effect`]): the effect, computed from both compiled policies over
//!   every conversation they can tell apart ([`space`]) and, for industrial protocols,
//!   over every request their sections can tell apart ([`app`]); grouped into boxes of
//!   (from, to, service) and named with host names ([`labels`]);
//! - **Rules** ([`rules`]): rules matched by name: added, removed, changed field by
//!   field, moved.
//!
//! Exit status: 0 when both policies let exactly the same traffic through (whatever
//! else changed), 1 when they do not, 2 when an input cannot be read or is not a valid
//! policy or bundle.

mod app;
mod effect;
mod labels;
mod rules;
mod settings;
mod space;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use gk_policy::{Mode, Policy, Severity};

use effect::{Effect, Kind, Space};
use labels::Labels;

#[derive(Debug, Args)]
#[command(after_long_help = "\
The report lists, for a reviewer:
  Settings  mode, layer 2, MAC pins, hosts, limits;
  Traffic   every conversation (from, to, protocol, port or ICMP type) and every
            industrial request (units, functions, addresses ...) the two policies
            judge differently, computed from both policies, with the rule that
            decides in each;
  Rules     rules matched by name: added, removed, changed field by field, moved.
Marks: + allows more, - allows less, ! both, ~ changes no verdict.

Bundles are read without checking their signatures (use `gkctl verify`).

Exit status: 0 when both policies let exactly the same traffic through, 1 when
they do not, 2 when an input cannot be read or is not a valid policy or bundle.")]
pub struct DiffArgs {
    /// The policy (TOML) or bundle (.gkb) in force.
    pub old: PathBuf,
    /// The policy or bundle that would replace it.
    pub new: PathBuf,
    /// One JSON object per change, for tools.
    #[arg(long)]
    pub json: bool,
}

/// The first line of every bundle file.
const BUNDLE_MAGIC: &[u8] = b"gatekeeper-bundle 1";
/// Larger inputs are not policies.
const MAX_INPUT: u64 = 16 << 20;

/// What a change does to the traffic that passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Mark {
    /// Lets through something that did not pass before.
    Wider,
    /// Both: lets through something new and stops something old.
    Both,
    /// Stops something that passed before.
    Narrower,
    /// Changes no verdict (reporting, names, limits, the rules' text).
    Note,
}

impl Mark {
    fn sign(self) -> char {
        match self {
            Mark::Wider => '+',
            Mark::Both => '!',
            Mark::Narrower => '-',
            Mark::Note => '~',
        }
    }

    fn word(self) -> &'static str {
        match self {
            Mark::Wider => "widens",
            Mark::Both => "changes",
            Mark::Narrower => "narrows",
            Mark::Note => "note",
        }
    }
}

/// One change, for text and JSON.
#[derive(Debug)]
pub(crate) struct Item {
    section: &'static str,
    mark: Mark,
    text: String,
    /// Further lines, indented under the first.
    detail: Vec<String>,
    json: serde_json::Value,
}

impl Item {
    fn new(section: &'static str, mark: Mark, text: String, json: serde_json::Value) -> Item {
        Item {
            section,
            mark,
            text,
            detail: Vec::new(),
            json,
        }
    }

    fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "section": self.section,
            "effect": self.mark.word(),
            "text": self.text,
        });
        if !self.detail.is_empty() {
            v["detail"] = serde_json::json!(self.detail);
        }
        if let (Some(obj), serde_json::Value::Object(extra)) = (v.as_object_mut(), &self.json) {
            for (k, x) in extra {
                obj.entry(k.clone()).or_insert_with(|| x.clone());
            }
        }
        v
    }
}

/// A policy read from a file, with the bundle's metadata when it came in one.
struct Input {
    path: PathBuf,
    policy: Policy,
    bundle: Option<gk_bundle::format::Metadata>,
}

impl Input {
    fn describe(&self) -> String {
        let p = &self.policy;
        let bundle = self
            .bundle
            .as_ref()
            .map(|m| format!(" (bundle serial {}, signatures not checked)", m.serial))
            .unwrap_or_default();
        format!(
            "{}{bundle}: policy {:?}, {} mode, {} rule{}",
            self.path.display(),
            p.name(),
            p.mode(),
            p.rules().len(),
            plural(p.rules().len())
        )
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "file": self.path.display().to_string(),
            "policy": self.policy.name(),
            "mode": self.policy.mode().as_str(),
            "rules": self.policy.rules().len(),
            "bundle_serial": self.bundle.as_ref().map(|m| m.serial),
        })
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Whether the file is a bundle: by its name, or by its first line.
fn is_bundle(path: &Path, bytes: &[u8]) -> bool {
    path.extension().is_some_and(|e| e == "gkb")
        || bytes
            .strip_prefix(BUNDLE_MAGIC)
            .is_some_and(|rest| matches!(rest.first(), None | Some(b'\n' | b'\r')))
}

/// Reads a policy or a bundle's policy; on failure, says why on stderr.
fn load(path: &Path) -> Result<Input, ()> {
    let fail = |what: String| {
        eprintln!("gkctl diff: {}: {what}", path.display());
    };
    let size = std::fs::metadata(path)
        .map_err(|e| fail(format!("cannot read: {e}")))?
        .len();
    if size > MAX_INPUT {
        fail(format!(
            "{size} bytes: too large for a policy or bundle (at most {MAX_INPUT})"
        ));
        return Err(());
    }
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let (text, name, bundle) = if is_bundle(path, &bytes) {
        let (meta, text) = gk_bundle::format::read_unverified(&bytes)
            .map_err(|e| fail(format!("not a readable bundle: {e}")))?;
        let inner = meta.policy_file.clone().unwrap_or_else(|| "policy".into());
        (text, format!("{}[{inner}]", path.display()), Some(meta))
    } else {
        let text = String::from_utf8(bytes)
            .map_err(|_| fail("not a policy: the file is not UTF-8 text".to_string()))?;
        (text, path.display().to_string(), None)
    };
    match Policy::from_toml(&text, &name) {
        Ok((policy, _warnings)) => Ok(Input {
            path: path.to_path_buf(),
            policy,
            bundle,
        }),
        Err(err) => {
            for d in &err.diagnostics {
                eprintln!("{d}");
            }
            let n = err
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            eprintln!(
                "gkctl diff: {name}: not a valid policy ({n} error{})",
                plural(n)
            );
            Err(())
        }
    }
}

pub fn diff(args: &DiffArgs) -> anyhow::Result<ExitCode> {
    // Read both, so that every bad input is reported at once.
    let (old, new) = (load(&args.old), load(&args.new));
    let (Ok(old), Ok(new)) = (old, new) else {
        return Ok(ExitCode::from(2));
    };
    let report = Report::new(&old.policy, &new.policy);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        report.write_json(&mut out, &old, &new)?;
    } else {
        report.write_text(&mut out, &old, &new)?;
    }
    out.flush()?;
    Ok(if report.same_traffic() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Everything the diff found.
struct Report {
    settings: Vec<Item>,
    traffic: Vec<Item>,
    rules: Vec<Item>,
    /// Either policy is in monitor mode.
    monitor: Option<String>,
}

impl Report {
    fn new(old: &Policy, new: &Policy) -> Report {
        let space = Space::new(old, new);
        let labels = Labels::new(old, new, &space.atoms);
        let settings = settings::changes(old, new, &space, &labels);
        let mut effects = effect::effects(old, new, &space);
        effects.sort_by_key(|e| e.key.kind);
        let traffic = effects
            .iter()
            .map(|e| traffic_item(old, new, &space, &labels, e))
            .collect();
        let rules = rules::changes(old, new, &space);
        let monitor = match (old.mode(), new.mode()) {
            (Mode::Monitor, Mode::Monitor) => Some("both policies are in monitor mode"),
            (Mode::Monitor, _) => Some("the old policy is in monitor mode"),
            (_, Mode::Monitor) => Some("the new policy is in monitor mode"),
            _ => None,
        }
        .map(|m| {
            format!(
                "{m}: in that mode every frame passes; below is what the rules of each \
                 policy allow when enforced"
            )
        });
        Report {
            settings,
            traffic,
            rules,
            monitor,
        }
    }

    fn count(&self, mark: Mark) -> usize {
        self.settings
            .iter()
            .chain(&self.traffic)
            .filter(|i| i.mark == mark)
            .count()
    }

    fn same_traffic(&self) -> bool {
        self.settings
            .iter()
            .chain(&self.traffic)
            .all(|i| i.mark == Mark::Note)
    }

    fn verdict(&self) -> String {
        let (w, b, n) = (
            self.count(Mark::Wider),
            self.count(Mark::Both),
            self.count(Mark::Narrower),
        );
        // "1 change widens", "2 changes widen".
        let changes = |k: usize, verb: &str| {
            if k == 1 {
                format!("1 change {verb}s")
            } else {
                format!("{k} changes {verb}")
            }
        };
        if w + b + n == 0 {
            let text = if self.settings.is_empty() && self.rules.is_empty() {
                ""
            } else {
                " (other things changed: see below)"
            };
            return format!("The two policies allow exactly the same traffic{text}.");
        }
        let mut parts = Vec::new();
        if w > 0 {
            parts.push(format!("{} access (+)", changes(w, "widen")));
        }
        if b > 0 {
            parts.push(format!("{} it both ways (!)", changes(b, "change")));
        }
        if n > 0 {
            parts.push(format!("{} it (-)", changes(n, "narrow")));
        }
        if w + b > 0 {
            format!(
                "The new policy ALLOWS MORE than the old one: {}.",
                parts.join(", ")
            )
        } else {
            format!(
                "The new policy allows less than the old one: {}; nothing is widened.",
                parts.join(", ")
            )
        }
    }

    fn write_text(&self, out: &mut impl Write, old: &Input, new: &Input) -> std::io::Result<()> {
        writeln!(out, "old: {}", old.describe())?;
        writeln!(out, "new: {}", new.describe())?;
        writeln!(out)?;
        writeln!(out, "{}", self.verdict())?;
        let item = |out: &mut dyn Write, i: &Item| -> std::io::Result<()> {
            writeln!(out, "  {} {}", i.mark.sign(), i.text)?;
            for d in &i.detail {
                writeln!(out, "        {d}")?;
            }
            Ok(())
        };
        if !self.settings.is_empty() {
            writeln!(out, "\nSettings")?;
            for i in &self.settings {
                item(out, i)?;
            }
        }
        writeln!(out, "\nTraffic")?;
        if let Some(m) = &self.monitor {
            writeln!(out, "  ({m})")?;
        }
        if self.traffic.is_empty() {
            writeln!(
                out,
                "  The rules of both policies treat every conversation and request alike."
            )?;
        }
        let heads = [
            (
                Mark::Wider,
                "What the new policy ALLOWS that the old one denied:",
            ),
            (Mark::Both, "Allowed by both, but judged differently:"),
            (
                Mark::Narrower,
                "What the new policy denies that the old one allowed:",
            ),
            (Mark::Note, "Allowed by both, reported differently:"),
        ];
        for (mark, head) in heads {
            let items: Vec<&Item> = self.traffic.iter().filter(|i| i.mark == mark).collect();
            if items.is_empty() {
                continue;
            }
            writeln!(out, "  {head}")?;
            for i in items {
                item(out, i)?;
            }
        }
        if !self.rules.is_empty() {
            writeln!(
                out,
                "\nRules (matched by name; the first rule that matches decides)"
            )?;
            for i in &self.rules {
                item(out, i)?;
            }
        }
        writeln!(
            out,
            "\n+ allows more  - allows less  ! both  ~ changes no verdict"
        )?;
        Ok(())
    }

    fn write_json(&self, out: &mut impl Write, old: &Input, new: &Input) -> std::io::Result<()> {
        for i in self.settings.iter().chain(&self.traffic).chain(&self.rules) {
            writeln!(out, "{}", i.to_json())?;
        }
        let summary = serde_json::json!({"summary": {
            "same_traffic": self.same_traffic(),
            "widens": self.count(Mark::Wider),
            "narrows": self.count(Mark::Narrower),
            "both": self.count(Mark::Both),
            "verdict": self.verdict(),
            "old": old.to_json(),
            "new": new.to_json(),
        }});
        writeln!(out, "{summary}")
    }
}

fn traffic_item(old: &Policy, new: &Policy, space: &Space, labels: &Labels, e: &Effect) -> Item {
    let from = labels.addresses(&e.from);
    let to = labels.addresses(&e.to);
    let services = labels::services(&space.services, &e.services);
    let k = &e.key;
    let mark = match k.kind {
        Kind::Widens => Mark::Wider,
        Kind::Narrows => Mark::Narrower,
        Kind::Changes => Mark::Both,
        Kind::Reporting => Mark::Note,
    };
    let mut text = format!(
        "from {} to {}: {}",
        from.join(", "),
        to.join(", "),
        services.join("; ")
    );
    let mut detail = Vec::new();
    if let Some((p, boxes)) = &k.requests {
        text.push_str(&format!(", {p} requests:"));
        detail.extend(boxes.iter().cloned());
    }
    if let Some(note) = &k.note {
        text.push_str(&format!(": {note}"));
    }
    let (was, now) = (k.old.text(old), k.new.text(new));
    detail.push(format!("before: {was}"));
    detail.push(format!("now:    {now}"));
    let verdict = |o: &effect::Outcome, p: &Policy| {
        serde_json::json!({
            "verdict": if o.permits(p) { "allow" } else { "deny" },
            "rule": o.rule(p),
            "text": o.text(p),
        })
    };
    let json = serde_json::json!({
        "from": from,
        "to": to,
        "services": services,
        "protocol": k.requests.as_ref().map(|(p, _)| p.name()),
        "requests": k.requests.as_ref().map(|(_, b)| b),
        "note": k.note,
        "old": verdict(&k.old, old),
        "new": verdict(&k.new, new),
    });
    let mut item = Item::new("traffic", mark, text, json);
    item.detail = detail;
    item
}
