//! From TCP payload to messages: one direction of an inspected conversation.
//!
//! The data plane hands [`StreamDir::feed`] the payload of each in-order segment; the
//! stream finds message boundaries with the protocol's framing and calls back once per
//! complete message. A message that arrives whole inside one segment is parsed where it
//! lies (no copy); one that spans segments is gathered in the direction's buffer, which
//! the caller owns and sizes once. A message longer than the buffer is judged on its
//! first `buf.len()` bytes and the rest is passed over unparsed: every protocol here puts
//! what a policy judges (function, service, addresses) at the start of its messages.
//!
//! When framing is lost (bytes that cannot start a message), the stream reports it once
//! and parses nothing more in that direction; the caller decides what that means.

use crate::{dnp3, enip, iec104, modbus, opcua, s7, Dir, Framing, Malformed, Message, Protocol};

/// The shortest buffer a stream accepts: room for every framed protocol's largest
/// message and for the headers of the others.
pub const MIN_BUFFER: usize = 1024;

/// The reassembly state of one direction of one TCP conversation. `Copy` and small: the
/// bytes live in the buffer the caller passes to [`StreamDir::feed`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamDir {
    /// Bytes of the current message gathered in the buffer.
    held: u32,
    /// Bytes of an over-long message still to pass over.
    skip: u32,
    /// Framing was lost; nothing more is parsed.
    broken: bool,
    /// What the protocol remembers between messages of this direction.
    session: Session,
}

/// Per-direction protocol state: each TCP protocol's `Session` (DNP3's transport
/// reassembly, the OPC UA channel's security policy, …). Chosen at the first message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Session {
    #[default]
    New,
    Modbus(modbus::Session),
    Dnp3(dnp3::Session),
    Enip(enip::Session),
    S7(s7::Session),
    Iec104(iec104::Session),
    OpcUa(opcua::Session),
}

impl Session {
    fn is_idle(&self) -> bool {
        match self {
            Session::New => true,
            Session::Modbus(s) => s.is_idle(),
            Session::Dnp3(s) => s.is_idle(),
            Session::Enip(s) => s.is_idle(),
            Session::S7(s) => s.is_idle(),
            Session::Iec104(s) => s.is_idle(),
            Session::OpcUa(s) => s.is_idle(),
        }
    }
}

impl StreamDir {
    /// Feeds the next in-order payload bytes of this direction. `on` is called for each
    /// message completed by these bytes, in order, with the parsed message or why it is
    /// malformed. `buf` must be the same buffer on every call for this direction, at
    /// least [`MIN_BUFFER`] long.
    pub fn feed<F>(
        &mut self,
        protocol: Protocol,
        buf: &mut [u8],
        mut data: &[u8],
        dir: Dir,
        on: &mut F,
    ) where
        F: FnMut(Result<Message<'_>, Malformed>),
    {
        debug_assert!(buf.len() >= MIN_BUFFER);
        let frame_cap = protocol
            .max_message()
            .map_or(buf.len(), |m| m.min(buf.len()));
        let (frames, aux) = buf.split_at_mut(frame_cap);
        while !data.is_empty() && !self.broken {
            if self.skip > 0 {
                let n = data.len().min(self.skip as usize);
                self.skip -= n as u32;
                data = &data[n..];
                continue;
            }
            if self.held == 0 {
                // The common case: a whole message inside this segment, parsed in place.
                match framing(protocol, data) {
                    Framing::Length(total) if total <= data.len() || data.len() >= frame_cap => {
                        let take = total.min(frame_cap);
                        self.skip = (total - take) as u32;
                        self.deliver(protocol, &data[..take], total, dir, aux, on);
                        data = &data[take..];
                        continue;
                    }
                    Framing::Invalid(e) => return self.lose_framing(e, on),
                    _ => {}
                }
            }
            let held = self.held as usize;
            let want = match framing(protocol, &frames[..held]) {
                Framing::NeedMore(n) => n.min(frame_cap),
                Framing::Length(total) => total.min(frame_cap),
                Framing::Invalid(e) => return self.lose_framing(e, on),
            };
            let n = want.saturating_sub(held).min(data.len());
            frames[held..held + n].copy_from_slice(&data[..n]);
            data = &data[n..];
            let held = held + n;
            self.held = held as u32;
            match framing(protocol, &frames[..held]) {
                Framing::Length(total) if held >= total.min(frame_cap) => {
                    self.held = 0;
                    self.skip = (total - held) as u32;
                    self.deliver(protocol, &frames[..held], total, dir, aux, on);
                }
                Framing::Invalid(e) => return self.lose_framing(e, on),
                _ => {}
            }
        }
    }

    /// Whether the direction sits between two messages: nothing gathered, nothing to
    /// pass over, no DNP3 fragment half assembled.
    pub fn at_boundary(&self) -> bool {
        self.held == 0 && self.skip == 0 && self.session.is_idle()
    }

    /// Whether framing was lost in this direction.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    fn lose_framing<F>(&mut self, e: Malformed, on: &mut F)
    where
        F: FnMut(Result<Message<'_>, Malformed>),
    {
        self.broken = true;
        self.held = 0;
        on(Err(e));
    }

    fn deliver<F>(
        &mut self,
        protocol: Protocol,
        bytes: &[u8],
        total: usize,
        dir: Dir,
        aux: &mut [u8],
        on: &mut F,
    ) where
        F: FnMut(Result<Message<'_>, Malformed>),
    {
        if self.session == Session::New {
            self.session = match protocol {
                Protocol::Modbus => Session::Modbus(Default::default()),
                Protocol::Dnp3 => Session::Dnp3(Default::default()),
                Protocol::Enip => Session::Enip(Default::default()),
                Protocol::S7 => Session::S7(Default::default()),
                Protocol::Iec104 => Session::Iec104(Default::default()),
                Protocol::OpcUa => Session::OpcUa(Default::default()),
                Protocol::EnipIo | Protocol::Bacnet => Session::New,
            };
        }
        let result = match &mut self.session {
            Session::Modbus(s) => s.message(bytes, total, dir, aux),
            Session::Dnp3(s) => s.message(bytes, total, dir, aux),
            Session::Enip(s) => s.message(bytes, total, dir, aux),
            Session::S7(s) => s.message(bytes, total, dir, aux),
            Session::Iec104(s) => s.message(bytes, total, dir, aux),
            Session::OpcUa(s) => s.message(bytes, total, dir, aux),
            Session::New => Some(Message::parse(protocol, bytes, total, dir)),
        };
        if let Some(result) = result {
            on(result);
        }
    }
}

/// Judges one UDP datagram of a UDP protocol (BACnet/IP, EtherNet/IP on UDP, CIP I/O).
pub fn datagram<F>(protocol: Protocol, payload: &[u8], dir: Dir, on: &mut F)
where
    F: FnMut(Result<Message<'_>, Malformed>),
{
    on(Message::parse(protocol, payload, payload.len(), dir));
}

fn framing(protocol: Protocol, head: &[u8]) -> Framing {
    match protocol {
        Protocol::Modbus => crate::modbus::frame(head),
        Protocol::Dnp3 => crate::dnp3::frame(head),
        Protocol::Enip => crate::enip::frame(head),
        Protocol::S7 => crate::s7::frame(head),
        Protocol::Iec104 => crate::iec104::frame(head),
        Protocol::OpcUa => crate::opcua::frame(head),
        // Datagram protocols have no stream framing: each datagram is one message.
        Protocol::EnipIo | Protocol::Bacnet => Framing::Length(head.len().max(1)),
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::modbus;
    use std::vec::Vec;

    fn read_request(tid: u16, start: u16) -> Vec<u8> {
        let mut out = [0u8; 32];
        let n = modbus::RequestRepr {
            transaction_id: tid,
            unit: 1,
            body: modbus::RequestBody::Read {
                function: modbus::Function::ReadHoldingRegisters,
                start,
                count: 2,
            },
        }
        .emit(&mut out)
        .unwrap();
        out[..n].to_vec()
    }

    /// Feeds `chunks` and returns (transaction id or error) per message.
    fn run(chunks: &[&[u8]]) -> Vec<Result<u16, &'static str>> {
        let mut buf = [0u8; MIN_BUFFER];
        let mut s = StreamDir::default();
        let mut seen = Vec::new();
        for c in chunks {
            s.feed(Protocol::Modbus, &mut buf, c, Dir::Request, &mut |m| {
                seen.push(match m {
                    Ok(Message::Modbus(a)) => Ok(a.transaction_id()),
                    Ok(_) => Err("other protocol"),
                    Err(e) => Err(e.what),
                })
            });
        }
        seen
    }

    #[test]
    fn one_message_per_segment() {
        let (a, b) = (read_request(1, 0), read_request(2, 10));
        assert_eq!(run(&[&a, &b]), [Ok(1), Ok(2)]);
    }

    #[test]
    fn several_messages_in_one_segment() {
        let mut all = read_request(1, 0);
        all.extend(read_request(2, 10));
        all.extend(read_request(3, 20));
        assert_eq!(run(&[&all]), [Ok(1), Ok(2), Ok(3)]);
    }

    #[test]
    fn one_message_across_segments_at_every_split() {
        let mut all = read_request(1, 0);
        all.extend(read_request(2, 10));
        for i in 0..=all.len() {
            for j in i..=all.len() {
                let seen = run(&[&all[..i], &all[i..j], &all[j..]]);
                assert_eq!(seen, [Ok(1), Ok(2)], "split at {i} and {j}");
            }
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = all.chunks(1).collect();
        assert_eq!(run(&bytes), [Ok(1), Ok(2)]);
    }

    #[test]
    fn lost_framing_is_reported_once_and_ends_parsing() {
        let good = read_request(1, 0);
        let mut bad = read_request(2, 0);
        bad[2] = 0x55; // protocol id
        let seen = run(&[&good, &bad, &good]);
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], Ok(1));
        assert!(seen[1].is_err());
    }

    #[test]
    fn a_malformed_message_keeps_the_framing() {
        let mut bad = read_request(1, 0);
        bad[11] = 0; // quantity 0
        let good = read_request(2, 0);
        assert_eq!(
            run(&[&bad, &good]),
            [Err("register quantity out of range (1-125)"), Ok(2)]
        );
    }

    #[test]
    fn boundary_is_known() {
        let mut buf = [0u8; MIN_BUFFER];
        let mut s = StreamDir::default();
        let a = read_request(1, 0);
        s.feed(
            Protocol::Modbus,
            &mut buf,
            &a[..5],
            Dir::Request,
            &mut |_| {},
        );
        assert!(!s.at_boundary());
        s.feed(
            Protocol::Modbus,
            &mut buf,
            &a[5..],
            Dir::Request,
            &mut |_| {},
        );
        assert!(s.at_boundary());
    }
}
