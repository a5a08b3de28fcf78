//! `gatekeeperd`, the appliance daemon: bridges the plant and asset ports and enforces
//! the policy on every frame.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use gk_dataplane::bridge::{Bridge, BridgeConfig, Control};
use gk_dataplane::{Event, EventFormatter, Pipeline};
use gk_policy::Policy;
use tracing::{error, info, warn};

/// How many events may wait for the writer before new ones are counted as lost.
const EVENT_QUEUE: usize = 8192;

#[derive(Debug, Parser)]
#[command(
    name = "gatekeeperd",
    version,
    about = "Transparent two-port bridge that forwards only what its policy allows",
    after_help = "Runs in the foreground and logs to stderr (set GK_LOG=debug for more). \
                  SIGTERM or SIGINT stop it cleanly; SIGUSR1 prints the counters."
)]
struct Args {
    /// The plant-side interface (the network: HMIs, workstations).
    #[arg(long, value_name = "IF")]
    plant: String,
    /// The asset-side interface (the protected controller).
    #[arg(long, value_name = "IF")]
    asset: String,
    /// DEVELOPMENT ONLY: run a plain, unsigned TOML policy file.
    #[arg(long, value_name = "FILE")]
    unsigned_policy: PathBuf,
    /// Where to write events, one JSON object per line (appended); default stdout.
    #[arg(long, value_name = "PATH")]
    events: Option<PathBuf>,
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

fn run(args: Args) -> anyhow::Result<()> {
    let policy = match Policy::load(&args.unsigned_policy) {
        Ok((policy, warnings)) => {
            for warning in warnings {
                warn!("{warning}");
            }
            Arc::new(policy)
        }
        Err(err) => {
            for diagnostic in &err.diagnostics {
                eprintln!("{diagnostic}");
            }
            anyhow::bail!(
                "policy {} is not valid; nothing was started",
                args.unsigned_policy.display()
            );
        }
    };
    warn!(
        "RUNNING AN UNSIGNED POLICY ({}): development only; production boxes run signed bundles",
        args.unsigned_policy.display()
    );

    let (events_tx, events_rx) = sync_channel::<Event>(EVENT_QUEUE);
    let pipeline = Pipeline::new(policy.clone(), events_tx);
    let counters = pipeline.counters().clone();
    let config = BridgeConfig {
        plant: args.plant.clone(),
        asset: args.asset.clone(),
        link_propagation: args.link_propagation,
        ..BridgeConfig::default()
    };
    let mut bridge = Bridge::open(config, pipeline).context("cannot open the ports")?;

    let writer = spawn_event_writer(
        events_rx,
        EventFormatter::new(policy.clone()),
        args.events.clone(),
    )?;

    let control = Control::default();
    signal_hook::flag::register(signal_hook::consts::SIGTERM, control.stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, control.stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, control.report.clone())?;

    info!(
        policy = policy.name(),
        mode = ?policy.mode(),
        rules = policy.rules().len(),
        plant = %args.plant,
        asset = %args.asset,
        "forwarding"
    );
    let result = bridge.run(&control, |counters| eprint!("{}", counters.report(&policy)));
    // Restore the ports (offloads, promiscuity, IPv6) before anything else can fail.
    drop(bridge);
    eprint!("{}", counters.report(&policy));
    writer.stop.store(true, Ordering::Relaxed);
    if writer.handle.join().is_err() {
        warn!("the event writer panicked");
    }
    result.context("forwarding stopped")?;
    info!("stopped");
    Ok(())
}

struct WriterHandle {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<()>,
}

/// The thread that turns events into JSON lines. It is the only place events allocate.
fn spawn_event_writer(
    events: Receiver<Event>,
    formatter: EventFormatter,
    path: Option<PathBuf>,
) -> anyhow::Result<WriterHandle> {
    let sink: Box<dyn Write + Send> = match &path {
        Some(path) => Box::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the events file {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = stop.clone();
    let handle = std::thread::Builder::new()
        .name("gk-events".into())
        .spawn(move || {
            let mut out = BufWriter::new(sink);
            loop {
                match events.recv_timeout(Duration::from_millis(100)) {
                    Ok(event) => {
                        let _ = writeln!(out, "{}", formatter.to_json(&event));
                        // Write what is queued, then flush so that readers see events promptly.
                        while let Ok(event) = events.try_recv() {
                            let _ = writeln!(out, "{}", formatter.to_json(&event));
                        }
                        let _ = out.flush();
                    }
                    Err(RecvTimeoutError::Timeout) if !stop_flag.load(Ordering::Relaxed) => {}
                    Err(_) => break,
                }
            }
            while let Ok(event) = events.try_recv() {
                let _ = writeln!(out, "{}", formatter.to_json(&event));
            }
            let _ = out.flush();
        })?;
    Ok(WriterHandle { stop, handle })
}
