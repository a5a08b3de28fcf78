//! Running the gkctl binary from its integration tests.

#![allow(dead_code)] // each test binary uses a different part

use std::process::{Command, Output};

pub fn gkctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gkctl"))
        .args(args)
        .output()
        .unwrap()
}

pub fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// Runs gkctl, checks the exit status, and returns (stdout, stderr).
pub fn run(args: &[&str], code: i32) -> (String, String) {
    let out = gkctl(args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(code),
        "gkctl {}\nstdout: {stdout}\nstderr: {stderr}",
        args.join(" ")
    );
    (stdout, stderr)
}
