//! `gkctl diff OLD NEW`: what a new policy allows that the old did not, and the reverse.
//!
//! PLACEHOLDER: the arguments are the contract (issue 4).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The policy (TOML) or bundle (.gkb) in force.
    pub old: PathBuf,
    /// The policy or bundle that would replace it.
    pub new: PathBuf,
    /// One JSON object per change, for tools.
    #[arg(long)]
    pub json: bool,
}

pub fn diff(_: &DiffArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("gkctl diff: not available in this build yet")
}
