//! BACnet/IP: BVLC, NPDU and APDU (confirmed and unconfirmed services).
//!
//! PLACEHOLDER until the parser lands. The contract this module fulfils is described
//! in `lib.rs` and shown whole by `modbus.rs`.

use crate::{Dir, Fields, Malformed, Protocol};

const P: Protocol = Protocol::Bacnet;

/// A checked BACnet/IP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    bytes: &'a [u8],
    dir: Dir,
}

/// Parses one UDP datagram.
pub fn parse(bytes: &[u8], dir: Dir) -> Result<Message<'_>, Malformed> {
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

/// What a BACnet message asked for, for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {}

impl Op {
    pub fn describe(&self, _out: &mut dyn Fields) {}
}
