//! `gkctl`, the operator's tool.
//!
//! Verbs: `lint` and `replay` (here); `keygen`, `sign`, `cosign`, `verify`, `show`,
//! `audit` (bundles, `bundles.rs`); `diff` (`diff.rs`); `apply`, `confirm`, `status`
//! (the daemon's control socket, `control.rs`); `flash` (an image to a disk, `flash/`)
//! and `update-info` (an image update, `update_info.rs`).

mod bundles;
mod control;
mod diff;
mod flash;
mod update_info;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use gk_dataplane::{
    describe, EventFormatter, EventVerdict, Now, NullSink, Outcome, Pipeline, Port, Reason,
};
use gk_packet::MacAddr;
use gk_policy::Policy;

#[derive(Debug, Parser)]
#[command(name = "gkctl", version, about = "The gatekeeper operator's tool", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a policy file: exit 0 when it is valid, otherwise print every error with its
    /// file, line and column and exit 1.
    Lint {
        /// The policy (TOML).
        policy: PathBuf,
        /// Print only errors and warnings, not the summary.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Run a policy over a capture (pcap or pcapng) with the same pipeline the daemon
    /// uses, and print one verdict per packet, then a summary per rule and reason.
    ///
    /// A capture does not say which port a frame came in on. By default gkctl decides
    /// it by MAC address: the first frame's sender is on the plant side, and the receiver
    /// of a frame is on the other side from its sender. `--asset-mac` fixes hosts to the
    /// asset side instead.
    Replay {
        /// The policy (TOML).
        #[arg(long)]
        policy: PathBuf,
        /// One JSON object per packet (the event schema), then a JSON summary.
        #[arg(long)]
        json: bool,
        /// A MAC address that is on the asset side (repeatable); all others are plant.
        #[arg(long = "asset-mac", value_name = "MAC")]
        asset_macs: Vec<MacAddr>,
        /// The capture file.
        capture: PathBuf,
    },
    /// Make a signing key pair: DIR/NAME.key (secret, mode 0600) and DIR/NAME.pub.
    Keygen(bundles::KeygenArgs),
    /// Sign a policy into a bundle (the policy is linted first; a bad one is refused).
    Sign(bundles::SignArgs),
    /// Add a signature to a bundle (for policies that need k of n signers).
    Cosign(bundles::CosignArgs),
    /// Check a bundle against a trust store: exit 0, or the reason it would be refused.
    Verify(bundles::VerifyArgs),
    /// Print what a bundle carries: metadata, signers, a summary of its policy.
    Show(bundles::ShowArgs),
    /// Print a state directory's audit log and verify its hash chain (exit 1 if broken).
    Audit(bundles::AuditArgs),
    /// What a new policy (or bundle) allows that the old one did not, and what it no
    /// longer allows, rule by rule.
    Diff(diff::DiffArgs),
    /// Offer a bundle to a running gatekeeperd through its control socket.
    Apply(control::ApplyArgs),
    /// Confirm the pending bundle of a running gatekeeperd (before its window ends).
    Confirm(control::ConfirmArgs),
    /// A running gatekeeperd's state: mode, bundle, signers, counters, pending apply.
    Status(control::StatusArgs),
    /// Write a firmware image to a USB stick or disk (only the blocks its bmap maps),
    /// verify it by reading it back, and show the manifest's version and signature.
    Flash(flash::FlashArgs),
    /// Show what an image update (*.gku) carries and check it as a box would.
    UpdateInfo(update_info::UpdateInfoArgs),
}

fn main() -> ExitCode {
    // SAFETY: restores the default action for SIGPIPE before any other thread exists, so
    // that `gkctl … | head` ends quietly, as Unix tools do, instead of panicking.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Lint { policy, quiet } => lint(&policy, quiet),
        Command::Replay {
            policy,
            json,
            asset_macs,
            capture,
        } => replay(&policy, json, &asset_macs, &capture),
        Command::Keygen(args) => bundles::keygen(&args),
        Command::Sign(args) => bundles::sign(&args),
        Command::Cosign(args) => bundles::cosign(&args),
        Command::Verify(args) => bundles::verify(&args),
        Command::Show(args) => bundles::show(&args),
        Command::Audit(args) => bundles::audit(&args),
        Command::Diff(args) => diff::diff(&args),
        Command::Apply(args) => control::apply(&args),
        Command::Confirm(args) => control::confirm(&args),
        Command::Status(args) => control::status(&args),
        Command::Flash(args) => flash::flash(&args),
        Command::UpdateInfo(args) => update_info::update_info(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("gkctl: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn lint(path: &Path, quiet: bool) -> anyhow::Result<ExitCode> {
    match Policy::load(path) {
        Ok((policy, warnings)) => {
            for warning in &warnings {
                eprintln!("{warning}");
            }
            if !quiet {
                print!("{}", policy.summary());
                println!(
                    "{}: ok ({} warning{})",
                    path.display(),
                    warnings.len(),
                    plural(warnings.len())
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            for diagnostic in &err.diagnostics {
                eprintln!("{diagnostic}");
            }
            let errors = err
                .diagnostics
                .iter()
                .filter(|d| d.severity == gk_policy::Severity::Error)
                .count();
            eprintln!("{}: {} error{}", path.display(), errors, plural(errors));
            Ok(ExitCode::from(1))
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// One captured frame: its timestamp (ns since the epoch) and bytes.
type Captured = (i64, Vec<u8>);

/// Read every frame of a pcap or pcapng file (told apart by the magic number).
fn read_capture(path: &Path) -> anyhow::Result<Vec<Captured>> {
    let mut magic = [0u8; 4];
    {
        use std::io::Read;
        File::open(path)
            .with_context(|| format!("cannot open {}", path.display()))?
            .read_exact(&mut magic)
            .with_context(|| format!("{}: too short to be a capture", path.display()))?;
    }
    let file = BufReader::new(File::open(path)?);
    let mut frames = Vec::new();
    if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
        let mut reader = pcap_file::pcapng::PcapNgReader::new(file)
            .with_context(|| format!("{}: not a readable pcapng file", path.display()))?;
        while let Some(block) = reader.next_block() {
            let block =
                block.with_context(|| format!("{}: corrupt pcapng block", path.display()))?;
            match block {
                pcap_file::pcapng::Block::EnhancedPacket(p) => {
                    frames.push((p.timestamp.as_nanos() as i64, p.data.into_owned()));
                }
                pcap_file::pcapng::Block::SimplePacket(p) => frames.push((0, p.data.into_owned())),
                _ => {}
            }
        }
    } else {
        let mut reader = pcap_file::pcap::PcapReader::new(file)
            .with_context(|| format!("{}: not a pcap or pcapng file", path.display()))?;
        let linktype = reader.header().datalink;
        if linktype != pcap_file::DataLink::ETHERNET {
            bail!("{}: link type {linktype:?} is not Ethernet", path.display());
        }
        while let Some(packet) = reader.next_packet() {
            let packet =
                packet.with_context(|| format!("{}: corrupt pcap record", path.display()))?;
            frames.push((packet.timestamp.as_nanos() as i64, packet.data.into_owned()));
        }
    }
    Ok(frames)
}

/// Decides the ingress port of captured frames from their MAC addresses.
struct SideFinder {
    sides: HashMap<MacAddr, Port>,
}

impl SideFinder {
    fn new(asset_macs: &[MacAddr]) -> Self {
        SideFinder {
            sides: asset_macs.iter().map(|mac| (*mac, Port::Asset)).collect(),
        }
    }

    fn ingress(&mut self, frame: &[u8]) -> Port {
        let mac = |r: std::ops::Range<usize>| {
            frame
                .get(r)
                .and_then(|b| <[u8; 6]>::try_from(b).ok())
                .map(MacAddr)
        };
        let (Some(dst), Some(src)) = (mac(0..6), mac(6..12)) else {
            return Port::Plant;
        };
        if let Some(side) = self.sides.get(&src) {
            return *side;
        }
        let side = match self.sides.get(&dst) {
            Some(dst_side) if !dst.is_multicast() => dst_side.other(),
            _ => Port::Plant,
        };
        self.sides.insert(src, side);
        side
    }
}

fn replay(
    policy_path: &Path,
    json: bool,
    asset_macs: &[MacAddr],
    capture: &Path,
) -> anyhow::Result<ExitCode> {
    let policy = match Policy::load(policy_path) {
        Ok((policy, _warnings)) => Arc::new(policy),
        Err(err) => {
            for diagnostic in &err.diagnostics {
                eprintln!("{diagnostic}");
            }
            return Ok(ExitCode::from(1));
        }
    };
    let frames = read_capture(capture)?;
    let formatter = EventFormatter::new(policy.clone());
    let mut pipeline = Pipeline::new(policy.clone(), NullSink);
    let mut sides = SideFinder::new(asset_macs);
    let mut tally: HashMap<(EventVerdict, Option<u16>, Reason), u64> = HashMap::new();
    let start = frames.first().map_or(0, |(t, _)| *t);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (index, (wall_ns, frame)) in frames.iter().enumerate() {
        let ingress = sides.ingress(frame);
        let now = Now {
            mono_ns: wall_ns.saturating_sub(start).max(0) as u64,
            wall_ns: *wall_ns,
        };
        let outcome = pipeline.process(frame, ingress, now);
        let resets = pipeline.injected().len();
        pipeline.clear_injected();
        // Expire at capture time, as the daemon would between batches.
        pipeline.housekeeping(now, 16);
        *tally
            .entry((outcome.verdict, outcome.rule.map(|r| r.0), outcome.reason))
            .or_default() += 1;
        let event = describe(frame, ingress, now, &outcome);
        if json {
            writeln!(out, "{}", formatter.to_json(&event))?;
        } else {
            let mut line = text_line(index + 1, &policy, &event, &outcome);
            if resets > 0 {
                line.push_str(" (connection reset both ways)");
            }
            writeln!(out, "{line}")?;
        }
    }
    write_summary(&mut out, &policy, &tally, frames.len(), json)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn text_line(
    number: usize,
    policy: &Policy,
    event: &gk_dataplane::Event,
    outcome: &Outcome,
) -> String {
    let endpoint = |addr: Option<std::net::IpAddr>, port: Option<u16>| match (addr, port) {
        (Some(a), Some(p)) if a.is_ipv6() => format!("[{a}]:{p}"),
        (Some(a), Some(p)) => format!("{a}:{p}"),
        (Some(a), None) => a.to_string(),
        (None, _) => String::new(),
    };
    let (src, dst) = if event.src.is_some() {
        (
            endpoint(event.src, event.sport),
            endpoint(event.dst, event.dport),
        )
    } else {
        (event.src_mac.to_string(), event.dst_mac.to_string())
    };
    let proto = gk_dataplane::event::protocol_name(event.ethertype, event.protocol);
    let icmp = event
        .icmp_type
        .map(|t| format!(" type {t}"))
        .unwrap_or_default();
    let vlan = event.vlan.map(|v| format!(" vlan {v}")).unwrap_or_default();
    let rule = outcome.rule.map_or("-", |r| policy.rule(r).name.as_str());
    let op = outcome.op.map(|op| format!("  {op}")).unwrap_or_default();
    let detail = outcome
        .detail
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    format!(
        "{number:>6} {:<5} {:<10} {:<24} {:<16} {src} -> {dst} {proto}{icmp}{vlan}{op}{detail}",
        event.port.name(),
        verdict_word(outcome.verdict),
        rule,
        outcome.reason.code(),
    )
}

fn verdict_word(verdict: EventVerdict) -> &'static str {
    match verdict {
        EventVerdict::Allow => "allow",
        EventVerdict::Deny => "deny",
        EventVerdict::Alert => "alert",
        EventVerdict::WouldDeny => "would-deny",
    }
}

fn write_summary(
    out: &mut impl Write,
    policy: &Policy,
    tally: &HashMap<(EventVerdict, Option<u16>, Reason), u64>,
    total: usize,
    json: bool,
) -> anyhow::Result<()> {
    let mut rows: Vec<_> = tally.iter().collect();
    rows.sort_by_key(|((verdict, rule, reason), count)| {
        (
            std::cmp::Reverse(**count),
            *rule,
            reason.code(),
            verdict_word(*verdict),
        )
    });
    let name = |rule: &Option<u16>| rule.map(|r| policy.rule(gk_policy::RuleId(r)).name.clone());
    if json {
        let rows: Vec<_> = rows
            .iter()
            .map(|((verdict, rule, reason), count)| {
                serde_json::json!({"verdict": verdict_word(*verdict), "rule": name(rule), "reason": reason.code(), "packets": count})
            })
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::json!({"summary": {"packets": total, "by_verdict": rows}})
        )?;
    } else {
        writeln!(out, "\nsummary: {total} packet{}", plural(total))?;
        for ((verdict, rule, reason), count) in rows {
            let rule = name(rule).unwrap_or_else(|| "-".into());
            writeln!(
                out,
                "  {count:>8}  {:<10} {rule:<24} {}",
                verdict_word(*verdict),
                reason.code()
            )?;
        }
    }
    Ok(())
}
