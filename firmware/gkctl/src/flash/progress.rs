//! Progress of a long copy: a bar with the rate and the time left when stderr is a
//! terminal, otherwise one plain line per tenth (logs, CI, a serial console).

use std::io::Write as _;
use std::time::{Duration, Instant};

use super::device::human;

#[derive(Debug)]
pub(super) enum Progress {
    Bar(indicatif::ProgressBar),
    Lines {
        what: &'static str,
        total: u64,
        done: u64,
        start: Instant,
        /// The next tenth to report (1..=10).
        next: u64,
    },
}

impl Progress {
    pub(super) fn new(what: &'static str, total: u64) -> Progress {
        if super::stderr_is_terminal() {
            let bar = indicatif::ProgressBar::new(total);
            let style = indicatif::ProgressStyle::with_template(
                "{msg:>9} [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec}, {eta} left",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(what);
            Progress::Bar(bar)
        } else {
            Progress::Lines {
                what,
                total,
                done: 0,
                start: Instant::now(),
                next: 1,
            }
        }
    }

    pub(super) fn advance(&mut self, n: u64) {
        match self {
            Progress::Bar(bar) => bar.inc(n),
            Progress::Lines {
                what,
                total,
                done,
                start,
                next,
            } => {
                *done += n;
                let total = (*total).max(1);
                if *next <= 10 && *done * 10 >= *next * total {
                    let elapsed = start.elapsed();
                    let line = line(what, *done, total, elapsed);
                    let _ = writeln!(std::io::stderr(), "{line}");
                    *next = *done * 10 / total + 1;
                }
            }
        }
    }

    pub(super) fn finish(self) {
        if let Progress::Bar(bar) = self {
            bar.finish();
        }
    }

    /// Leaves the bar where it stopped (an error follows).
    pub(super) fn abandon(&mut self) {
        if let Progress::Bar(bar) = self {
            bar.abandon();
        }
    }
}

/// `writing  40% (12.0 MiB of 30.0 MiB), 8.1 MiB/s, 2 s left`
fn line(what: &str, done: u64, total: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let rate = done as f64 / secs;
    let left = if rate > 0.0 {
        (total.saturating_sub(done)) as f64 / rate
    } else {
        0.0
    };
    format!(
        "gkctl flash: {what} {:>3}% ({} of {}), {}/s, {:.0} s left",
        done * 100 / total.max(1),
        human(done),
        human(total),
        human(rate as u64),
        left.ceil()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_say_rate_and_time_left() {
        let l = line("writing", 10 << 20, 30 << 20, Duration::from_secs(2));
        assert_eq!(
            l,
            "gkctl flash: writing  33% (10.0 MiB of 30.0 MiB), 5.0 MiB/s, 4 s left"
        );
    }
}
