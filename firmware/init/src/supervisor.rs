//! When to (re)start gatekeeperd: exponential back-off and the crash loop, as a state
//! machine driven by the caller's clock (sans-I/O; the tests run years in microseconds).
//!
//! A daemon that exits is started again after 1 s, then 2, 4, … up to 30 s; a run of
//! 60 s or more counts as healthy and resets the delay. Five exits within two minutes
//! are a crash loop, which ends in the board's failure mode:
//!
//! - `fail-closed`: no more restarts; the ports stay down and nothing passes until the
//!   box is rebooted.
//! - `fail-open`: gatekeeperd is started in its own fail-open configuration (an empty
//!   state on tmpfs, `--on-failure fail-open`, no inbox: see `stage2::Daemon`), which
//!   bridges everything unfiltered; that daemon is restarted with the same back-off
//!   for as long as it takes, and never escalates further.
//!
//! The fail-open daemon is the same binary, so a bug that crashes gatekeeperd whatever
//! its state can crash it too; the hardware bypass hook (`hooks.bypass`), set while
//! failing open, is what makes fail-open hold on boards that have one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::board::OnFailure;

/// The numbers of the back-off and of the crash loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// A run at least this long resets the delay.
    pub healthy_after: Duration,
    /// This many exits within [`Limits::loop_window`] are a crash loop.
    pub loop_exits: usize,
    pub loop_window: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            healthy_after: Duration::from_secs(60),
            loop_exits: 5,
            loop_window: Duration::from_secs(120),
        }
    }
}

/// Which daemon the supervisor runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// gatekeeperd with the box's state and bundles.
    Normal,
    /// After a crash loop on a fail-open board: the fail-open configuration.
    FailOpen,
    /// After a crash loop on a fail-closed board: nothing runs.
    FailClosed,
}

/// Where the daemon is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Started at `since`.
    Running { since: Instant },
    /// To be started at `until`.
    Waiting { until: Instant },
    /// Not to be started again (fail-closed, or shutting down).
    Stopped,
}

/// What an exit leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Start again after this delay.
    Restart(Duration),
    /// A crash loop: now in this phase (and, for [`Phase::FailOpen`], start at once).
    CrashLoop(Phase),
    /// Nothing more runs.
    Stopped,
}

/// The supervisor's memory.
#[derive(Clone, Debug)]
pub struct Supervisor {
    limits: Limits,
    on_failure: OnFailure,
    phase: Phase,
    state: State,
    delay: Duration,
    exits: VecDeque<Instant>,
    /// Starts so far (for the status line).
    pub starts: u64,
}

impl Supervisor {
    /// A supervisor whose first start is due at `now`.
    pub fn new(limits: Limits, on_failure: OnFailure, now: Instant) -> Supervisor {
        Supervisor {
            limits,
            on_failure,
            phase: Phase::Normal,
            state: State::Waiting { until: now },
            delay: limits.first_delay,
            exits: VecDeque::new(),
            starts: 0,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Whether a start is due.
    pub fn start_due(&self, now: Instant) -> bool {
        matches!(self.state, State::Waiting { until } if now >= until)
    }

    /// The daemon was started (or the attempt failed and counts as an exit: call
    /// [`Supervisor::exited`] right after).
    pub fn started(&mut self, now: Instant) {
        self.starts += 1;
        self.state = State::Running { since: now };
    }

    /// The daemon exited (for any reason other than our asking it to).
    pub fn exited(&mut self, now: Instant) -> Next {
        let ran = match self.state {
            State::Running { since } => now.saturating_duration_since(since),
            _ => Duration::ZERO,
        };
        if self.phase == Phase::FailClosed || self.state == State::Stopped {
            self.state = State::Stopped;
            return Next::Stopped;
        }
        if ran >= self.limits.healthy_after {
            self.delay = self.limits.first_delay;
        }
        self.exits.push_back(now);
        while self
            .exits
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > self.limits.loop_window)
        {
            self.exits.pop_front();
        }
        if self.phase == Phase::Normal && self.exits.len() >= self.limits.loop_exits {
            self.exits.clear();
            self.delay = self.limits.first_delay;
            return match self.on_failure {
                OnFailure::FailClosed => {
                    self.phase = Phase::FailClosed;
                    self.state = State::Stopped;
                    Next::CrashLoop(Phase::FailClosed)
                }
                OnFailure::FailOpen => {
                    self.phase = Phase::FailOpen;
                    self.state = State::Waiting { until: now };
                    Next::CrashLoop(Phase::FailOpen)
                }
            };
        }
        let wait = self.delay;
        self.delay = (self.delay * 2).min(self.limits.max_delay);
        self.state = State::Waiting { until: now + wait };
        Next::Restart(wait)
    }

    /// No more starts (shutdown).
    pub fn stop(&mut self) {
        self.state = State::Stopped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Runs the daemon for `ran` and lets it exit; returns what follows and the time.
    fn cycle(s: &mut Supervisor, now: &mut Instant, ran: Duration) -> Next {
        assert!(s.start_due(*now), "{:?}", s.state());
        s.started(*now);
        *now += ran;
        let next = s.exited(*now);
        if let Next::Restart(d) = next {
            assert!(!s.start_due(*now + d - Duration::from_millis(1)));
            *now += d;
        }
        next
    }

    #[test]
    fn back_off_doubles_to_the_cap_and_resets_after_a_healthy_run() {
        let t0 = Instant::now();
        let mut now = t0;
        let limits = Limits {
            loop_exits: 100,
            ..Limits::default()
        };
        let mut s = Supervisor::new(limits, OnFailure::FailClosed, now);
        let delays: Vec<Next> = (0..7).map(|_| cycle(&mut s, &mut now, secs(20))).collect();
        assert_eq!(
            delays,
            [1, 2, 4, 8, 16, 30, 30]
                .map(|d| Next::Restart(secs(d)))
                .to_vec()
        );
        assert_eq!(cycle(&mut s, &mut now, secs(60)), Next::Restart(secs(1)));
        assert_eq!(cycle(&mut s, &mut now, secs(59)), Next::Restart(secs(2)));
        assert_eq!(s.starts, 9);
    }

    #[test]
    fn five_quick_exits_end_in_fail_closed() {
        let mut now = Instant::now();
        let mut s = Supervisor::new(Limits::default(), OnFailure::FailClosed, now);
        for d in [1, 2, 4, 8] {
            assert_eq!(cycle(&mut s, &mut now, secs(1)), Next::Restart(secs(d)));
        }
        assert_eq!(
            cycle(&mut s, &mut now, secs(1)),
            Next::CrashLoop(Phase::FailClosed)
        );
        assert_eq!(s.phase(), Phase::FailClosed);
        assert_eq!(s.state(), State::Stopped);
        assert!(!s.start_due(now + secs(3600)));
    }

    #[test]
    fn exits_spread_over_more_than_the_window_are_no_crash_loop() {
        let mut now = Instant::now();
        let mut s = Supervisor::new(Limits::default(), OnFailure::FailClosed, now);
        // Each run lasts 40 s: five exits span more than two minutes.
        for _ in 0..20 {
            assert!(matches!(
                cycle(&mut s, &mut now, secs(40)),
                Next::Restart(_)
            ));
        }
        assert_eq!(s.phase(), Phase::Normal);
    }

    #[test]
    fn fail_open_restarts_the_fail_open_daemon_forever() {
        let mut now = Instant::now();
        let mut s = Supervisor::new(Limits::default(), OnFailure::FailOpen, now);
        for _ in 0..4 {
            cycle(&mut s, &mut now, Duration::ZERO);
        }
        assert_eq!(
            cycle(&mut s, &mut now, Duration::ZERO),
            Next::CrashLoop(Phase::FailOpen)
        );
        assert!(s.start_due(now), "the fail-open daemon starts at once");
        let mut last = Duration::ZERO;
        for _ in 0..50 {
            match cycle(&mut s, &mut now, Duration::ZERO) {
                Next::Restart(d) => last = d,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(last, secs(30));
        assert_eq!(s.phase(), Phase::FailOpen);
    }

    #[test]
    fn a_stopped_supervisor_starts_nothing() {
        let now = Instant::now();
        let mut s = Supervisor::new(Limits::default(), OnFailure::FailOpen, now);
        s.started(now);
        s.stop();
        assert_eq!(s.exited(now), Next::Stopped);
        assert!(!s.start_due(now + secs(100)));
    }
}
