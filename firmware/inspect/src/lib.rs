//! Industrial protocol inspection: zero-copy views over untrusted application bytes.
//!
//! One module per protocol. Each one offers, in the style of `gk-packet`:
//! - `frame(head)` (TCP protocols): how long the message at the start of a byte stream is,
//!   from its first few bytes ([`Framing`]);
//! - `Session` (TCP protocols): what one direction of a stream remembers between
//!   messages (DNP3's transport reassembly, say), whose `message` turns each framed
//!   message into a [`Message`];
//! - `parse(bytes, total, dir)`: a checked view of one message; after it no accessor can
//!   panic. `bytes` is the whole message, or its first bytes when the message is longer
//!   than the reassembly buffer (`total` says how long it really is);
//! - a `Copy` summary of what the message asks for (`Op`), for events;
//! - code enums that decode totally (`Unknown(raw)`) with kebab-case names, which the
//!   policy uses for its vocabulary.
//!
//! [`stream`] turns the in-order payload of one TCP direction into messages, with a
//! fixed buffer per direction; [`Message`] and [`Op`] gather the protocols' views.
//!
//! This crate does no I/O and never allocates.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

#[doc(hidden)]
pub mod fuzzing;
mod macros;
mod reader;

pub mod bacnet;
pub mod dnp3;
pub mod enip;
pub mod iec104;
pub mod modbus;
pub mod opcua;
pub mod s7;
pub mod stream;

pub use reader::Reader;

use core::fmt;

/// The industrial protocols the gatekeeper understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// Modbus/TCP (TCP 502).
    Modbus,
    /// DNP3 over TCP (TCP 20000).
    Dnp3,
    /// EtherNet/IP encapsulation with CIP explicit messaging (TCP and UDP 44818).
    Enip,
    /// EtherNet/IP implicit (class 0/1) I/O: CPF packets on UDP 2222.
    EnipIo,
    /// S7comm and S7comm-plus over TPKT/COTP (TCP 102).
    S7,
    /// IEC 60870-5-104 (TCP 2404).
    Iec104,
    /// OPC UA binary (TCP 4840).
    OpcUa,
    /// BACnet/IP (UDP 47808).
    Bacnet,
}

impl Protocol {
    pub const ALL: [Protocol; 8] = [
        Protocol::Modbus,
        Protocol::Dnp3,
        Protocol::Enip,
        Protocol::EnipIo,
        Protocol::S7,
        Protocol::Iec104,
        Protocol::OpcUa,
        Protocol::Bacnet,
    ];

    /// The name used in policies (`proto = "modbus"`) and events.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Modbus => "modbus",
            Protocol::Dnp3 => "dnp3",
            Protocol::Enip => "enip",
            Protocol::EnipIo => "enip-io",
            Protocol::S7 => "s7",
            Protocol::Iec104 => "iec104",
            Protocol::OpcUa => "opcua",
            Protocol::Bacnet => "bacnet",
        }
    }

    pub fn from_name(name: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Responder ports on TCP when a rule does not name its own (empty: not over TCP).
    pub fn tcp_ports(self) -> &'static [u16] {
        match self {
            Protocol::Modbus => &[502],
            Protocol::Dnp3 => &[20000],
            Protocol::Enip => &[44818],
            Protocol::S7 => &[102],
            Protocol::Iec104 => &[2404],
            Protocol::OpcUa => &[4840],
            Protocol::EnipIo | Protocol::Bacnet => &[],
        }
    }

    /// Responder ports on UDP when a rule does not name its own (empty: not over UDP).
    pub fn udp_ports(self) -> &'static [u16] {
        match self {
            Protocol::Enip => &[44818],
            Protocol::EnipIo => &[2222],
            Protocol::Bacnet => &[47808],
            _ => &[],
        }
    }

    /// The longest message the protocol can frame, when it has a small fixed bound.
    /// The stream buffer keeps only this much for framing; DNP3 uses the rest of its
    /// buffer to reassemble application fragments.
    pub fn max_message(self) -> Option<usize> {
        match self {
            Protocol::Modbus => Some(modbus::MAX_ADU),
            Protocol::Dnp3 => Some(dnp3::MAX_LINK_FRAME),
            Protocol::Iec104 => Some(iec104::MAX_APDU),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which way a message travels in its conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// From the initiator (the client, master, controlling station) to the responder.
    Request,
    /// From the responder (the server, outstation, controlled station) back.
    Response,
}

/// Why bytes are not a well-formed message. `what` is a short, fixed phrase for events
/// and logs ("quantity out of range", "bad link CRC").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Malformed {
    pub protocol: Protocol,
    pub what: &'static str,
}

impl Malformed {
    pub const fn new(protocol: Protocol, what: &'static str) -> Malformed {
        Malformed { protocol, what }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed {}: {}", self.protocol, self.what)
    }
}

/// How long the message at the start of a TCP byte stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// At least this many bytes (counted from the message's start) are needed to know.
    NeedMore(usize),
    /// The message is this many bytes long.
    Length(usize),
    /// The bytes cannot start a message: the stream cannot be followed any further.
    Invalid(Malformed),
}

/// Receives the fields of an operation, for events (JSON) and human output.
pub trait Fields {
    fn text(&mut self, key: &'static str, value: &str);
    fn number(&mut self, key: &'static str, value: u64);
    fn flag(&mut self, key: &'static str, value: bool);
}

/// Writes a code as its name when it has one, else as its number.
pub fn code_field(out: &mut dyn Fields, key: &'static str, name: Option<&str>, raw: u64) {
    match name {
        Some(name) => out.text(key, name),
        None => out.number(key, raw),
    }
}

/// One parsed message of any protocol: what the policy judges.
#[derive(Debug, Clone, Copy)]
pub enum Message<'a> {
    Modbus(modbus::Adu<'a>),
    Dnp3(dnp3::Message<'a>),
    Enip(enip::Message<'a>),
    EnipIo(enip::IoMessage<'a>),
    S7(s7::Message<'a>),
    Iec104(iec104::Apdu<'a>),
    OpcUa(opcua::Message<'a>),
    Bacnet(bacnet::Message<'a>),
}

impl<'a> Message<'a> {
    /// Parses one message of a framed protocol or one UDP datagram. DNP3 messages come
    /// only out of [`stream`]: their application fragments are reassembled from link
    /// frames (whose user data is interleaved with CRCs) in the stream's buffer.
    pub(crate) fn parse(
        protocol: Protocol,
        bytes: &'a [u8],
        total: usize,
        dir: Dir,
    ) -> Result<Message<'a>, Malformed> {
        Ok(match protocol {
            Protocol::Modbus => Message::Modbus(modbus::parse(bytes, total, dir)?),
            Protocol::Dnp3 => return Err(Malformed::new(protocol, "DNP3 needs a stream")),
            Protocol::Enip => Message::Enip(enip::parse(bytes, total, dir)?),
            Protocol::EnipIo => Message::EnipIo(enip::parse_io(bytes, dir)?),
            Protocol::S7 => Message::S7(s7::parse(bytes, total, dir)?),
            Protocol::Iec104 => Message::Iec104(iec104::parse(bytes, total, dir)?),
            Protocol::OpcUa => Message::OpcUa(opcua::parse(bytes, total, dir)?),
            Protocol::Bacnet => Message::Bacnet(bacnet::parse(bytes, dir)?),
        })
    }

    pub fn protocol(&self) -> Protocol {
        match self {
            Message::Modbus(_) => Protocol::Modbus,
            Message::Dnp3(_) => Protocol::Dnp3,
            Message::Enip(_) => Protocol::Enip,
            Message::EnipIo(_) => Protocol::EnipIo,
            Message::S7(_) => Protocol::S7,
            Message::Iec104(_) => Protocol::Iec104,
            Message::OpcUa(_) => Protocol::OpcUa,
            Message::Bacnet(_) => Protocol::Bacnet,
        }
    }

    /// Whether the message asks its receiver to do something (a request, a command, a
    /// job) rather than answering or reporting. Policies judge requests; a request that
    /// travels against its conversation's direction is judged with the roles swapped.
    pub fn is_request(&self) -> bool {
        match self {
            Message::Modbus(m) => m.is_request(),
            Message::Dnp3(m) => m.is_request(),
            Message::Enip(m) => m.is_request(),
            Message::EnipIo(m) => m.is_request(),
            Message::S7(m) => m.is_request(),
            Message::Iec104(m) => m.is_request(),
            Message::OpcUa(m) => m.is_request(),
            Message::Bacnet(m) => m.is_request(),
        }
    }

    /// The summary that events carry.
    pub fn op(&self) -> Op {
        match self {
            Message::Modbus(m) => Op::Modbus(m.op()),
            Message::Dnp3(m) => Op::Dnp3(m.op()),
            Message::Enip(m) => Op::Enip(m.op()),
            Message::EnipIo(m) => Op::EnipIo(m.op()),
            Message::S7(m) => Op::S7(m.op()),
            Message::Iec104(m) => Op::Iec104(m.op()),
            Message::OpcUa(m) => Op::OpcUa(m.op()),
            Message::Bacnet(m) => Op::Bacnet(m.op()),
        }
    }
}

/// What one message asked for, as plain `Copy` data (events are queued by value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Modbus(modbus::Op),
    Dnp3(dnp3::Op),
    Enip(enip::Op),
    EnipIo(enip::IoOp),
    S7(s7::Op),
    Iec104(iec104::Op),
    OpcUa(opcua::Op),
    Bacnet(bacnet::Op),
}

impl Op {
    pub fn protocol(&self) -> Protocol {
        match self {
            Op::Modbus(_) => Protocol::Modbus,
            Op::Dnp3(_) => Protocol::Dnp3,
            Op::Enip(_) => Protocol::Enip,
            Op::EnipIo(_) => Protocol::EnipIo,
            Op::S7(_) => Protocol::S7,
            Op::Iec104(_) => Protocol::Iec104,
            Op::OpcUa(_) => Protocol::OpcUa,
            Op::Bacnet(_) => Protocol::Bacnet,
        }
    }

    /// The operation's fields, `protocol` first.
    pub fn describe(&self, out: &mut dyn Fields) {
        out.text("protocol", self.protocol().name());
        match self {
            Op::Modbus(op) => op.describe(out),
            Op::Dnp3(op) => op.describe(out),
            Op::Enip(op) => op.describe(out),
            Op::EnipIo(op) => op.describe(out),
            Op::S7(op) => op.describe(out),
            Op::Iec104(op) => op.describe(out),
            Op::OpcUa(op) => op.describe(out),
            Op::Bacnet(op) => op.describe(out),
        }
    }
}

/// `modbus function=write-single-register unit=1 address=120 count=1`
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Line<'a, 'b> {
            f: &'a mut fmt::Formatter<'b>,
            first: bool,
            result: fmt::Result,
        }
        impl Line<'_, '_> {
            fn sep(&mut self) {
                if !self.first && self.result.is_ok() {
                    self.result = self.f.write_str(" ");
                }
                self.first = false;
            }
        }
        impl Fields for Line<'_, '_> {
            fn text(&mut self, key: &'static str, value: &str) {
                self.sep();
                if self.result.is_ok() {
                    self.result = if key == "protocol" {
                        self.f.write_str(value)
                    } else {
                        write!(self.f, "{key}={value}")
                    };
                }
            }
            fn number(&mut self, key: &'static str, value: u64) {
                self.sep();
                if self.result.is_ok() {
                    self.result = write!(self.f, "{key}={value}");
                }
            }
            fn flag(&mut self, key: &'static str, value: bool) {
                if value {
                    self.sep();
                    if self.result.is_ok() {
                        self.result = self.f.write_str(key);
                    }
                }
            }
        }
        let mut line = Line {
            f,
            first: true,
            result: Ok(()),
        };
        self.describe(&mut line);
        line.result
    }
}
