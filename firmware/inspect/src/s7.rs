//! S7comm and S7comm-plus over TPKT (RFC 1006) and COTP (ISO 8073).
//!
//! PLACEHOLDER until the parser lands: frames nothing and parses nothing. The contract
//! this module fulfils is described in `lib.rs` and shown whole by `modbus.rs`.

use crate::{Dir, Fields, Framing, Malformed, Protocol};

const P: Protocol = Protocol::S7;

/// How long the message at the start of `head` is.
pub fn frame(_head: &[u8]) -> Framing {
    Framing::Invalid(Malformed::new(P, "not implemented yet"))
}

/// What a stream remembers between messages of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Session;

impl Session {
    /// One framed message of the stream (see `stream.rs`); `None` when the message
    /// completes nothing to judge yet.
    pub fn message<'s>(
        &mut self,
        bytes: &'s [u8],
        total: usize,
        dir: Dir,
        _scratch: &'s mut [u8],
    ) -> Option<Result<crate::Message<'s>, Malformed>> {
        Some(parse(bytes, total, dir).map(crate::Message::S7))
    }

    /// No message is half assembled.
    pub fn is_idle(&self) -> bool {
        true
    }
}

/// A checked S7 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    bytes: &'a [u8],
    dir: Dir,
}

/// Parses one message (`bytes` may be the first part of a longer message of `total`).
pub fn parse(bytes: &[u8], _total: usize, dir: Dir) -> Result<Message<'_>, Malformed> {
    let _ = Message { bytes, dir };
    Err(Malformed::new(P, "not implemented yet"))
}

impl Message<'_> {
    pub fn is_request(&self) -> bool {
        self.dir == Dir::Request && !self.bytes.is_empty()
    }

    pub fn op(&self) -> Op {
        Op {}
    }
}

/// What a S7 message asked for, for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {}

impl Op {
    pub fn describe(&self, _out: &mut dyn Fields) {}
}
