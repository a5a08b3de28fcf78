//! `gkctl update-info FILE.gku`: what an image update carries, checked as a box would
//! check it (`config/UPDATE.md`): the header's signatures against `--trust`, the board
//! against `--board`, and with `--check-payload` both payload parts against their
//! SHA-256s.
//!
//! Exit status: 0 good (or, without --trust, readable); 1 refused, with the code; 2
//! could not run.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use gk_bundle::trust::TrustStore;
use gk_bundle::update::{self, UpdateError, UpdateInfo};

#[derive(Debug, Args)]
pub struct UpdateInfoArgs {
    /// The update file (`*.gku`).
    pub update: PathBuf,
    /// A trust store: verify the header's signatures as a box with this store would
    /// (without it, the claimed signers are shown, unchecked).
    #[arg(long, value_name = "DIR")]
    pub trust: Option<PathBuf>,
    /// Refuse the update unless it is for this board (as the box does with its own).
    #[arg(long, value_name = "NAME")]
    pub board: Option<String>,
    /// Also read the whole payload and check both parts' lengths and SHA-256s.
    #[arg(long)]
    pub check_payload: bool,
}

pub fn update_info(args: &UpdateInfoArgs) -> anyhow::Result<ExitCode> {
    let file = File::open(&args.update)
        .with_context(|| format!("cannot open {}", args.update.display()))?;
    let mut r = BufReader::new(file);
    let name = args.update.display();
    let refused = |e: UpdateError| {
        eprintln!("{name}: refused ({}): {e}", e.code());
        Ok(ExitCode::from(1))
    };
    let (info, signers): (UpdateInfo, String) = match &args.trust {
        Some(dir) => {
            let trust = TrustStore::load(dir)?;
            match update::read_header(&mut r, &trust, update::MAX_HEADER) {
                Ok((info, ids)) => {
                    let line = format!("signed by {}", trust.describe_signers(&ids));
                    (info, line)
                }
                Err(e) => return refused(e),
            }
        }
        None => match update::read_header_unverified(&mut r, update::MAX_HEADER) {
            Ok(u) => {
                let ids: Vec<String> = u.claimed_signers.iter().map(|k| k.to_string()).collect();
                (
                    u.info,
                    format!("NOT VERIFIED (no --trust); claims {}", ids.join(", ")),
                )
            }
            Err(e) => return refused(e),
        },
    };
    println!("version:   {}", info.version);
    println!("board:     {}", info.board);
    println!("created:   {}", gk_bundle::rfc3339(info.created));
    println!(
        "uki:       {} bytes, sha256 {}",
        info.uki_len,
        gk_bundle::hex(&info.uki_sha256)
    );
    println!(
        "root:      {} bytes, sha256 {}",
        info.root_len,
        gk_bundle::hex(&info.root_sha256)
    );
    println!(
        "verity:    root {}, {} data blocks, hash tree at byte {}, salt {}",
        info.verity_root,
        info.verity_data_blocks,
        info.verity_hash_offset,
        if info.verity_salt.is_empty() {
            "none"
        } else {
            &info.verity_salt
        }
    );
    println!("signature: {signers}");
    if let Some(board) = &args.board {
        if let Err(e) = info.check_board(board) {
            return refused(e);
        }
    }
    if args.check_payload {
        if let Err(e) = update::verify_payload(&mut r, &info) {
            return refused(e);
        }
        println!("payload:   both parts match their SHA-256s");
    }
    Ok(ExitCode::SUCCESS)
}
