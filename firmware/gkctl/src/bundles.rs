//! Bundle verbs: keygen, sign, cosign, verify, show, audit.
//!
//! PLACEHOLDER: the arguments are the contract (issue 4); the verbs land with `gk-bundle`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Directory to write NAME.key and NAME.pub into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// The key's name (also its file names).
    #[arg(long, default_value = "signer")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The secret key (NAME.key).
    #[arg(long)]
    pub key: PathBuf,
    /// The bundle's serial number: it must be higher than the one the box runs.
    #[arg(long)]
    pub serial: u64,
    /// When the bundle stops being valid (RFC 3339, e.g. 2027-01-31T00:00:00Z).
    #[arg(long)]
    pub expires: Option<String>,
    /// A device id the bundle is for (repeatable); none: any device.
    #[arg(long = "device", value_name = "ID")]
    pub devices: Vec<String>,
    /// The site the bundle is for.
    #[arg(long)]
    pub site: Option<String>,
    /// Free text for the reviewer and the audit log.
    #[arg(long)]
    pub comment: Option<String>,
    /// Seconds a new bundle stays pending before it is confirmed or reverted.
    #[arg(long = "confirm-window", value_name = "SECONDS")]
    pub confirm_window: Option<u64>,
    /// The policy (TOML).
    pub policy: PathBuf,
    /// The bundle to write.
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct CosignArgs {
    /// The secret key (NAME.key).
    #[arg(long)]
    pub key: PathBuf,
    /// The bundle (rewritten in place with the new signature).
    pub bundle: PathBuf,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The trust store: a directory of *.pub files and an optional trust.toml.
    #[arg(long)]
    pub trust: PathBuf,
    /// The bundle.
    pub bundle: PathBuf,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The bundle.
    pub bundle: PathBuf,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The gatekeeper's state directory.
    #[arg(long)]
    pub state: PathBuf,
}

fn not_yet(verb: &str) -> anyhow::Result<ExitCode> {
    anyhow::bail!("gkctl {verb}: not available in this build yet")
}

pub fn keygen(_: &KeygenArgs) -> anyhow::Result<ExitCode> {
    not_yet("keygen")
}
pub fn sign(_: &SignArgs) -> anyhow::Result<ExitCode> {
    not_yet("sign")
}
pub fn cosign(_: &CosignArgs) -> anyhow::Result<ExitCode> {
    not_yet("cosign")
}
pub fn verify(_: &VerifyArgs) -> anyhow::Result<ExitCode> {
    not_yet("verify")
}
pub fn show(_: &ShowArgs) -> anyhow::Result<ExitCode> {
    not_yet("show")
}
pub fn audit(_: &AuditArgs) -> anyhow::Result<ExitCode> {
    not_yet("audit")
}
