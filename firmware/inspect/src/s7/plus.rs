//! S7comm-plus (protocol id 0x72), recognised and governed as a whole.
//!
//! Header: protocol id, version, data length (big-endian); then the data and, in the
//! last (or only) fragment of a message, a trailer: protocol id, version and two bytes.
//! A keep-alive (version 0xFF) is the header alone. In the data of a first fragment:
//! for version 3, an integrity part (digest length 32 and the digest); then the opcode
//! and, except for notifications, two reserved bytes and the function. The layout
//! follows the S7comm-plus Wireshark plugin (Thomas Wiens); the encrypted or
//! integrity-protected bodies are not decoded.

use super::codes::{PlusOpcode, PlusVersion};
use super::P;
use crate::Malformed;

pub const PROTOCOL_ID: u8 = 0x72;
const HEADER: usize = 4;
const TRAILER: usize = 4;
const DIGEST: usize = 32;

/// A checked S7comm-plus PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Plus {
    pub version: PlusVersion,
    /// The opcode and function, in a first (or only) fragment whose layout is known.
    pub opcode: Option<PlusOpcode>,
    pub function: Option<u16>,
    /// Whether this PDU carries the trailer (it ends a message).
    pub last: bool,
}

/// Parses an S7comm-plus PDU from `visible`, of which `in_tpdu` bytes are in this TPDU
/// (`eot`: the TPDU ends the TSDU). `continuation`: the previous PDU of the stream had no
/// trailer, so this one continues its data and has no opcode.
pub fn parse(
    visible: &[u8],
    in_tpdu: usize,
    eot: bool,
    continuation: bool,
) -> Result<Plus, Malformed> {
    let m = |what| Malformed::new(P, what);
    let [_, version, l0, l1, data @ ..] = visible else {
        return Err(m("S7comm-plus header truncated"));
    };
    let version = PlusVersion::from(*version);
    let mut plus = Plus {
        version,
        opcode: None,
        function: None,
        last: true,
    };
    if version == PlusVersion::KeepAlive {
        return Ok(plus);
    }
    let dlen = usize::from(u16::from_be_bytes([*l0, *l1]));
    if eot {
        plus.last = match in_tpdu.checked_sub(HEADER + dlen) {
            Some(0) => false,
            Some(TRAILER) => true,
            _ => return Err(m("S7comm-plus length disagrees with the TPKT length")),
        };
        if plus.last {
            let at = HEADER + dlen;
            if let Some(trailer) = visible.get(at..at + TRAILER) {
                if trailer[0] != PROTOCOL_ID {
                    return Err(m("S7comm-plus trailer has no protocol id"));
                }
            }
        }
    } else if in_tpdu > HEADER + dlen + TRAILER {
        return Err(m("S7comm-plus length disagrees with the TPKT length"));
    }
    if continuation {
        return Ok(plus);
    }
    let data = &data[..dlen.min(data.len())];
    let body = match (version, data) {
        (PlusVersion::V3, [n, rest @ ..]) if usize::from(*n) == DIGEST && rest.len() >= DIGEST => {
            &rest[DIGEST..]
        }
        (PlusVersion::V3, _) => return Ok(plus),
        _ => data,
    };
    if let [op, rest @ ..] = body {
        let opcode = PlusOpcode::from(*op);
        plus.opcode = Some(opcode);
        if opcode != PlusOpcode::Notification {
            if let [_, _, f0, f1, ..] = rest {
                plus.function = Some(u16::from_be_bytes([*f0, *f1]));
            }
        }
    }
    Ok(plus)
}
