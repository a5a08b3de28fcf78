//! The forwarding loop: two prepared ports, one thread, one pipeline.
//!
//! One thread owns both ports, the pipeline and its flow table, so that a conversation's
//! two directions meet the same state without a lock. It sleeps in `poll(2)` when both
//! ports are idle, receives a batch with `recvmmsg`, judges each frame and sends the
//! survivors to the other port in one `sendmmsg`, with the vnet header they came with
//! (so that GSO super-frames and partial checksums are completed by the kernel).

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use crate::event::EventSink;
use crate::inspect::{apply_rewrite, TcpRewrite};
use crate::port::{
    check_same_mtu, set_link_up, LinkInfo, LinkMonitor, PortError, PreparedPort, RawPort, VnetHdr,
    MAX_GSO_FRAME,
};
use crate::{Counters, Now, Pipeline, Port, SwapReport};
use gk_policy::Policy;

/// How the bridge runs.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    pub plant: String,
    pub asset: String,
    /// Frames per receive/transmit system call.
    pub batch: usize,
    /// Take the other port down while one has lost its link, whatever the policy says
    /// (the board's setting). The policy's `link-propagation` can ask for it too.
    pub link_propagation: bool,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            plant: String::new(),
            asset: String::new(),
            batch: 64,
            link_propagation: false,
        }
    }
}

/// Flags the daemon's signal handlers set and the loop reads between batches.
#[derive(Debug, Clone, Default)]
pub struct Control {
    /// Stop forwarding and return.
    pub stop: Arc<AtomicBool>,
    /// Print the counters (SIGUSR1).
    pub report: Arc<AtomicBool>,
    /// New policies from the management plane.
    pub handoff: Handoff,
}

/// What the forwarding thread runs, as the management plane sees it.
#[derive(Debug, Clone)]
pub struct Live {
    pub policy: Arc<Policy>,
    pub counters: Arc<Counters>,
    /// Policies put in force since start (0: the first one).
    pub generation: u64,
    /// What the last swap did to the conversations it found.
    pub swap: SwapReport,
}

/// Hands a new policy from the management plane to the forwarding thread, which takes
/// it between batches (one relaxed load per loop when there is nothing to take: no lock
/// on the packet path), and publishes what runs afterwards.
#[derive(Debug, Clone, Default)]
pub struct Handoff {
    waiting: Arc<AtomicBool>,
    offered: Arc<Mutex<Option<Arc<Policy>>>>,
    live: Arc<Mutex<Option<Live>>>,
}

impl Handoff {
    /// Asks the forwarding thread to put `policy` in force (replacing one offered but
    /// not taken yet).
    pub fn offer(&self, policy: Arc<Policy>) {
        *self.offered.lock().unwrap_or_else(|e| e.into_inner()) = Some(policy);
        self.waiting.store(true, Ordering::Release);
    }

    /// What runs now (`None` before the bridge started).
    pub fn live(&self) -> Option<Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until a policy offered before this call is in force; false if `timeout`
    /// passed first.
    pub fn wait_taken(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.waiting.load(Ordering::Acquire) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    fn take(&self) -> Option<Arc<Policy>> {
        if !self.waiting.load(Ordering::Acquire) {
            return None;
        }
        let policy = self
            .offered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        policy
    }

    /// After a swap: what runs now, and the offer is done.
    fn publish(&self, live: Live) {
        *self.live.lock().unwrap_or_else(|e| e.into_inner()) = Some(live);
        self.waiting.store(false, Ordering::Release);
    }

    /// What runs at start. A policy offered before the forwarding thread started (a
    /// bundle in the inbox at boot) stays offered, and is taken on the first turn.
    fn publish_initial(&self, live: Live) {
        *self.live.lock().unwrap_or_else(|e| e.into_inner()) = Some(live);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("the plant and asset ports must be two different interfaces (both are {0:?})")]
    SamePort(String),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("poll failed: {0}")]
    Poll(#[source] std::io::Error),
}

struct Side {
    prepared: PreparedPort,
    raw: RawPort,
    /// Whether we took this port down because the other lost its link.
    held_down: bool,
    /// Carrier, as last reported while we did not hold the port down.
    carrier: bool,
    /// A port just brought up (at start, or released by us) may take seconds to
    /// negotiate its link: until then its missing carrier is not propagated, or two
    /// ports would take each other down in turn for ever.
    settling_until: Instant,
}

/// How long a port that was just brought up gets to find its link.
const LINK_SETTLE: Duration = Duration::from_secs(5);
/// How long to wait before trying again to change a port that refused.
const LINK_RETRY: Duration = Duration::from_secs(5);

/// Two ports and the pipeline between them.
pub struct Bridge<S> {
    sides: [Side; 2],
    pipeline: Pipeline<S>,
    monitor: LinkMonitor,
    /// The board asks for link propagation whatever the policy says.
    link_propagation_forced: bool,
    /// After a failed attempt to change a port's state, when to try again (so that a
    /// port that refuses does not flood the log every housekeeping round).
    link_retry_at: Instant,
    clock: Clock,
    /// Per receive slot: forward it (reserved at open, reused every batch).
    verdicts: Vec<bool>,
    /// Frames of the batch to edit in place: (slot, new numbers, partial checksum).
    rewrites: Vec<(usize, TcpRewrite, bool)>,
}

impl<S> std::fmt::Debug for Bridge<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("plant", &self.sides[0].prepared.name())
            .field("asset", &self.sides[1].prepared.name())
            .finish_non_exhaustive()
    }
}

/// Monotonic and wall time, read once per batch.
struct Clock {
    start: Instant,
}

impl Clock {
    fn now(&self) -> Now {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Now {
            mono_ns: self.start.elapsed().as_nanos() as u64 + 1,
            wall_ns: wall.as_nanos().min(i64::MAX as u128) as i64,
        }
    }
}

/// How often the loop expires flows and reads kernel statistics when traffic is steady.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(100);
/// Flow-table slots examined per housekeeping round.
const EXPIRY_BUDGET: usize = 1024;
/// Batches taken from one port before looking at the other (fairness under load).
const BATCHES_PER_TURN: usize = 4;

impl<S: EventSink> Bridge<S> {
    /// Check, prepare and open both ports. On any error, whatever was changed on the
    /// ports so far is put back (by the prepared ports' `Drop`).
    pub fn open(config: BridgeConfig, pipeline: Pipeline<S>) -> Result<Self, BridgeError> {
        if config.plant == config.asset {
            return Err(BridgeError::SamePort(config.plant));
        }
        // Query both before touching either, so that a missing port or an MTU mismatch
        // leaves the machine exactly as it was.
        let plant_info = crate::port::LinkInfo::query(&config.plant)?;
        let asset_info = crate::port::LinkInfo::query(&config.asset)?;
        check_same_mtu(&plant_info, &asset_info)?;
        let plant = PreparedPort::prepare(&config.plant)?;
        let asset = PreparedPort::prepare(&config.asset)?;
        for port in [&plant, &asset] {
            for warning in port.warnings() {
                warn!(port = port.name(), "{warning}");
            }
        }
        // GSO super-frames from virtual NICs can be up to 64 KiB whatever the MTU.
        let plant_raw = RawPort::open(plant.name(), config.batch, MAX_GSO_FRAME)?;
        let asset_raw = RawPort::open(asset.name(), config.batch, MAX_GSO_FRAME)?;
        // Always subscribed: a policy swapped in later may ask for link propagation.
        let monitor = LinkMonitor::new()?;
        let settling_until = Instant::now() + LINK_SETTLE;
        let carrier_of = |port: &PreparedPort| {
            LinkInfo::query_index(port.ifindex()).map_or(true, |info| info.carrier)
        };
        let (plant_carrier, asset_carrier) = (carrier_of(&plant), carrier_of(&asset));
        info!(
            plant = plant.name(),
            asset = asset.name(),
            mtu = plant.mtu(),
            link_propagation = config.link_propagation || pipeline.policy().link_propagation(),
            "ports ready"
        );
        Ok(Bridge {
            sides: [
                Side {
                    prepared: plant,
                    raw: plant_raw,
                    held_down: false,
                    carrier: plant_carrier,
                    settling_until,
                },
                Side {
                    prepared: asset,
                    raw: asset_raw,
                    held_down: false,
                    carrier: asset_carrier,
                    settling_until,
                },
            ],
            pipeline,
            monitor,
            link_propagation_forced: config.link_propagation,
            link_retry_at: Instant::now(),
            clock: Clock {
                start: Instant::now(),
            },
            verdicts: Vec::with_capacity(config.batch),
            rewrites: vec![(0, TcpRewrite { seq: 0, ack: 0 }, false); config.batch.max(1)],
        })
    }

    pub fn counters(&self) -> &Arc<Counters> {
        self.pipeline.counters()
    }

    /// Forward until `control.stop` is set. `report` is called (on this thread) when
    /// `control.report` is raised.
    pub fn run(
        &mut self,
        control: &Control,
        mut report: impl FnMut(&Counters),
    ) -> Result<(), BridgeError> {
        let mut last_housekeeping = Instant::now();
        let mut generation = 0;
        control.handoff.publish_initial(Live {
            policy: self.pipeline.policy().clone(),
            counters: self.pipeline.counters().clone(),
            generation,
            swap: SwapReport::default(),
        });
        while !control.stop.load(Ordering::Relaxed) {
            if let Some(policy) = control.handoff.take() {
                let swap = self.pipeline.swap_policy(policy);
                generation += 1;
                info!(
                    policy = self.pipeline.policy().name(),
                    kept = swap.kept,
                    revoked = swap.revoked,
                    "policy swapped in"
                );
                control.handoff.publish(Live {
                    policy: self.pipeline.policy().clone(),
                    counters: self.pipeline.counters().clone(),
                    generation,
                    swap,
                });
            }
            if control.report.swap(false, Ordering::Relaxed) {
                self.update_kernel_counters();
                report(self.pipeline.counters());
            }
            let mut fds = [
                libc::pollfd {
                    fd: self.sides[0].raw.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.sides[1].raw.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.monitor.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: `fds` is a valid array of three pollfd structures for the duration
            // of the call.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
            if ready < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(BridgeError::Poll(err));
            }
            for (i, fd) in fds[..2].iter().enumerate() {
                if fd.revents & (libc::POLLIN | libc::POLLERR) != 0 {
                    let ingress = port_of(i);
                    self.forward(ingress)?;
                }
            }
            if fds[2].revents & libc::POLLIN != 0 {
                self.read_link_changes();
            }
            if last_housekeeping.elapsed() >= HOUSEKEEPING_EVERY {
                last_housekeeping = Instant::now();
                // Also where a swapped-in policy's setting and a settled port take effect.
                self.propagate_links();
                self.pipeline.housekeeping(self.clock.now(), EXPIRY_BUDGET);
                self.update_kernel_counters();
            }
        }
        self.update_kernel_counters();
        Ok(())
    }

    /// Receive up to a few batches on `ingress`, judge them, send the survivors across.
    fn forward(&mut self, ingress: Port) -> Result<(), BridgeError> {
        let [plant, asset] = &mut self.sides;
        let (rx, tx) = match ingress {
            Port::Plant => (plant, asset),
            Port::Asset => (asset, plant),
        };
        let counters = self.pipeline.counters().clone();
        for _ in 0..BATCHES_PER_TURN {
            let received = rx.raw.recv()?;
            if received == 0 {
                break;
            }
            let now = self.clock.now();
            // Judge the whole batch first: the few frames that need new TCP sequence
            // numbers (after the gatekeeper answered a request itself) are edited in
            // place before anything is sent.
            let verdicts = &mut self.verdicts;
            verdicts.clear();
            verdicts.resize(rx.raw.rx().capacity(), false);
            let mut edits = 0usize;
            for (i, slot) in rx.raw.rx().iter_indexed() {
                let outcome = if slot.truncated() {
                    self.pipeline.oversize(slot.frame(), ingress, now)
                } else {
                    self.pipeline.process(slot.frame(), ingress, now)
                };
                verdicts[i] = outcome.forward;
                if let (true, Some(rewrite)) = (outcome.forward, outcome.rewrite) {
                    let partial = slot.vnet_hdr().flags & VnetHdr::F_NEEDS_CSUM != 0;
                    // At most one edit per slot, and there are as many entries as slots.
                    if let Some(entry) = self.rewrites.get_mut(edits) {
                        *entry = (i, rewrite, partial);
                        edits += 1;
                    }
                }
            }
            for &(i, rewrite, partial) in &self.rewrites[..edits] {
                if let Some(frame) = rx.raw.rx_mut().frame_mut(i) {
                    apply_rewrite(frame, &rewrite, partial);
                }
            }
            let mut batch = tx.raw.tx();
            let mut staged = 0u64;
            for (i, slot) in rx.raw.rx().iter_indexed() {
                if verdicts[i] && batch.push(&slot) {
                    staged += 1;
                }
            }
            let sent = batch.flush();
            drop(batch);
            let port = counters.port(ingress);
            port.forwarded.add(sent.sent as u64);
            counters
                .port(ingress.other())
                .tx_errors
                .add(staged.saturating_sub(sent.sent as u64));
            // Resets and answers built for denied messages, after the batch they follow.
            for frame in self.pipeline.injected() {
                let side = if frame.port == ingress {
                    &mut *rx
                } else {
                    &mut *tx
                };
                let mut batch = side.raw.tx();
                batch.push_frame(VnetHdr::default(), frame.frame());
                let sent = batch.flush();
                if sent.sent == 0 {
                    counters.port(frame.port).tx_errors.add(1);
                }
            }
            self.pipeline.clear_injected();
            if received < rx.raw.rx().capacity() {
                break;
            }
        }
        Ok(())
    }

    fn update_kernel_counters(&mut self) {
        let counters = self.pipeline.counters().clone();
        for (side, port) in self.sides.iter_mut().zip([Port::Plant, Port::Asset]) {
            if let Ok(stats) = side.raw.kernel_stats() {
                counters.port(port).kernel_drops.set(stats.drops);
            }
        }
    }

    /// Reads the ports' carrier changes, then propagates them.
    fn read_link_changes(&mut self) {
        let changes = match self.monitor.poll_events() {
            Ok(changes) => changes,
            Err(err) => {
                warn!("link monitor: {err}");
                return;
            }
        };
        for change in changes {
            let Some(side) = self
                .sides
                .iter_mut()
                .find(|s| s.prepared.ifindex() == change.ifindex)
            else {
                continue;
            };
            // A port we hold down has no carrier because of us: that says nothing about
            // its cable.
            if !side.held_down {
                side.carrier = change.carrier_up && !change.removed;
            }
        }
        self.propagate_links();
    }

    /// While link propagation is on (the board's setting or the policy's), a port
    /// without carrier holds the other one down, so that the devices beyond it see the
    /// loss too (and redundant paths take over); the other comes back with the carrier.
    /// With propagation off, a port we hold down is released.
    fn propagate_links(&mut self) {
        let enabled = self.link_propagation_forced || self.pipeline.policy().link_propagation();
        let now = Instant::now();
        if now < self.link_retry_at {
            return;
        }
        for i in 0..2 {
            let other = 1 - i;
            let this = &self.sides[i];
            // A port we hold down cannot see its own cable, so it holds nothing down.
            let lost = enabled && !this.held_down && !this.carrier && now >= this.settling_until;
            if lost == self.sides[other].held_down {
                continue;
            }
            let name = self.sides[i].prepared.name().to_string();
            let target = &mut self.sides[other];
            match set_link_up(target.prepared.ifindex(), !lost) {
                Ok(()) => {
                    target.held_down = lost;
                    if !lost {
                        target.settling_until = now + LINK_SETTLE;
                    }
                    self.pipeline
                        .counters()
                        .port(port_of(other))
                        .held_down
                        .set(u64::from(lost));
                    warn!(
                        port = %name,
                        other = target.prepared.name(),
                        "{}",
                        match (lost, enabled) {
                            (true, _) => "link lost: taking down the other port",
                            (false, true) => "link back: bringing up the other port",
                            (false, false) => "link propagation is off: bringing up the other port",
                        }
                    );
                }
                Err(err) => {
                    warn!(
                        port = target.prepared.name(),
                        "cannot propagate link state (trying again in {} s): {err}",
                        LINK_RETRY.as_secs()
                    );
                    self.link_retry_at = now + LINK_RETRY;
                }
            }
        }
    }
}

fn port_of(side: usize) -> Port {
    if side == 0 {
        Port::Plant
    } else {
        Port::Asset
    }
}

impl<S> Drop for Bridge<S> {
    fn drop(&mut self) {
        // A port we held down goes back up before the prepared ports restore the rest.
        for side in &mut self.sides {
            if side.held_down {
                let _ = set_link_up(side.prepared.ifindex(), true);
            }
        }
    }
}
