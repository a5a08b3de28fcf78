//! gk-image: builds a board's firmware disk image from Debian packages and this
//! repository, without root and without loop mounts (see `image/README.md`).
//!
//! - `gk-image build --board NAME [--profile prod|test|dev] [--trust DIR] [--key KEY]
//!   [--variant NAME] --bin-dir DIR --out out/NAME` (driven by `make image`)
//! - `gk-image lock` pins the Debian packages of every board in `image/debian.lock`
//! - `gk-image compare A B` says whether two disk images are identical, and where not
//! - `gk-image arch --board NAME`, `gk-image boards`: for the Makefile

mod bsp;
mod build;
mod cpio;
mod debian;
mod disk;
mod guid;
mod modules;
mod pe;
mod tools;
mod verity;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "gk-image",
    about = "Builds gatekeeper firmware images (no root needed)"
)]
struct Cli {
    /// The repository root (bsp/, config/keys/, image/debian.lock).
    #[arg(long, default_value = ".", global = true)]
    repo: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build out/<board>/disk.img and its manifest.
    Build {
        #[arg(long)]
        board: String,
        #[arg(long, value_enum, default_value_t = build::Profile::Test)]
        profile: build::Profile,
        /// Trust store for the image (required for prod; default config/keys for test/dev).
        #[arg(long)]
        trust: Option<PathBuf>,
        /// Signing key for the manifest and update (required for prod).
        #[arg(long)]
        key: Option<PathBuf>,
        /// Directory holding static gatekeeperd, gkctl and gk-init for the board's arch.
        #[arg(long)]
        bin_dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Package cache (default <repo>/target/image-cache).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// U-Boot boards: directory with idbloader.img and u-boot.itb.
        #[arg(long)]
        uboot_dir: Option<PathBuf>,
        /// Build a variant of this commit: `+NAME` is appended to the version everywhere
        /// it is recorded (so the root hash differs), NAME being [a-z0-9-]{1,32}.
        #[arg(long, value_name = "NAME", value_parser = build::check_variant)]
        variant: Option<String>,
        /// What the box does when it cannot enforce a policy (no valid bundle, or a
        /// crash loop of gatekeeperd), instead of the board's `on_failure`: a site
        /// decision. fail-closed forwards nothing; fail-open forwards everything, loudly.
        #[arg(long, value_enum, value_name = "MODE")]
        on_failure: Option<bsp::OnFailure>,
    },
    /// Pin the Debian packages of every board (apt's candidates) in image/debian.lock.
    Lock {
        #[arg(long)]
        cache: Option<PathBuf>,
    },
    /// Compare two disk images byte for byte; exit 1 when they differ.
    Compare { a: PathBuf, b: PathBuf },
    /// Print a board's architecture (x86_64 or aarch64).
    Arch {
        #[arg(long)]
        board: String,
    },
    /// List the boards and check that every description is valid.
    Boards,
}

fn run(cli: Cli) -> Result<ExitCode> {
    let bsp_dir = cli.repo.join("bsp");
    let cache = |c: Option<PathBuf>| c.unwrap_or_else(|| cli.repo.join("target/image-cache"));
    match cli.command {
        Cmd::Build {
            board,
            profile,
            trust,
            key,
            bin_dir,
            out,
            cache: c,
            uboot_dir,
            variant,
            on_failure,
        } => {
            let o = build::Options {
                repo: cli.repo.clone(),
                board,
                profile,
                trust,
                key,
                bin_dir,
                out,
                cache: cache(c),
                uboot_dir,
                variant,
                on_failure,
            };
            let built = build::build(&o)?;
            eprintln!(
                "gk-image: {} written in {:.1} s: {} ({} mapped), root hash {}",
                built.disk.display(),
                built.elapsed.as_secs_f64(),
                disk::human(built.disk_bytes),
                disk::human(built.mapped_bytes),
                built.verity.root_hash
            );
        }
        Cmd::Lock { cache: c } => {
            let mut wanted = Vec::new();
            for name in bsp::list(&bsp_dir)? {
                let board = bsp::load(&bsp_dir, &name)?;
                wanted.extend(build::wanted_packages(&board));
            }
            wanted.sort();
            wanted.dedup();
            let lock = debian::make_lock(&wanted, &debian::Cache { dir: cache(c) })?;
            let path = cli.repo.join("image/debian.lock");
            std::fs::write(&path, lock.to_text())?;
            eprintln!(
                "gk-image: wrote {} ({} packages)",
                path.display(),
                lock.packages.len()
            );
        }
        Cmd::Compare { a, b } => match disk::compare(&a, &b)? {
            None => {
                println!(
                    "identical: {} and {} ({} bytes, sha256 {})",
                    a.display(),
                    b.display(),
                    std::fs::metadata(&a)?.len(),
                    debian::sha256_file(&a)?
                );
            }
            Some(report) => {
                print!("{} and {} differ:\n{report}", a.display(), b.display());
                return Ok(ExitCode::from(1));
            }
        },
        Cmd::Arch { board } => println!("{}", bsp::load(&bsp_dir, &board)?.arch.rust()),
        Cmd::Boards => {
            for name in bsp::list(&bsp_dir)? {
                let b = bsp::load(&bsp_dir, &name)?;
                println!(
                    "{name:16} {:8} {:7} {}",
                    b.arch.rust(),
                    b.boot.as_str(),
                    b.description
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gk-image: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
