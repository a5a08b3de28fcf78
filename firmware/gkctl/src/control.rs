//! Talking to a running gatekeeperd over its control socket: apply, confirm, status.
//!
//! The protocol is one JSON object per line each way: `{"command": "apply", "bundle":
//! "<base64>", "name": "<file name>"}`, `{"command": "confirm"}`, `{"command":
//! "status"}`; answers carry `ok`, a stable `code` and a `message` (and `status`).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine;
use clap::Args;
use serde_json::{json, Value};

/// The control socket gatekeeperd listens on by default.
pub const DEFAULT_SOCKET: &str = "/run/gatekeeper/control.sock";

/// The largest bundle sent (the daemon refuses larger ones anyway).
const MAX_BUNDLE: u64 = 1 << 20;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The daemon's control socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub control: PathBuf,
    /// The bundle to offer.
    pub bundle: PathBuf,
}

#[derive(Debug, Args)]
pub struct ConfirmArgs {
    /// The daemon's control socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub control: PathBuf,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The daemon's control socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub control: PathBuf,
    /// The status as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Sends one request and returns the answer.
fn ask(socket: &Path, request: &Value) -> anyhow::Result<Value> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach gatekeeperd at {} (is it running with --control {}?)",
            socket.display(),
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut line = request.to_string();
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .context("no answer from gatekeeperd")?;
    if answer.is_empty() {
        bail!("gatekeeperd closed the connection without an answer");
    }
    serde_json::from_str(&answer).context("gatekeeperd's answer is not JSON")
}

/// Prints an answer's message; exit 0 when it says ok, 1 otherwise.
fn conclude(answer: &Value) -> ExitCode {
    let message = answer["message"].as_str().unwrap_or("");
    let code = answer["code"].as_str().unwrap_or("?");
    if answer["ok"] == true {
        println!("{message}");
        ExitCode::SUCCESS
    } else {
        eprintln!("gkctl: refused ({code}): {message}");
        ExitCode::from(1)
    }
}

pub fn apply(args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let file = std::fs::File::open(&args.bundle)
        .with_context(|| format!("cannot open {}", args.bundle.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_BUNDLE + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", args.bundle.display()))?;
    if bytes.len() as u64 > MAX_BUNDLE {
        bail!(
            "{} is larger than {} bytes: not a bundle gatekeeperd would take",
            args.bundle.display(),
            MAX_BUNDLE
        );
    }
    let name = args
        .bundle
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let request = json!({
        "command": "apply",
        "bundle": base64::engine::general_purpose::STANDARD.encode(&bytes),
        "name": name,
    });
    Ok(conclude(&ask(&args.control, &request)?))
}

pub fn confirm(args: &ConfirmArgs) -> anyhow::Result<ExitCode> {
    Ok(conclude(&ask(
        &args.control,
        &json!({"command": "confirm"}),
    )?))
}

pub fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let answer = ask(&args.control, &json!({"command": "status"}))?;
    if answer["ok"] != true {
        return Ok(conclude(&answer));
    }
    let status = &answer["status"];
    if args.json {
        println!("{status}");
    } else {
        print!("{}", human(status));
    }
    Ok(ExitCode::SUCCESS)
}

/// The status for people.
fn human(s: &Value) -> String {
    let mut out = String::new();
    let text = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| "-".into());
    out.push_str(&format!(
        "gatekeeper {:?}: {} mode\n",
        text(&s["policy"]),
        text(&s["mode"])
    ));
    if let Some(mode) = s["failure_mode"].as_str() {
        out.push_str(&format!(
            "NO VALID BUNDLE: {mode} ({})\n",
            if mode == "fail-open" {
                "forwarding everything unfiltered"
            } else {
                "forwarding nothing"
            }
        ));
    }
    let bundle = |b: &Value| {
        let signers: Vec<String> = b["signers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|k| format!("{} ({})", text(&k["name"]), text(&k["id"])))
            .collect();
        let mut line = format!(
            "serial {}, created {}, signed by {}, from {}",
            b["serial"],
            text(&b["created"]),
            if signers.is_empty() {
                "-".into()
            } else {
                signers.join(", ")
            },
            text(&b["source"])
        );
        if let Some(e) = b["expires"].as_str() {
            line.push_str(&format!(", expires {e}"));
        }
        if let Some(c) = b["comment"].as_str() {
            line.push_str(&format!(", comment {c:?}"));
        }
        line.push_str(&format!("\n    digest {}", text(&b["digest"])));
        line
    };
    match &s["current"] {
        Value::Null => out.push_str("bundle in force: none\n"),
        b => out.push_str(&format!("bundle in force: {}\n", bundle(b))),
    }
    if let Value::Object(_) = &s["pending"] {
        let p = &s["pending"];
        out.push_str(&format!(
            "PENDING: {}\n    reverts at {} ({} s left) unless confirmed (gkctl confirm)\n",
            bundle(&p["bundle"]),
            text(&p["deadline"]),
            p["remaining_seconds"]
        ));
        for h in p["health"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "    health check {}: forward {}, back {}, refused {} (within {} s)\n",
                text(&h["name"]),
                h["forward"],
                h["reverse"],
                h["refused"],
                h["within"]
            ));
        }
    }
    out.push_str(&format!(
        "ratchet: serial {}; time floor {}\n",
        s["ratchet"],
        text(&s["time_floor"])
    ));
    if s["device_id"].is_string() || s["site"].is_string() {
        out.push_str(&format!(
            "device {}, site {}\n",
            text(&s["device_id"]),
            text(&s["site"])
        ));
    }
    let r = &s["running"];
    if r.is_object() {
        out.push_str(&format!(
            "traffic: plant rx {} forwarded {}; asset rx {} forwarded {}; flows {} of {} ({} revoked by swaps)\n",
            r["plant"]["rx"],
            r["plant"]["forwarded"],
            r["asset"]["rx"],
            r["asset"]["forwarded"],
            r["flows"]["active"],
            r["flows"]["capacity"],
            r["flows"]["revoked"]
        ));
        if let Some(drops) = r["drops"].as_object() {
            let parts: Vec<String> = drops
                .iter()
                .map(|(k, v)| format!("{k} {}/{}", v["dropped"], v["would_drop"]))
                .collect();
            if !parts.is_empty() {
                out.push_str(&format!(
                    "drops (dropped/would-drop): {}\n",
                    parts.join(", ")
                ));
            }
        }
        for rule in r["rules"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  rule {:<24} {:<6} flows {:>8} packets {:>10} messages {:>8} denied {:>6}\n",
                text(&rule["name"]),
                text(&rule["action"]),
                rule["flows"],
                rule["packets"],
                rule["messages"],
                rule["messages_denied"]
            ));
        }
    }
    out
}
