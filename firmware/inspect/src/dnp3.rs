//! DNP3 over TCP: link layer (with CRCs), transport reassembly, application layer.
//!
//! PLACEHOLDER until the parser lands. The contract this module fulfils is described
//! in `lib.rs` and `stream.rs` and shown whole by `modbus.rs`.

use crate::{Dir, Fields, Framing, Malformed, Protocol};

/// A link frame: 10-byte header and up to 250 bytes of user data in CRC'd blocks.
pub const MAX_LINK_FRAME: usize = 292;

const P: Protocol = Protocol::Dnp3;

/// How long the link frame at the start of `head` is.
pub fn frame(_head: &[u8]) -> Framing {
    Framing::Invalid(Malformed::new(P, "not implemented yet"))
}

/// Transport-layer reassembly state of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Session {
    assembled: u16,
}

impl Session {
    /// Takes one complete link frame; returns a message when the frame completes one
    /// (a link-layer frame, or the last transport segment of an application fragment).
    /// `scratch` holds the fragment being assembled between calls.
    pub fn message<'s>(
        &mut self,
        _frame: &'s [u8],
        _total: usize,
        dir: Dir,
        scratch: &'s mut [u8],
    ) -> Option<Result<crate::Message<'s>, Malformed>> {
        let _ = Message {
            bytes: &scratch[..0],
            dir,
        };
        Some(Err(Malformed::new(P, "not implemented yet")))
    }

    /// No fragment is half assembled.
    pub fn is_idle(&self) -> bool {
        self.assembled == 0
    }
}

/// A checked DNP3 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    bytes: &'a [u8],
    dir: Dir,
}

impl Message<'_> {
    pub fn is_request(&self) -> bool {
        self.dir == Dir::Request && !self.bytes.is_empty()
    }

    pub fn op(&self) -> Op {
        Op {}
    }
}

/// What a DNP3 message asked for, for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {}

impl Op {
    pub fn describe(&self, _out: &mut dyn Fields) {}
}
