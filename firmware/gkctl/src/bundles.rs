//! Bundle verbs: keygen, sign, cosign, verify, show, audit (the format and every rule
//! they apply: `config/BUNDLE.md`).
//!
//! Exit status, for every verb: 0 done (or the bundle is good); 1 the input was judged
//! and refused (a policy with errors, a bundle that would be refused, a broken audit
//! chain); 2 the verb could not run (a missing file, an output that exists, a bad
//! argument).

use std::fs;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args;
use gk_bundle::format::{self, Metadata, MAX_BUNDLE_SIZE};
use gk_bundle::keys::{self, KeyId, SecretKey};
use gk_bundle::time::OffsetDateTime;
use gk_bundle::trust::TrustStore;
use gk_bundle::verify::{Context, Refusal};
use gk_policy::{Diagnostic, Policy};

/// `println!` that ignores a closed stdout (`gkctl show b.gkb | head` must not panic).
macro_rules! outln {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

const EXIT_STATUS: &str = "Exit status: 0 done; 1 refused (the input was judged and found \
                           wanting); 2 could not run (missing file, bad argument, …).";

#[derive(Debug, Args)]
#[command(after_help = EXIT_STATUS, after_long_help = KEYGEN_HELP)]
pub struct KeygenArgs {
    /// Directory to write NAME.key and NAME.pub into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The key's name (also its file names): letters, digits, '.', '_' and '-'.
    #[arg(long, default_value = "signer")]
    pub name: String,
}

#[derive(Debug, Args)]
#[command(after_help = EXIT_STATUS, after_long_help = SIGN_HELP)]
pub struct SignArgs {
    /// The secret key (NAME.key).
    #[arg(long, value_name = "FILE")]
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
    #[arg(short = 'o', long = "out", value_name = "BUNDLE.gkb")]
    pub out: PathBuf,
    /// The creation time written into the bundle (RFC 3339; default: now). Boxes raise
    /// their time floor to it when they accept the bundle.
    #[arg(long, value_name = "TIME")]
    pub created: Option<String>,
    /// Replace the output file if it exists (by default an existing file is kept and
    /// nothing is written).
    #[arg(long)]
    pub force: bool,
}

const SIGN_HELP: &str = "\
The policy is linted first, exactly as `gkctl lint` does; a policy with errors is not \
signed (every error is printed with its file, line and column, and nothing is written). \
The bundle carries the policy byte for byte, with the metadata given here, and one \
signature; add more with `gkctl cosign` when the box needs k of n signers.

Example:
  gkctl sign --key keys/alice.key --serial 8 --expires 2027-01-31T00:00:00Z \\
             --device plc-7 --comment 'Q4 review' press-line.toml -o press-line-8.gkb

Exit status: 0 signed; 1 the policy has errors (nothing written); 2 could not run (a \
missing key, an output that exists without --force, a bad argument).";

const KEYGEN_HELP: &str = "\
Makes a fresh Ed25519 key pair from the operating system's random number generator. \
NAME.key is the secret: it is created readable by you only (mode 0600); keep it off the box \
and out of version control. NAME.pub is one line (algorithm, key, name); its key id (the \
first 8 bytes of the SHA-256 of the key, in hex) is what bundles name their signers by. A \
box trusts the key once NAME.pub is in its trust store (--trust DIR). Existing files are \
never overwritten.

Exit status: 0 written; 2 could not (a file exists, a bad name, the directory is not \
writable).";

#[derive(Debug, Args)]
#[command(after_help = EXIT_STATUS, after_long_help = COSIGN_HELP)]
pub struct CosignArgs {
    /// The secret key (NAME.key).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The bundle (rewritten in place with the new signature).
    pub bundle: PathBuf,
}

const COSIGN_HELP: &str = "\
Adds one signature line to the bundle, by this key, after the others; the signed body (the \
metadata and the policy) is not touched, so every earlier signature stays valid. Review \
what you sign first (gkctl show, gkctl diff): the policy inside must compile, and a key \
signs a bundle once. The file is replaced atomically.

Exit status: 0 cosigned; 1 refused (malformed bundle, a policy with errors, already signed \
by this key, 16 signatures already); 2 could not run.";

#[derive(Debug, Args)]
#[command(after_help = EXIT_STATUS, after_long_help = VERIFY_HELP)]
pub struct VerifyArgs {
    /// The trust store: a directory of *.pub files and an optional trust.toml.
    #[arg(long, value_name = "DIR")]
    pub trust: PathBuf,
    /// The bundle.
    pub bundle: PathBuf,
    /// Judge the device binding as the box with this --device-id would (default: not
    /// judged, and said so).
    #[arg(long = "device-id", value_name = "ID")]
    pub device_id: Option<String>,
    /// Judge the site binding as the box with this --site would (default: not judged).
    #[arg(long, value_name = "NAME")]
    pub site: Option<String>,
    /// The highest serial the box has accepted: the bundle must be above it.
    #[arg(long, value_name = "SERIAL", default_value_t = 0)]
    pub ratchet: u64,
    /// Judge expiry at this time (RFC 3339) instead of this machine's clock.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
}

const VERIFY_HELP: &str = "\
Runs the box's own checks, in the box's order: size, the envelope, every signature by a \
trusted key over the raw bytes (before any parsing), the number of distinct trusted \
signers against trust.toml's threshold, the metadata, the serial against --ratchet, \
expiry, the device and site binding; then compiles the policy inside. A refusal prints \
its reason and its stable code (the one the box writes to its audit log): malformed, \
too-large, bad-signature, unknown-key, too-few-signatures, rollback, expired, \
wrong-device, wrong-site, invalid-policy.

Exit status: 0 the box would accept it; 1 refused (with the reason and its code); 2 \
could not run (no such file, a broken trust store).";

#[derive(Debug, Args)]
#[command(after_help = EXIT_STATUS)]
pub struct ShowArgs {
    /// The bundle.
    pub bundle: PathBuf,
    /// A trust store: name the signers and check their signatures (without it, the
    /// signatures are listed, not checked).
    #[arg(long, value_name = "DIR")]
    pub trust: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 the chain is intact; 1 it is broken (the first \
                        broken line is named); 2 could not run."
)]
pub struct AuditArgs {
    /// The gatekeeper's state directory (gatekeeperd --state); only read, so it is safe
    /// while gatekeeperd runs.
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
}

fn now_utc() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn parse_time(what: &str, text: &str) -> anyhow::Result<OffsetDateTime> {
    gk_bundle::parse_rfc3339(text).map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

/// Reads a whole file, refusing (before reading) one larger than `max` bytes.
fn read_limited(path: &Path, max: usize) -> anyhow::Result<Result<Vec<u8>, usize>> {
    let file = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if size > max as u64 {
        return Ok(Err(usize::try_from(size).unwrap_or(usize::MAX)));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() > max {
        return Ok(Err(bytes.len()));
    }
    Ok(Ok(bytes))
}

fn read_key(path: &Path) -> anyhow::Result<SecretKey> {
    let (key, warning) = keys::read_secret_checked(path)?;
    if let Some(w) = warning {
        eprintln!("gkctl: warning: {w}");
    }
    Ok(key)
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// Prints a policy's diagnostics and the error count; the policy starts at
/// `first_line` of the file the diagnostics name (1 for a policy file).
fn print_diagnostics(diagnostics: &[Diagnostic], first_line: usize) -> usize {
    for d in diagnostics {
        let mut d = d.clone();
        if d.line > 0 {
            d.line += first_line - 1;
        }
        eprintln!("{d}");
    }
    diagnostics.iter().filter(|d| d.is_error()).count()
}

/// Compiles a bundle's policy; diagnostics point at lines of the bundle file.
fn compile_bundled(
    bundle: &Path,
    policy_text: &str,
    policy_line: usize,
) -> Result<Policy, Vec<Diagnostic>> {
    let label = bundle.display().to_string();
    match Policy::from_toml(policy_text, &label) {
        Ok((policy, warnings)) => {
            print_diagnostics(&warnings, policy_line);
            Ok(policy)
        }
        Err(e) => Err(e.diagnostics),
    }
}

pub fn keygen(args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    keys::check_name(&args.name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    let key = keys::generate(&args.name);
    let (secret, public) = keys::write_pair(&args.out, &key)?;
    outln!(
        "wrote {} (the SECRET key, mode 0600: keep it off the box and out of version control)",
        secret.display()
    );
    outln!(
        "wrote {} (key id {}): copy it into the trust store of the boxes that shall accept \
         bundles signed with this key",
        public.display(),
        key.id()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn sign(args: &SignArgs) -> anyhow::Result<ExitCode> {
    let key = read_key(&args.key)?;
    let policy_path = &args.policy;
    let bytes = match read_limited(policy_path, MAX_BUNDLE_SIZE)? {
        Ok(bytes) => bytes,
        Err(size) => bail!(
            "{}: {size} bytes; a bundle holds at most {MAX_BUNDLE_SIZE}",
            policy_path.display()
        ),
    };
    let Ok(text) = String::from_utf8(bytes) else {
        eprintln!(
            "{}: error: not UTF-8 text; nothing signed",
            policy_path.display()
        );
        return Ok(ExitCode::from(1));
    };
    match Policy::from_toml(&text, &policy_path.display().to_string()) {
        Ok((_, warnings)) => {
            print_diagnostics(&warnings, 1);
        }
        Err(e) => {
            let errors = print_diagnostics(&e.diagnostics, 1);
            eprintln!(
                "{}: {errors} error{}; nothing signed",
                policy_path.display(),
                plural(errors, "", "s")
            );
            return Ok(ExitCode::from(1));
        }
    }
    let now = now_utc();
    let created = match &args.created {
        Some(t) => parse_time("--created", t)?,
        None => now.replace_nanosecond(0).unwrap_or(now),
    };
    let expires = match &args.expires {
        Some(t) => {
            let expires = parse_time("--expires", t)?;
            if expires <= now {
                bail!(
                    "--expires {}: that is in the past; the bundle would be refused everywhere",
                    gk_bundle::rfc3339(expires)
                );
            }
            Some(expires)
        }
        None => None,
    };
    let metadata = Metadata {
        serial: args.serial,
        created,
        expires,
        devices: args.devices.clone(),
        site: args.site.clone(),
        comment: args.comment.clone(),
        confirm_window: args.confirm_window.map(std::time::Duration::from_secs),
        policy_file: policy_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned()),
    };
    let bundle =
        format::try_build(&metadata, &text, &key).map_err(|e| anyhow::anyhow!("{}", e.0))?;
    if same_file(policy_path, &args.out) {
        bail!(
            "-o {} is the policy itself; write the bundle to another file",
            args.out.display()
        );
    }
    write_output(&args.out, &bundle, args.force)?;
    let binding = match (&metadata.devices[..], &metadata.site) {
        ([], None) => "for any device".to_string(),
        (devices, site) => {
            let mut parts = Vec::new();
            if !devices.is_empty() {
                parts.push(format!("for device {}", devices.join(", ")));
            }
            if let Some(site) = site {
                parts.push(format!("for site {site}"));
            }
            parts.join(", ")
        }
    };
    outln!(
        "signed {} into {}: serial {}, {binding}, {}, key {} ({}), sha256 {}",
        policy_path.display(),
        args.out.display(),
        metadata.serial,
        metadata
            .expires
            .map_or("never expires".to_string(), |e| format!(
                "expires {}",
                gk_bundle::rfc3339(e)
            )),
        key.id(),
        key.name,
        gk_bundle::hex(&gk_bundle::sha256(&bundle)),
    );
    Ok(ExitCode::SUCCESS)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn write_output(path: &Path, bytes: &[u8], force: bool) -> anyhow::Result<()> {
    match gk_bundle::write_file_atomic(path, bytes, force) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "{} exists; refusing to overwrite it (pass --force to replace it)",
            path.display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot write {}", path.display())),
    }
}

/// Reads a bundle for cosign/show: `Err(code)` after printing why it cannot be read.
fn read_bundle(path: &Path) -> anyhow::Result<Result<Vec<u8>, ExitCode>> {
    Ok(match read_limited(path, MAX_BUNDLE_SIZE)? {
        Ok(bytes) => Ok(bytes),
        Err(size) => {
            eprintln!(
                "{}: {}",
                path.display(),
                Refusal::TooLarge {
                    size,
                    max: MAX_BUNDLE_SIZE
                }
            );
            Err(ExitCode::from(1))
        }
    })
}

pub fn cosign(args: &CosignArgs) -> anyhow::Result<ExitCode> {
    let key = read_key(&args.key)?;
    let bytes = match read_bundle(&args.bundle)? {
        Ok(b) => b,
        Err(code) => return Ok(code),
    };
    let bundle = match format::inspect(&bytes) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("{}: {e}; not cosigned", args.bundle.display());
            return Ok(ExitCode::from(1));
        }
    };
    // A cosigner vouches for the policy too: it must compile.
    let policy = match compile_bundled(&args.bundle, &bundle.policy_text, bundle.policy_line) {
        Ok(p) => p,
        Err(diagnostics) => {
            let errors = print_diagnostics(&diagnostics, bundle.policy_line);
            eprintln!(
                "{}: the policy inside has {errors} error{}; not cosigned",
                args.bundle.display(),
                plural(errors, "", "s")
            );
            return Ok(ExitCode::from(1));
        }
    };
    let signed = match format::cosign(&bytes, &key) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{}: {}; not cosigned", args.bundle.display(), e.0);
            return Ok(ExitCode::from(1));
        }
    };
    write_output(&args.bundle, &signed, true)?;
    let ids: Vec<String> = bundle
        .signatures
        .iter()
        .map(|s| s.key_id.to_string())
        .chain(std::iter::once(key.id().to_string()))
        .collect();
    outln!(
        "cosigned {} (serial {}, policy {:?}) with key {} ({}): {} signatures now, by {}",
        args.bundle.display(),
        bundle.metadata.serial,
        policy.name(),
        key.id(),
        key.name,
        ids.len(),
        ids.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// The name of a key id in the trust store, for messages.
fn who(trust: &TrustStore, id: &KeyId) -> String {
    match trust.find(id) {
        Some(k) => format!("{id} ({})", k.name),
        None => format!("{id} (not in the trust store)"),
    }
}

/// One line per signature: whose, and whether it checks out.
fn signature_report(bytes: &[u8], trust: &TrustStore) -> Vec<String> {
    let Ok(envelope) = format::parse_envelope(bytes) else {
        return Vec::new();
    };
    let message = format::signed_message(envelope.body);
    envelope
        .signatures
        .iter()
        .map(|s| {
            let status = match trust.find(&s.key_id) {
                None => "not in the trust store (ignored)".to_string(),
                Some(k) => match k.key.verify_strict(&message, &s.signature) {
                    Ok(()) => format!("({}): trusted, valid", k.name),
                    Err(_) => format!("({}): trusted, INVALID", k.name),
                },
            };
            format!("  line {}: key {} {status}", s.line, s.key_id)
        })
        .collect()
}

pub fn verify(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let trust = TrustStore::load(&args.trust)?;
    let name = args.bundle.display().to_string();
    let refuse = |r: &Refusal, details: &[String]| {
        let mut message = r.to_string();
        if let Refusal::BadSignature(id) = r {
            message = message.replacen(&id.to_string(), &who(&trust, id), 1);
        }
        eprintln!("{name}: refused ({}): {message}", r.code());
        for line in details {
            eprintln!("{line}");
        }
        ExitCode::from(1)
    };
    let bytes = match read_limited(&args.bundle, MAX_BUNDLE_SIZE)? {
        Ok(bytes) => bytes,
        Err(size) => {
            let r = Refusal::TooLarge {
                size,
                max: MAX_BUNDLE_SIZE,
            };
            return Ok(refuse(&r, &[]));
        }
    };
    let now = match &args.now {
        Some(t) => parse_time("--now", t)?,
        None => now_utc(),
    };
    // Bindings not given on the command line are not judged (and the summary says so).
    // The body is read for them only once its signatures check out.
    let claimed = gk_bundle::verify::check_signatures(&bytes, &trust)
        .ok()
        .and_then(|_| format::read_unverified(&bytes).ok())
        .map(|(m, _)| m);
    let mut unchecked = Vec::new();
    let device_id = args.device_id.clone().or_else(|| {
        let first = claimed.as_ref()?.devices.first()?.clone();
        unchecked.push("device binding not judged (no --device-id)");
        Some(first)
    });
    let site = args.site.clone().or_else(|| {
        let site = claimed.as_ref()?.site.clone()?;
        unchecked.push("site binding not judged (no --site)");
        Some(site)
    });
    let ctx = Context {
        ratchet: args.ratchet,
        time_floor: None,
        now: Some(now),
        device_id,
        site,
    };
    let verified = match gk_bundle::verify::verify(&bytes, &trust, &ctx) {
        Ok(v) => v,
        Err(r) => {
            let details = match r {
                Refusal::BadSignature(_)
                | Refusal::TooFewSignatures { .. }
                | Refusal::UnknownKey { .. } => {
                    let mut d = signature_report(&bytes, &trust);
                    d.push(format!(
                        "  ({} requires {} distinct trusted signer{})",
                        args.trust.display(),
                        trust.required(),
                        plural(trust.required(), "", "s")
                    ));
                    d
                }
                Refusal::Expired { .. } => vec![format!(
                    "  judged at {} ({})",
                    gk_bundle::rfc3339(now),
                    if args.now.is_some() {
                        "--now"
                    } else {
                        "this machine's clock"
                    }
                )],
                _ => Vec::new(),
            };
            return Ok(refuse(&r, &details));
        }
    };
    let policy_line = format::inspect(&bytes).map_or(1, |u| u.policy_line);
    let policy = match compile_bundled(&args.bundle, &verified.policy_text, policy_line) {
        Ok(p) => p,
        Err(diagnostics) => {
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            let r = Refusal::InvalidPolicy(format!(
                "{errors} error{} (the policy starts at line {policy_line} of {name}):",
                plural(errors, "", "s")
            ));
            let code = refuse(&r, &[]);
            print_diagnostics(&diagnostics, policy_line);
            return Ok(code);
        }
    };
    let m = &verified.metadata;
    let signers: Vec<String> = verified
        .signers
        .iter()
        .map(|k| format!("{} ({})", k.id, k.name))
        .collect();
    let mut summary = vec![
        format!("serial {}", m.serial),
        format!(
            "policy {:?} ({} rule{})",
            policy.name(),
            policy.rules().len(),
            plural(policy.rules().len(), "", "s")
        ),
        format!(
            "signed by {} trusted key{} of {} required: {}",
            signers.len(),
            plural(signers.len(), "", "s"),
            trust.required(),
            signers.join(", ")
        ),
        m.expires.map_or("never expires".into(), |e| {
            format!("expires {}", gk_bundle::rfc3339(e))
        }),
    ];
    if !m.devices.is_empty() {
        summary.push(format!("for device {}", m.devices.join(", ")));
    }
    if let Some(site) = &m.site {
        summary.push(format!("for site {site}"));
    }
    summary.extend(unchecked.iter().map(|s| s.to_string()));
    summary.push(format!("sha256 {}", verified.digest_hex()));
    outln!("{name}: ok: {}", summary.join("; "));
    Ok(ExitCode::SUCCESS)
}

pub fn show(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let trust = match &args.trust {
        Some(dir) => Some(TrustStore::load(dir)?),
        None => None,
    };
    let bytes = match read_bundle(&args.bundle)? {
        Ok(b) => b,
        Err(code) => return Ok(code),
    };
    let name = args.bundle.display().to_string();
    let bundle = match format::inspect(&bytes) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("{name}: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let m = &bundle.metadata;
    let row = |k: &str, v: String| outln!("{k:<15} {v}");
    row("bundle", name.clone());
    row("sha256", gk_bundle::hex(&gk_bundle::sha256(&bytes)));
    row("serial", m.serial.to_string());
    row("created", gk_bundle::rfc3339(m.created));
    row(
        "expires",
        m.expires.map_or("never".into(), gk_bundle::rfc3339),
    );
    row(
        "devices",
        if m.devices.is_empty() {
            "any".into()
        } else {
            m.devices.join(", ")
        },
    );
    row("site", m.site.clone().unwrap_or_else(|| "any".into()));
    row(
        "confirm window",
        m.confirm_window
            .map_or("the box's default".into(), |w| format!("{} s", w.as_secs())),
    );
    row(
        "policy file",
        format!(
            "{} ({} bytes, from line {} of the bundle)",
            m.policy_file.as_deref().unwrap_or("(not named)"),
            bundle.policy_text.len(),
            bundle.policy_line
        ),
    );
    if let Some(comment) = &m.comment {
        let mut lines = comment.lines();
        row("comment", lines.next().unwrap_or("").to_string());
        for line in lines {
            row("", line.to_string());
        }
    }
    let mut code = ExitCode::SUCCESS;
    match &trust {
        None => {
            outln!(
                "signatures      {} (NOT checked; pass --trust DIR to check them)",
                bundle.signatures.len()
            );
            for s in &bundle.signatures {
                outln!("  line {}: key {}", s.line, s.key_id);
            }
        }
        Some(trust) => {
            let lines = signature_report(&bytes, trust);
            let verdict = match gk_bundle::verify::check_signatures(&bytes, trust) {
                Ok(signers) => format!(
                    "enough: {} trusted of {} required",
                    signers.len(),
                    trust.required()
                ),
                Err(r) => {
                    if matches!(r, Refusal::BadSignature(_)) {
                        code = ExitCode::from(1);
                    }
                    format!("would be refused ({}): {r}", r.code())
                }
            };
            outln!("signatures      {} ({verdict})", bundle.signatures.len());
            for line in lines {
                outln!("{line}");
            }
        }
    }
    outln!();
    match compile_bundled(&args.bundle, &bundle.policy_text, bundle.policy_line) {
        Ok(policy) => {
            let _ = write!(std::io::stdout().lock(), "{}", policy.summary());
            for (i, rule) in policy.rules().iter().enumerate() {
                outln!("  {:>3}. {rule}", i + 1);
            }
        }
        Err(diagnostics) => {
            let errors = print_diagnostics(&diagnostics, bundle.policy_line);
            eprintln!(
                "{name}: the policy inside has {errors} error{}: a box would refuse it \
                 (invalid-policy)",
                plural(errors, "", "s")
            );
            code = ExitCode::from(1);
        }
    }
    Ok(code)
}

pub fn audit(args: &AuditArgs) -> anyhow::Result<ExitCode> {
    let report = gk_bundle::state::audit_verify(&args.state)?;
    let log = args.state.join(gk_bundle::audit::AUDIT_FILE);
    for record in &report.records {
        match &record.entry {
            Ok(e) => {
                let serial = e.serial.map_or("-".into(), |s| format!("serial {s}"));
                let digest = e
                    .digest
                    .as_deref()
                    .map_or("-".into(), |d| format!("sha256 {}…", &d[..12.min(d.len())]));
                let signers = if e.signers.is_empty() {
                    String::new()
                } else {
                    format!("  signed by {}", e.signers.join(", "))
                };
                outln!(
                    "{:>5}  {}  {:<10} {:<11} {:<20} from {}{signers}",
                    record.line,
                    gk_bundle::rfc3339(e.time),
                    e.outcome,
                    serial,
                    digest,
                    e.source
                );
                if let Some(reason) = &e.reason {
                    outln!("{:>5}  {reason}", "");
                }
            }
            Err(what) => outln!("{:>5}  (not an audit entry: {what})", record.line),
        }
    }
    if report.torn_tail > 0 {
        outln!(
            "       ({} bytes of an unfinished last line: an append cut by a power cut; \
             removed when gatekeeperd next starts)",
            report.torn_tail
        );
    }
    if report.unacknowledged > 0 {
        outln!(
            "       ({} entr{} after the head recorded in state.toml: an append whose \
             manifest update was cut; taken in when gatekeeperd next starts)",
            report.unacknowledged,
            plural(report.unacknowledged, "y", "ies")
        );
    }
    match &report.broken {
        None => {
            let end = report.chain_end();
            outln!(
                "{}: chain intact: {} entr{}, head {}",
                log.display(),
                end.entries,
                plural(report.records.len(), "y", "ies"),
                end.head
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(b) => {
            eprintln!("{}:{}: chain BROKEN: {}", log.display(), b.line, b.what);
            Ok(ExitCode::from(1))
        }
    }
}
