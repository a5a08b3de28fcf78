//! Talking to a running gatekeeperd over its control socket: apply, confirm, status.
//!
//! PLACEHOLDER: the arguments are the contract (issue 4).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// The control socket gatekeeperd listens on by default.
pub const DEFAULT_SOCKET: &str = "/run/gatekeeper/control.sock";

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

fn not_yet(verb: &str) -> anyhow::Result<ExitCode> {
    anyhow::bail!("gkctl {verb}: not available in this build yet")
}

pub fn apply(_: &ApplyArgs) -> anyhow::Result<ExitCode> {
    not_yet("apply")
}
pub fn confirm(_: &ConfirmArgs) -> anyhow::Result<ExitCode> {
    not_yet("confirm")
}
pub fn status(_: &StatusArgs) -> anyhow::Result<ExitCode> {
    not_yet("status")
}
