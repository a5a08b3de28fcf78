//! `gatekeeperd`, the appliance daemon: bridges the plant and asset ports and enforces
//! the policy on every frame.
//!
//! Production: `--trust DIR --state DIR` (signed bundles from `--bundle`, `--inbox` and
//! the control socket; see `lifecycle.rs`). Development: `--unsigned-policy FILE`.

mod events;
mod lifecycle;
mod management;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use gk_bundle::state::StateDir;
use gk_bundle::trust::TrustStore;
use gk_dataplane::bridge::{Bridge, BridgeConfig, Control};
use gk_dataplane::{EventSink, Pipeline};
use gk_policy::Policy;
use tracing::{error, info, warn};

use crate::lifecycle::{Lifecycle, OnFailure, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "gatekeeperd",
    version,
    about = "Transparent two-port bridge that forwards only what its policy allows",
    after_help = "Production: --trust DIR --state DIR, with bundles from --bundle, --inbox and \
                  the control socket (gkctl apply / confirm / status). Development: \
                  --unsigned-policy FILE.\n\n\
                  Runs in the foreground and logs to stderr (set GK_LOG=debug for more). \
                  SIGTERM or SIGINT stop it cleanly; SIGUSR1 prints the counters."
)]
#[command(group(clap::ArgGroup::new("policy-source").required(true).args(["unsigned_policy", "trust"])))]
struct Args {
    /// The plant-side interface (the network: HMIs, workstations).
    #[arg(long, value_name = "IF")]
    plant: String,
    /// The asset-side interface (the protected controller).
    #[arg(long, value_name = "IF")]
    asset: String,
    /// DEVELOPMENT ONLY: run a plain, unsigned TOML policy file.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["trust", "state", "bundle", "inbox", "control"])]
    unsigned_policy: Option<PathBuf>,
    /// The trust store: a directory of *.pub keys and an optional trust.toml.
    #[arg(long, value_name = "DIR", requires = "state")]
    trust: Option<PathBuf>,
    /// The state directory: the bundle in force, the anti-rollback ratchet, the audit log.
    #[arg(long, value_name = "DIR", requires = "trust")]
    state: Option<PathBuf>,
    /// A bundle to offer at start (it becomes pending like any other).
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
    /// A directory watched for *.gkb bundles (on the box: where USB sticks are scanned).
    #[arg(long, value_name = "DIR")]
    inbox: Option<PathBuf>,
    /// The control socket for gkctl apply, confirm and status.
    #[arg(long, value_name = "SOCKET")]
    control: Option<PathBuf>,
    /// This box's device id: bundles bound to other devices are refused.
    #[arg(long, value_name = "ID")]
    device_id: Option<String>,
    /// This box's site: bundles bound to another site are refused.
    #[arg(long, value_name = "NAME")]
    site: Option<String>,
    /// What runs while no valid bundle does.
    #[arg(long, value_enum, default_value = "fail-closed")]
    on_failure: OnFailure,
    /// A new box's factory default: until a first bundle is confirmed, forward
    /// everything in monitor mode and report what a policy would refuse (instead of
    /// --on-failure). Once a bundle was confirmed, --on-failure applies.
    #[arg(long, requires = "trust")]
    factory_monitor: bool,
    /// A file created (with the version in it) once both ports are open and frames are
    /// forwarded, and removed at exit: how the box's init knows the daemon is ready.
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
    /// Seconds a new bundle stays pending (overrides the bundle's own window).
    #[arg(long, value_name = "SECONDS")]
    confirm_window: Option<u64>,
    /// Where to write events, one JSON object per line (appended); default stdout.
    #[arg(long, value_name = "PATH")]
    events: Option<PathBuf>,
    /// Past this size the events file is renamed to PATH.1 (replacing the previous one)
    /// and started again: at most about twice this much is kept (a box's storage).
    #[arg(long, value_name = "BYTES", requires = "events")]
    events_max_bytes: Option<u64>,
    /// When one port loses its link, take the other one down too, so that redundant
    /// paths notice; bring it back up when the link returns.
    #[arg(long)]
    link_propagation: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!("{err:#}");
            eprintln!("gatekeeperd: error: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// Loads the development policy, or says what is wrong with it.
fn unsigned_policy(path: &std::path::Path) -> anyhow::Result<Arc<Policy>> {
    match Policy::load(path) {
        Ok((policy, warnings)) => {
            for warning in warnings {
                warn!("{warning}");
            }
            warn!(
                "RUNNING AN UNSIGNED POLICY ({}): development only; production boxes run signed bundles",
                path.display()
            );
            Ok(Arc::new(policy))
        }
        Err(err) => {
            for diagnostic in &err.diagnostics {
                eprintln!("{diagnostic}");
            }
            anyhow::bail!(
                "policy {} is not valid; nothing was started",
                path.display()
            );
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let control = Control::default();
    // Production mode: the lifecycle decides the first policy.
    let (events_for_policy, packet_sink, line_sink, writer);
    let mut lifecycle = None;
    let policy = match &args.unsigned_policy {
        Some(path) => {
            let policy = unsigned_policy(path)?;
            (packet_sink, line_sink, writer) =
                events::spawn(policy.clone(), args.events.clone(), args.events_max_bytes)?;
            events_for_policy = None;
            policy
        }
        None => {
            let state_dir = args
                .state
                .as_ref()
                .context("--state is required with --trust")?;
            let state = StateDir::open(state_dir).with_context(|| {
                format!("cannot use the state directory {}", state_dir.display())
            })?;
            let trust = match TrustStore::load(args.trust.as_ref().context("--trust is required")?)
            {
                Ok(trust) => {
                    // The published test keys (config/keys/) belong in test images only.
                    for key in trust.test_only_keys() {
                        warn!(
                            "THE TRUST STORE HOLDS THE PUBLISHED TEST-ONLY KEY {} ({}): anybody can sign bundles this box accepts",
                            key.id, key.name
                        );
                    }
                    Some(trust)
                }
                Err(e) => {
                    error!("{e}: no bundle can be verified");
                    None
                }
            };
            let placeholder = Arc::new(args.on_failure.policy());
            (packet_sink, line_sink, writer) =
                events::spawn(placeholder, args.events.clone(), args.events_max_bytes)?;
            let settings = Settings {
                state,
                trust,
                device_id: args.device_id.clone(),
                site: args.site.clone(),
                on_failure: args.on_failure,
                factory_monitor: args.factory_monitor,
                confirm_window: args.confirm_window.map(Duration::from_secs),
            };
            let (lc, policy) =
                Lifecycle::start(settings, control.handoff.clone(), line_sink.clone());
            lifecycle = Some(lc);
            events_for_policy = Some(policy.clone());
            policy
        }
    };
    let mut sink = packet_sink;
    if let Some(policy) = &events_for_policy {
        sink.policy_changed(policy);
    }
    let pipeline = Pipeline::new(policy.clone(), sink);
    let config = BridgeConfig {
        plant: args.plant.clone(),
        asset: args.asset.clone(),
        link_propagation: args.link_propagation,
        ..BridgeConfig::default()
    };
    let mut bridge = Bridge::open(config, pipeline).context("cannot open the ports")?;

    signal_hook::flag::register(signal_hook::consts::SIGTERM, control.stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, control.stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, control.report.clone())?;

    let management = match lifecycle {
        Some(lifecycle) => Some(management::spawn(
            management::Management {
                lifecycle,
                control: args.control.clone(),
                inbox: args.inbox.clone(),
                bundle: args.bundle.clone(),
            },
            control.stop.clone(),
        )?),
        None => None,
    };
    drop(line_sink);

    info!(
        policy = policy.name(),
        mode = ?policy.mode(),
        rules = policy.rules().len(),
        plant = %args.plant,
        asset = %args.asset,
        "forwarding"
    );
    if let Some(path) = &args.ready_file {
        write_ready_file(path)?;
    }
    let result = bridge.run(&control, |counters| {
        let live = control.handoff.live();
        let policy = live.as_ref().map_or(&policy, |l| &l.policy);
        eprint!("{}", counters.report(policy));
    });
    // Restore the ports (offloads, promiscuity, IPv6) before anything else can fail.
    drop(bridge);
    if let Some(live) = control.handoff.live() {
        eprint!("{}", live.counters.report(&live.policy));
    }
    if let Some(handle) = management {
        if handle.join().is_err() {
            warn!("the management plane panicked");
        }
    }
    writer.finish();
    if let Some(path) = &args.ready_file {
        let _ = std::fs::remove_file(path);
    }
    result.context("forwarding stopped")?;
    info!("stopped");
    Ok(())
}

/// Creates the ready file atomically (a reader never sees it half written).
fn write_ready_file(path: &std::path::Path) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("gatekeeperd {}\n", env!("CARGO_PKG_VERSION")))
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write the ready file {}", path.display()))
}
