//! gk-init: the box's PID 1, in two stages of one static binary.
//!
//! - Stage 1 (`/init` in the initramfs): kernel filesystems, modules, the disk by GPT
//!   names, the dm-verity root slot, BIOS boot counting, root and data mounted,
//!   switch_root, exec stage 2. See `stage1.rs`.
//! - Stage 2 (`/sbin/init` on the verified root): the ports, gatekeeperd under
//!   supervision, the watchdog, READY and status on the console, marking the boot good,
//!   USB sticks (bundles, updates, test hooks), power-off and reboot. See `stage2.rs`.
//!
//! Not PID 1, it is a tool for the image builder: `gk-init check-board FILE` validates a
//! board description exactly as the box will read it.
//!
//! The pure parts (board file, command line, dm-ioctl layout, boot-count names, the
//! supervisor's state machine, sysfs classification) are separate modules with tests;
//! the system calls sit in `sys`, `dm::Control`, `netlink`, `watchdog` and the stages.

mod bootcount;
mod cmdline;
mod dm;
mod netlink;
mod stage1;
mod stage2;
mod status;
mod supervisor;
mod sys;
mod sysfs;
mod update;
mod usb;
mod watchdog;

use std::path::Path;

use gk_init::board;
use std::process::ExitCode;

fn main() -> ExitCode {
    if nix::unistd::getpid().as_raw() == 1 {
        if std::env::var(stage1::ENV_STAGE).as_deref() == Ok("2") {
            let e = stage2::run();
            stage2::fatal(&e);
        }
        let e = stage1::run();
        stage1::fatal(&e);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["check-board", file] => match board::Board::load(Path::new(file)) {
            Ok(b) => {
                println!(
                    "{file}: board {} ({:?}, {:?}, {} modules, plant {}, asset {})",
                    b.board,
                    b.arch,
                    b.boot,
                    b.modules.len(),
                    b.plant,
                    b.asset
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        },
        ["--version"] => {
            println!("gk-init {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "gk-init is the gatekeeper box's PID 1 (/init in the initramfs, /sbin/init on \
                 the root).\nAs a tool: gk-init check-board FILE   validates a board.toml"
            );
            ExitCode::from(2)
        }
    }
}
