//! Drives the stream and datagram paths over arbitrary bytes, for fuzz targets and
//! property tests: nothing here may panic, whatever the input.

use core::fmt::Write;

use crate::stream::{datagram, StreamDir, MIN_BUFFER};
use crate::{Dir, Message, Protocol};

/// Counts what `Display` writes, so that formatting runs without allocating.
struct Sink(usize);

impl Write for Sink {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

fn touch(m: Result<Message<'_>, crate::Malformed>, sink: &mut Sink) {
    match m {
        Ok(msg) => {
            let _ = msg.is_request();
            let _ = write!(sink, "{}", msg.op());
        }
        Err(e) => {
            let _ = write!(sink, "{e}");
        }
    }
}

/// Feeds `data` as the payload of both directions of one conversation of `protocol`,
/// cut into segments at places the first bytes choose; or, for a datagram protocol,
/// as datagrams. Returns the number of messages and errors seen.
pub fn exercise(protocol: Protocol, data: &[u8]) -> usize {
    let mut sink = Sink(0);
    let mut seen = 0usize;
    let (cuts, body) = data.split_at(data.len().min(4));
    if protocol.tcp_ports().is_empty() {
        for chunk in body.chunks(usize::from(cuts.first().copied().unwrap_or(0)) * 8 + 1) {
            for dir in [Dir::Request, Dir::Response] {
                datagram(protocol, chunk, dir, &mut |m| {
                    seen += 1;
                    touch(m, &mut sink)
                });
            }
        }
        return seen;
    }
    let mut buf = [0u8; MIN_BUFFER];
    for dir in [Dir::Request, Dir::Response] {
        let mut s = StreamDir::default();
        let mut rest = body;
        let mut i = 0;
        while !rest.is_empty() {
            let n = (usize::from(cuts.get(i % cuts.len().max(1)).copied().unwrap_or(7)) + 1)
                .min(rest.len());
            let (seg, tail) = rest.split_at(n);
            s.feed(protocol, &mut buf, seg, dir, &mut |m| {
                seen += 1;
                touch(m, &mut sink)
            });
            rest = tail;
            i += 1;
        }
    }
    seen
}
