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
use std::time::Duration;

use anyhow::Context;
use gk_dataplane::{Event, EventFormatter, EventSink};
use gk_policy::Policy;

/// How many records may wait for the writer before new packet events are counted lost.
const QUEUE: usize = 8192;

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

/// Starts the writer for `path` (appended) or stdout.
pub fn spawn(
    policy: Arc<Policy>,
    path: Option<PathBuf>,
) -> anyhow::Result<(PacketSink, LineSink, Writer)> {
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
    sink: Box<dyn Write + Send>,
    stop: &AtomicBool,
) {
    let mut out = BufWriter::new(sink);
    let mut write = |record: Record, out: &mut BufWriter<Box<dyn Write + Send>>| match record {
        Record::Packet(event) => {
            let _ = writeln!(out, "{}", formatter.to_json(&event));
        }
        Record::Policy(policy) => formatter = EventFormatter::new(policy),
        Record::Line(line) => {
            let _ = writeln!(out, "{line}");
        }
    };
    loop {
        match records.recv_timeout(Duration::from_millis(100)) {
            Ok(record) => {
                write(record, &mut out);
                // Write what is queued, then flush so that readers see events promptly.
                while let Ok(record) = records.try_recv() {
                    write(record, &mut out);
                }
                let _ = out.flush();
            }
            Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Relaxed) => {}
            Err(_) => break,
        }
    }
    while let Ok(record) = records.try_recv() {
        write(record, &mut out);
    }
    let _ = out.flush();
}
