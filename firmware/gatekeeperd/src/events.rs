//! The event writer: one thread turns records into JSON lines (the only place events
//! allocate). Packet events come from the forwarding thread through a bounded queue that
//! never blocks it; the policy they name travels in the same queue, in order, so a swap
//! never makes an event name a rule of the wrong policy; the management plane adds its
//! own lines (bundles offered, applied, refused, reverted).

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use gk_dataplane::{Event, EventFormatter, EventSink};
use gk_policy::Policy;

/// How many records may wait for the writer before new packet events are counted lost.
const QUEUE: usize = 8192;

/// How long written events may sit in the page cache: a power cut (the common way a box
/// in a cabinet goes down) loses at most this much of them, and the storage sees at most
/// one sync per interval.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// What the writer is given.
#[derive(Debug)]
pub enum Record {
    Packet(Event),
    /// From here on, packet events name the rules of this policy.
    Policy(Arc<Policy>),
    /// A line already formatted (the management plane's events).
    Line(String),
}

/// The forwarding thread's side: never blocks on packet events.
#[derive(Debug, Clone)]
pub struct PacketSink(SyncSender<Record>);

impl EventSink for PacketSink {
    fn offer(&mut self, event: &Event) -> bool {
        !matches!(
            self.0.try_send(Record::Packet(*event)),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_))
        )
    }

    fn policy_changed(&mut self, policy: &Arc<Policy>) {
        // Rare (a swap), and it must not be lost: waiting for room is fine here.
        let _ = self.0.send(Record::Policy(policy.clone()));
    }
}

/// The management plane's side.
#[derive(Debug, Clone)]
pub struct LineSink(SyncSender<Record>);

impl LineSink {
    pub fn send(&self, line: String) {
        let _ = self.0.send(Record::Line(line));
    }
}

pub struct Writer {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<()>,
}

impl Writer {
    /// Writes what is queued and stops.
    pub fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
    }
}

/// Where events go: stdout, or a file appended to and, past `max_bytes`, renamed to
/// `<file>.1` (replacing the previous one) and started again, so that a box's storage
/// holds at most about twice `max_bytes` of events.
struct Sink {
    out: BufWriter<Box<dyn Write + Send>>,
    file: Option<(PathBuf, u64)>,
    written: u64,
    /// The events file (another handle on it), for `fdatasync`; `None` for stdout.
    sync: Option<std::fs::File>,
    /// Lines flushed since the last sync.
    unsynced: bool,
    last_sync: Instant,
}

impl Sink {
    fn open(path: Option<&PathBuf>, max_bytes: Option<u64>) -> anyhow::Result<Sink> {
        let Some(path) = path else {
            return Ok(Sink {
                out: BufWriter::new(Box::new(std::io::stdout())),
                file: None,
                written: 0,
                sync: None,
                unsynced: false,
                last_sync: Instant::now(),
            });
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the events file {}", path.display()))?;
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Sink {
            sync: file.try_clone().ok(),
            out: BufWriter::new(Box::new(file)),
            file: max_bytes.map(|max| (path.clone(), max)),
            written,
            unsynced: false,
            last_sync: Instant::now(),
        })
    }

    fn line(&mut self, line: &str) {
        if writeln!(self.out, "{line}").is_ok() {
            self.written += line.len() as u64 + 1;
        }
    }

    /// Flushes, and rotates the file when it has grown past its limit (only between
    /// whole lines).
    fn flush(&mut self) {
        let _ = self.out.flush();
        self.unsynced = true;
        self.sync_if_due();
        let Some((path, max)) = &self.file else {
            return;
        };
        if self.written < *max {
            return;
        }
        let mut old = path.clone().into_os_string();
        old.push(".1");
        // The old file's last lines go to storage before it is set aside.
        self.sync_data();
        let reopened = std::fs::rename(path, &old)
            .and_then(|()| OpenOptions::new().create(true).append(true).open(path));
        match reopened {
            Ok(file) => {
                self.sync = file.try_clone().ok();
                self.out = BufWriter::new(Box::new(file));
                self.written = 0;
            }
            // Keep appending to what is open rather than lose events.
            Err(e) => tracing::warn!("cannot rotate the events file {}: {e}", path.display()),
        }
    }

    /// Syncs the file when lines were flushed and `SYNC_EVERY` has passed since the last
    /// sync (called after each flush and on every idle tick, so the last lines of a
    /// burst are synced too).
    fn sync_if_due(&mut self) {
        if self.unsynced && self.last_sync.elapsed() >= SYNC_EVERY {
            self.sync_now();
        }
    }

    fn sync_now(&mut self) {
        self.sync_data();
        self.unsynced = false;
        self.last_sync = Instant::now();
    }

    fn sync_data(&self) {
        if let Some(file) = &self.sync {
            if let Err(e) = file.sync_data() {
                tracing::warn!("cannot sync the events file: {e}");
            }
        }
    }
}

/// Starts the writer for `path` (appended; rotated past `max_bytes`) or stdout.
pub fn spawn(
    policy: Arc<Policy>,
    path: Option<PathBuf>,
    max_bytes: Option<u64>,
) -> anyhow::Result<(PacketSink, LineSink, Writer)> {
    let sink = Sink::open(path.as_ref(), max_bytes)?;
    let (tx, rx) = sync_channel::<Record>(QUEUE);
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = stop.clone();
    let handle = std::thread::Builder::new()
        .name("gk-events".into())
        .spawn(move || write_all(rx, EventFormatter::new(policy), sink, &stop_flag))?;
    Ok((
        PacketSink(tx.clone()),
        LineSink(tx),
        Writer { stop, handle },
    ))
}

fn write_all(
    records: Receiver<Record>,
    mut formatter: EventFormatter,
    mut out: Sink,
    stop: &AtomicBool,
) {
    let mut write = |record: Record, out: &mut Sink| match record {
        Record::Packet(event) => out.line(&formatter.to_json(&event)),
        Record::Policy(policy) => formatter = EventFormatter::new(policy),
        Record::Line(line) => out.line(&line),
    };
    loop {
        match records.recv_timeout(Duration::from_millis(100)) {
            Ok(record) => {
                write(record, &mut out);
                // Write what is queued, then flush so that readers see events promptly.
                while let Ok(record) = records.try_recv() {
                    write(record, &mut out);
                }
                out.flush();
            }
            Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Relaxed) => out.sync_if_due(),
            Err(_) => break,
        }
    }
    while let Ok(record) = records.try_recv() {
        write(record, &mut out);
    }
    out.flush();
    out.sync_now();
}
