//! The life of a bundle on the box: offered (from `--bundle`, the inbox or `gkctl
//! apply`), verified, compiled, put in force as *pending*, then confirmed (by the
//! operator or by the policy's health checks) or reverted (window over, a health check
//! failed, the daemon restarted). Every step is written to the state directory first
//! (crash-safe, see `gk_bundle::state`) and to the audit log, then told to the events
//! and the log, and only then handed to the forwarding thread.
//!
//! Sans-I/O apart from the state directory: time is passed in, the data plane is
//! reached through [`Handoff`], so the state machine can be tested on its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gk_bundle::state::{AuditEntry, Pending, StateDir};
use gk_bundle::trust::TrustStore;
use gk_bundle::verify::{self, Context, Verified};
use gk_dataplane::bridge::{Handoff, Live};
use gk_policy::Policy;
use serde_json::json;
use time::OffsetDateTime;
use tracing::{error, info, warn};

use crate::events::LineSink;

/// How long a new bundle stays pending when it does not say.
pub const DEFAULT_CONFIRM_WINDOW: Duration = Duration::from_secs(600);
/// How long an apply waits for the forwarding thread to take the new policy (one turn
/// of its loop, normally well under 100 ms).
const SWAP_WAIT: Duration = Duration::from_secs(5);

/// What runs when no valid bundle does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnFailure {
    /// Forward nothing.
    FailClosed,
    /// Forward everything unfiltered, and say so loudly and repeatedly.
    FailOpen,
}

impl OnFailure {
    pub fn policy(self) -> Policy {
        match self {
            OnFailure::FailClosed => Policy::fail_closed(),
            OnFailure::FailOpen => Policy::fail_open(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::FailClosed => "fail-closed",
            OnFailure::FailOpen => "fail-open",
        }
    }
}

/// Where a bundle came from (audit log, events, status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// `bundle` (the command line), `inbox`, `control`, `state` (the one in force).
    pub kind: &'static str,
    /// The file name, when there is one.
    pub file: Option<String>,
}

impl Source {
    pub fn new(kind: &'static str, file: Option<String>) -> Source {
        Source { kind, file }
    }

    fn label(&self) -> String {
        match &self.file {
            Some(f) => format!("{} ({f})", self.kind),
            None => self.kind.to_string(),
        }
    }
}

/// A bundle in force, or pending.
#[derive(Debug, Clone)]
pub struct Active {
    pub verified: Verified,
    pub policy: Arc<Policy>,
    pub source: Source,
}

impl Active {
    fn digest(&self) -> String {
        hex(&self.verified.digest)
    }

    fn signers(&self) -> Vec<String> {
        self.verified
            .signers
            .iter()
            .map(|k| k.id.to_string())
            .collect()
    }
}

/// A pending apply and what its health checks have to do.
#[derive(Debug, Clone)]
pub struct PendingApply {
    pub active: Active,
    /// Unix seconds at which it reverts unless confirmed.
    pub deadline: i64,
    /// When it was put in force (monotonic), for the health checks' `within`.
    pub since: Instant,
}

/// What became of an offer or a request, for the caller to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub ok: bool,
    /// A stable code: pending, ignored, refusal codes (rollback, bad-signature, …),
    /// invalid-policy, busy, confirmed, nothing-pending, error.
    pub code: String,
    pub message: String,
}

impl Answer {
    fn ok(code: &str, message: String) -> Answer {
        Answer {
            ok: true,
            code: code.into(),
            message,
        }
    }

    fn refused(code: &str, message: String) -> Answer {
        Answer {
            ok: false,
            code: code.into(),
            message,
        }
    }
}

/// The box's bundle state machine.
pub struct Lifecycle {
    state: StateDir,
    trust: Option<TrustStore>,
    device_id: Option<String>,
    site: Option<String>,
    on_failure: OnFailure,
    factory_monitor: bool,
    window_override: Option<Duration>,
    handoff: Handoff,
    events: LineSink,
    current: Option<Active>,
    pending: Option<PendingApply>,
    /// When the failure mode last said so (it repeats itself).
    last_failure_notice: Option<Instant>,
}

/// How the lifecycle is set up.
pub struct Settings {
    pub state: StateDir,
    pub trust: Option<TrustStore>,
    pub device_id: Option<String>,
    pub site: Option<String>,
    pub on_failure: OnFailure,
    /// Until a first bundle is confirmed, monitor everything instead of `on_failure`
    /// (the factory default of a new box).
    pub factory_monitor: bool,
    /// Overrides the bundles' own confirm windows (tests, impatient operators).
    pub confirm_window: Option<Duration>,
}

/// The factory default's name (policy, events, status).
const FACTORY_DEFAULT: &str = "factory-default";

/// How often the failure mode repeats that it is on.
const FAILURE_NOTICE_EVERY: Duration = Duration::from_secs(60);

impl Lifecycle {
    /// Restores what the state directory says: a bundle that was pending when the
    /// daemon stopped is reverted (its confirmation never came), the current one is
    /// verified again. Returns the lifecycle and the policy to start with.
    pub fn start(
        settings: Settings,
        handoff: Handoff,
        events: LineSink,
    ) -> (Lifecycle, Arc<Policy>) {
        let mut lc = Lifecycle {
            state: settings.state,
            trust: settings.trust,
            device_id: settings.device_id,
            site: settings.site,
            on_failure: settings.on_failure,
            factory_monitor: settings.factory_monitor,
            window_override: settings.confirm_window,
            handoff,
            events,
            current: None,
            pending: None,
            last_failure_notice: None,
        };
        lc.audit(None, None, &Source::new("state", None), "started", None);
        match lc.state.pending() {
            Ok(Some(pending)) => {
                let source = Source::new("state", None);
                let digest = hex(&sha256(&pending.bytes));
                if let Err(e) = lc.state.revert() {
                    error!("cannot revert the pending bundle: {e}");
                }
                warn!("the bundle pending when gatekeeperd stopped was never confirmed: reverted");
                lc.audit(
                    Some(digest.clone()),
                    None,
                    &source,
                    "reverted",
                    Some("restart while pending".into()),
                );
                lc.event(
                    "reverted",
                    &source,
                    None,
                    Some(&digest),
                    &[],
                    Some("restart while pending"),
                );
            }
            Ok(None) => {}
            Err(e) => error!("cannot read the pending bundle: {e}"),
        }
        match lc.state.current() {
            Ok(Some(bytes)) => match lc.check(&bytes, false) {
                Ok(active) => {
                    info!(
                        serial = active.verified.metadata.serial,
                        policy = active.policy.name(),
                        "the bundle in force"
                    );
                    lc.current = Some(Active {
                        source: Source::new("state", None),
                        ..active
                    });
                }
                Err(answer) => {
                    error!(
                        "the bundle in force does not verify any more: {}",
                        answer.message
                    );
                    let source = Source::new("state", None);
                    lc.audit(
                        Some(hex(&sha256(&bytes))),
                        None,
                        &source,
                        "refused",
                        Some(format!("{}: {}", answer.code, answer.message)),
                    );
                }
            },
            Ok(None) => {}
            Err(e) => error!("cannot read the bundle in force: {e}"),
        }
        let policy = lc.in_force_or_failure();
        (lc, policy)
    }

    /// The policy of the current bundle, or the factory default's or the failure
    /// mode's (said loudly).
    fn in_force_or_failure(&mut self) -> Arc<Policy> {
        match &self.current {
            Some(active) => active.policy.clone(),
            None => {
                self.failure_notice(true);
                Arc::new(if self.factory_default() {
                    Policy::factory_default()
                } else {
                    self.on_failure.policy()
                })
            }
        }
    }

    /// Whether the factory default runs when no bundle does: asked for, and no bundle
    /// was ever confirmed on this box (the ratchet is still 0). Once one was, losing it
    /// is a failure, not a new box.
    fn factory_default(&self) -> bool {
        self.factory_monitor && self.state.ratchet().is_ok_and(|r| r.serial == 0)
    }

    fn failure_notice(&mut self, now: bool) {
        let due = self
            .last_failure_notice
            .is_none_or(|t| t.elapsed() >= FAILURE_NOTICE_EVERY);
        if !(now || due) || self.current.is_some() || self.pending.is_some() {
            return;
        }
        self.last_failure_notice = Some(Instant::now());
        if self.factory_default() {
            warn!("FACTORY DEFAULT: no bundle yet; MONITOR MODE, forwarding everything and reporting what a policy would refuse");
            let line = json!({
                "time": now_rfc3339(),
                "gatekeeper": FACTORY_DEFAULT,
                "event": "failure-mode",
                "mode": FACTORY_DEFAULT,
                "reason": "no bundle was ever confirmed on this box",
            });
            self.events.send(line.to_string());
            return;
        }
        match self.on_failure {
            OnFailure::FailClosed => {
                error!("NO VALID BUNDLE: fail-closed, forwarding nothing");
            }
            OnFailure::FailOpen => {
                error!("NO VALID BUNDLE: FAIL-OPEN, FORWARDING EVERYTHING UNFILTERED");
            }
        }
        let line = json!({
            "time": now_rfc3339(),
            "gatekeeper": self.on_failure.as_str(),
            "event": "failure-mode",
            "mode": self.on_failure.as_str(),
            "reason": "no valid bundle",
        });
        self.events.send(line.to_string());
    }

    /// Verifies `bytes` and compiles its policy. `rollback` applies the ratchet (an
    /// offer) or not (the bundle already in force).
    fn check(&self, bytes: &[u8], rollback: bool) -> Result<Active, Answer> {
        let Some(trust) = &self.trust else {
            return Err(Answer::refused(
                "no-trust",
                "no trust store: no bundle can be verified".into(),
            ));
        };
        let ratchet = self
            .state
            .ratchet()
            .map_err(|e| Answer::refused("error", e.to_string()))?;
        let ctx = Context {
            ratchet: if rollback { ratchet.serial } else { 0 },
            time_floor: if rollback { ratchet.time_floor } else { None },
            now: if rollback {
                Some(OffsetDateTime::now_utc())
            } else {
                None
            },
            device_id: self.device_id.clone(),
            site: self.site.clone(),
        };
        let verified = verify::verify(bytes, trust, &ctx)
            .map_err(|r| Answer::refused(r.code(), r.to_string()))?;
        let name = format!("bundle serial {}", verified.metadata.serial);
        let policy = match Policy::from_toml(&verified.policy_text, &name) {
            Ok((policy, warnings)) => {
                for w in warnings {
                    warn!("{w}");
                }
                Arc::new(policy)
            }
            Err(e) => {
                let first: Vec<String> = e.errors().take(3).map(|d| d.to_string()).collect();
                return Err(Answer::refused("invalid-policy", first.join("; ")));
            }
        };
        Ok(Active {
            verified,
            policy,
            source: Source::new("state", None),
        })
    }

    /// A bundle is offered. On success it is pending and in force.
    pub fn offer(&mut self, bytes: &[u8], source: Source) -> Answer {
        let digest = hex(&sha256(bytes));
        if self.current.as_ref().is_some_and(|c| c.digest() == digest) {
            return Answer::ok("ignored", "this bundle is already in force".into());
        }
        if let Some(p) = &self.pending {
            if p.active.digest() == digest {
                return Answer::ok("ignored", "this bundle is already pending".into());
            }
            let serial = p.active.verified.metadata.serial;
            let answer = Answer::refused(
                "busy",
                format!("bundle serial {serial} is pending: confirm it or let it revert first"),
            );
            self.refused(&digest, &source, &answer);
            return answer;
        }
        let active = match self.check(bytes, true) {
            Ok(active) => Active { source, ..active },
            Err(answer) => {
                self.refused(&digest, &source, &answer);
                return answer;
            }
        };
        let meta = &active.verified.metadata;
        let window = self
            .window_override
            .or(meta.confirm_window)
            .unwrap_or(DEFAULT_CONFIRM_WINDOW);
        let deadline = OffsetDateTime::now_utc().unix_timestamp() + window.as_secs() as i64;
        let pending = Pending {
            bytes: bytes.to_vec(),
            deadline,
            source: active.source.kind.to_string(),
        };
        // The time floor moves with every trusted bundle seen (so that expiry works
        // without a clock); the ratchet only when it is confirmed.
        if let Err(e) = self
            .state
            .raise_time_floor(meta.created)
            .and_then(|()| self.state.set_pending(&pending))
        {
            let answer = Answer::refused("error", format!("cannot record the bundle: {e}"));
            self.refused(&digest, &active.source, &answer);
            return answer;
        }
        let serial = meta.serial;
        let signers = active.signers();
        let checks = active.policy.health_checks().len();
        let message = if checks > 0 {
            format!(
                "bundle serial {serial} is in force, pending: confirmed when its {checks} health check(s) pass, reverted after {}s otherwise",
                window.as_secs()
            )
        } else {
            format!(
                "bundle serial {serial} is in force, pending: run `gkctl confirm` within {}s or it reverts",
                window.as_secs()
            )
        };
        self.audit_signed(
            Some(digest.clone()),
            Some(serial),
            signers.clone(),
            &active.source,
            "pending",
            None,
        );
        self.event(
            "pending",
            &active.source,
            Some(serial),
            Some(&digest),
            &signers,
            None,
        );
        self.handoff.offer(active.policy.clone());
        // Say "in force" once the forwarding thread runs it (within one turn of its
        // loop, 100 ms at most), not before: whoever reads the console acts on it.
        if !self.handoff.wait_taken(SWAP_WAIT) {
            warn!(
                serial,
                "the forwarding thread has not taken the bundle's policy yet"
            );
        }
        info!(serial, source = %active.source.label(), "{message}");
        self.pending = Some(PendingApply {
            active,
            deadline,
            since: Instant::now(),
        });
        Answer::ok("pending", message)
    }

    fn refused(&mut self, digest: &str, source: &Source, answer: &Answer) {
        warn!(source = %source.label(), "bundle refused ({}): {}", answer.code, answer.message);
        let reason = format!("{}: {}", answer.code, answer.message);
        self.audit(Some(digest.into()), None, source, "refused", Some(reason));
        self.event(
            "refused",
            source,
            None,
            Some(digest),
            &[],
            Some(&format!("{}: {}", answer.code, answer.message)),
        );
    }

    /// The operator (or the health checks) confirms the pending bundle.
    pub fn confirm(&mut self, why: &str) -> Answer {
        let Some(pending) = self.pending.take() else {
            return Answer::refused("nothing-pending", "no bundle is pending".into());
        };
        let meta = &pending.active.verified.metadata;
        if let Err(e) = self.state.confirm(meta.serial, meta.created) {
            let message = format!("cannot record the confirmation: {e}");
            error!("{message}");
            self.pending = Some(pending);
            return Answer::refused("error", message);
        }
        let serial = meta.serial;
        let digest = pending.active.digest();
        let signers = pending.active.signers();
        info!(serial, "bundle confirmed ({why})");
        self.audit_signed(
            Some(digest.clone()),
            Some(serial),
            signers.clone(),
            &pending.active.source,
            "confirmed",
            Some(why.into()),
        );
        self.event(
            "confirmed",
            &pending.active.source,
            Some(serial),
            Some(&digest),
            &signers,
            Some(why),
        );
        self.current = Some(pending.active);
        Answer::ok(
            "confirmed",
            format!("bundle serial {serial} confirmed ({why})"),
        )
    }

    /// Puts the previous bundle (or the failure mode) back.
    pub fn revert(&mut self, why: &str) -> Answer {
        let Some(pending) = self.pending.take() else {
            return Answer::refused("nothing-pending", "no bundle is pending".into());
        };
        if let Err(e) = self.state.revert() {
            error!("cannot record the revert: {e}");
        }
        let serial = pending.active.verified.metadata.serial;
        let digest = pending.active.digest();
        warn!(serial, "bundle reverted: {why}");
        self.audit(
            Some(digest.clone()),
            Some(serial),
            &pending.active.source,
            "reverted",
            Some(why.into()),
        );
        self.event(
            "reverted",
            &pending.active.source,
            Some(serial),
            Some(&digest),
            &[],
            Some(why),
        );
        let policy = self.in_force_or_failure();
        self.handoff.offer(policy);
        Answer::ok(
            "reverted",
            format!("bundle serial {serial} reverted: {why}"),
        )
    }

    /// Called about once a second: the pending bundle's window and health checks, and
    /// the failure mode's reminder.
    pub fn tick(&mut self) {
        self.failure_notice(false);
        let Some(pending) = &self.pending else { return };
        if OffsetDateTime::now_utc().unix_timestamp() >= pending.deadline {
            self.revert("its confirmation window ended without a confirmation");
            return;
        }
        let checks = pending.active.policy.health_checks();
        if checks.is_empty() {
            return;
        }
        // The counters of the pending policy, once the forwarding thread runs it.
        let Some(live) = self.handoff.live() else {
            return;
        };
        if !Arc::ptr_eq(&live.policy, &pending.active.policy) {
            return;
        }
        let elapsed = pending.since.elapsed();
        let mut passed = 0;
        for (check, c) in checks.iter().zip(&live.counters.health) {
            if c.refused.get() > 0 {
                let why = format!(
                    "health check {:?} failed: the new policy refused its traffic",
                    check.name
                );
                self.revert(&why);
                return;
            }
            if c.forward.get() > 0 && c.reverse.get() > 0 {
                passed += 1;
            } else if elapsed >= check.within {
                let why = format!(
                    "health check {:?} failed: no traffic both ways within {}s",
                    check.name,
                    check.within.as_secs()
                );
                self.revert(&why);
                return;
            }
        }
        if passed == checks.len() {
            self.confirm("its health checks passed");
        }
    }

    /// What `gkctl status` prints.
    pub fn status(&self) -> serde_json::Value {
        let live = self.handoff.live();
        let bundle = |a: &Active| {
            let m = &a.verified.metadata;
            json!({
                "serial": m.serial,
                "digest": a.digest(),
                "created": rfc3339(m.created),
                "expires": m.expires.map(rfc3339),
                "devices": m.devices,
                "site": m.site,
                "comment": m.comment,
                "signers": a.verified.signers.iter().map(|k| json!({"id": k.id.to_string(), "name": k.name})).collect::<Vec<_>>(),
                "policy": a.policy.name(),
                "source": a.source.label(),
            })
        };
        let pending = self.pending.as_ref().map(|p| {
            let checks: Vec<serde_json::Value> = match &live {
                Some(live) if Arc::ptr_eq(&live.policy, &p.active.policy) => p
                    .active
                    .policy
                    .health_checks()
                    .iter()
                    .zip(&live.counters.health)
                    .map(|(check, c)| {
                        json!({
                            "name": check.name,
                            "within": check.within.as_secs(),
                            "forward": c.forward.get(),
                            "reverse": c.reverse.get(),
                            "refused": c.refused.get(),
                        })
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let remaining = p.deadline - OffsetDateTime::now_utc().unix_timestamp();
            json!({
                "bundle": bundle(&p.active),
                "deadline": OffsetDateTime::from_unix_timestamp(p.deadline).map(rfc3339).ok(),
                "remaining_seconds": remaining.max(0),
                "health": checks,
            })
        });
        let running = live.as_ref().map(running);
        let ratchet = self.state.ratchet().ok();
        let factory = self.current.is_none() && self.pending.is_none() && self.factory_default();
        json!({
            "mode": live.as_ref().map(|l| l.policy.mode().as_str()),
            "policy": live.as_ref().map(|l| l.policy.name().to_string()),
            "failure_mode": if self.current.is_none() && self.pending.is_none() && !factory { Some(self.on_failure.as_str()) } else { None },
            "factory_default": factory,
            "current": self.current.as_ref().map(bundle),
            "pending": pending,
            "ratchet": ratchet.as_ref().map(|r| r.serial),
            "time_floor": ratchet.and_then(|r| r.time_floor).map(rfc3339),
            "device_id": self.device_id,
            "site": self.site,
            "running": running,
        })
    }

    fn audit(
        &self,
        digest: Option<String>,
        serial: Option<u64>,
        source: &Source,
        outcome: &str,
        reason: Option<String>,
    ) {
        self.audit_signed(digest, serial, Vec::new(), source, outcome, reason);
    }

    fn audit_signed(
        &self,
        digest: Option<String>,
        serial: Option<u64>,
        signers: Vec<String>,
        source: &Source,
        outcome: &str,
        reason: Option<String>,
    ) {
        let entry = AuditEntry {
            time: OffsetDateTime::now_utc(),
            digest,
            serial,
            signers,
            source: source.label(),
            outcome: outcome.into(),
            reason,
        };
        if let Err(e) = self.state.audit_append(&entry) {
            error!("cannot write the audit log: {e}");
        }
    }

    fn event(
        &self,
        outcome: &str,
        source: &Source,
        serial: Option<u64>,
        digest: Option<&str>,
        signers: &[String],
        reason: Option<&str>,
    ) {
        let line = json!({
            "time": now_rfc3339(),
            "gatekeeper": self.handoff.live().map(|l| l.policy.name().to_string()),
            "event": "bundle",
            "outcome": outcome,
            "source": source.kind,
            "file": source.file,
            "serial": serial,
            "digest": digest,
            "signers": signers,
            "reason": reason,
        });
        self.events.send(line.to_string());
    }
}

/// Counters of what runs, for `gkctl status`.
fn running(live: &Live) -> serde_json::Value {
    let c = &live.counters;
    let port = |p: gk_dataplane::Port| {
        let pc = c.port(p);
        json!({"rx": pc.rx_packets.get(), "forwarded": pc.forwarded.get(), "tx_errors": pc.tx_errors.get(), "kernel_drops": pc.kernel_drops.get(), "held_down": pc.held_down.get() == 1})
    };
    let drops: serde_json::Map<String, serde_json::Value> = gk_dataplane::Reason::ALL
        .iter()
        .zip(c.dropped.iter().zip(&c.would_drop))
        .filter(|(_, (d, w))| d.get() + w.get() > 0)
        .map(|(r, (d, w))| {
            (
                r.code().to_string(),
                json!({"dropped": d.get(), "would_drop": w.get()}),
            )
        })
        .collect();
    let rules: Vec<serde_json::Value> = live
        .policy
        .rules()
        .iter()
        .zip(&c.rules)
        .map(|(r, rc)| json!({"name": r.name, "action": r.action.as_str(), "flows": rc.flows.get(), "packets": rc.packets.get(), "messages": rc.messages.get(), "messages_denied": rc.messages_denied.get()}))
        .collect();
    json!({
        "generation": live.generation,
        "plant": port(gk_dataplane::Port::Plant),
        "asset": port(gk_dataplane::Port::Asset),
        "flows": {"active": c.flows_active.get(), "capacity": c.flow_capacity.get(), "revoked": c.flows_revoked.get()},
        "drops": drops,
        "rules": rules,
        "events": {"emitted": c.events_emitted.get(), "suppressed": c.events_suppressed.get(), "lost": c.events_lost.get()},
    })
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn now_rfc3339() -> String {
    rfc3339(OffsetDateTime::now_utc())
}
