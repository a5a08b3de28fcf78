//! TPKT (RFC 1006 section 6) and COTP class 0 (ISO 8073 / X.224, section 13).
//!
//! A TPKT is a 4-byte header (version 3, reserved 0, big-endian length of the whole
//! packet) around one COTP TPDU: a length indicator (the header's length, not counting
//! itself), the TPDU type, its fixed part and its parameters (code, length, value).
//! RFC 1006 uses class 0 only, whose TPDUs are CR, CC, DR, DT and ER; DC, which class 0
//! does not define, is tolerated because stacks send it. Class 0 carries no user data in
//! CR, CC and DR, and its DT header is three bytes: length 2, type 0xF0, and the
//! end-of-TSDU bit with the TPDU number.

use super::codes::Tpdu;
use super::P;
use crate::{Malformed, Reader};

pub const TPKT_HEADER: usize = 4;
/// The shortest TPKT: its header and a DT header.
pub const MIN_TPKT: usize = 7;
/// TPKT header and COTP DT header in front of an S7 PDU.
pub const DATA_OVERHEAD: usize = TPKT_HEADER + 3;

/// COTP parameter codes (ISO 8073 section 13.3.4).
pub const PARAM_TPDU_SIZE: u8 = 0xc0;
pub const PARAM_CALLING_TSAP: u8 = 0xc1;
pub const PARAM_CALLED_TSAP: u8 = 0xc2;

/// A TSAP of a connection request: two bytes (what S7 stacks use: connection type, then
/// rack and slot) or another length (S7comm-plus names such as `SIMATIC-ROOT-HMI`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Tsap {
    /// Not given (or no connection request seen on this stream).
    #[default]
    None,
    /// A two-byte TSAP, big-endian (0x0102: PG connection, rack 0, slot 2).
    Number(u16),
    /// A TSAP of another length.
    Name,
}

impl Tsap {
    fn of(value: &[u8]) -> Tsap {
        match value {
            [a, b] => Tsap::Number(u16::from_be_bytes([*a, *b])),
            _ => Tsap::Name,
        }
    }

    pub fn number(self) -> Option<u16> {
        match self {
            Tsap::Number(n) => Some(n),
            _ => None,
        }
    }
}

/// The fixed part and the parameters that matter of a TPDU other than DT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Control {
    pub dst_ref: u16,
    pub src_ref: Option<u16>,
    /// The proposed or accepted maximum TPDU size in bytes (CR, CC).
    pub tpdu_size: Option<u16>,
    pub calling: Tsap,
    pub called: Tsap,
    /// The disconnect reason (DR) or reject cause (ER).
    pub reason: Option<u8>,
}

/// One TPDU, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tpkt<'a> {
    Control(Tpdu, Control),
    /// A data TPDU: `eot` ends the TSDU; `visible` is the user data in the buffer and
    /// `length` the user data in the whole TPKT (larger when the buffer holds a prefix).
    Data {
        eot: bool,
        visible: &'a [u8],
        length: usize,
    },
}

/// Checks the TPKT header and the COTP TPDU of one framed TPKT (`bytes` may be the
/// first `bytes.len()` of `total`).
pub fn parse(bytes: &[u8], total: usize) -> Result<Tpkt<'_>, Malformed> {
    let m = |what| Malformed::new(P, what);
    if bytes.len() < MIN_TPKT || total < bytes.len() {
        return Err(m("TPKT shorter than 7 bytes"));
    }
    if bytes[0] != 3 {
        return Err(m("TPKT version is not 3"));
    }
    if bytes[1] != 0 {
        return Err(m("TPKT reserved byte is not 0"));
    }
    if usize::from(u16::from_be_bytes([bytes[2], bytes[3]])) != total {
        return Err(m("TPKT length disagrees with the message length"));
    }
    let li = usize::from(bytes[4]);
    if li == 0 || li == 255 {
        return Err(m("COTP length indicator is 0 or 255"));
    }
    let end = TPKT_HEADER + 1 + li;
    if end > total {
        return Err(m("COTP header longer than the TPKT"));
    }
    let Some(header) = bytes.get(TPKT_HEADER + 1..end) else {
        return Err(m("COTP header longer than the inspection buffer"));
    };
    let code = header[0];
    let tpdu = Tpdu::from(code & 0xf0);
    let mut r = Reader::new(P, &header[1..]);
    let short = "COTP header too short for its TPDU type";
    let mut c = Control {
        dst_ref: 0,
        src_ref: None,
        tpdu_size: None,
        calling: Tsap::None,
        called: Tsap::None,
        reason: None,
    };
    match tpdu {
        Tpdu::Data => {
            if li != 2 || code != 0xf0 {
                return Err(m("COTP data header is not class 0"));
            }
            let eot = r.u8(short)? & 0x80 != 0;
            return Ok(Tpkt::Data {
                eot,
                visible: &bytes[end..],
                length: total - end,
            });
        }
        Tpdu::ConnectionRequest | Tpdu::ConnectionConfirm => {
            c.dst_ref = r.be_u16(short)?;
            c.src_ref = Some(r.be_u16(short)?);
            if r.u8(short)? >> 4 != 0 {
                return Err(m("COTP class is not 0"));
            }
        }
        Tpdu::DisconnectRequest => {
            c.dst_ref = r.be_u16(short)?;
            c.src_ref = Some(r.be_u16(short)?);
            c.reason = Some(r.u8(short)?);
        }
        Tpdu::DisconnectConfirm => {
            c.dst_ref = r.be_u16(short)?;
            c.src_ref = Some(r.be_u16(short)?);
        }
        Tpdu::Error => {
            c.dst_ref = r.be_u16(short)?;
            c.reason = Some(r.u8(short)?);
        }
        Tpdu::Unknown(_) => return Err(m("COTP TPDU type not used in class 0")),
    }
    while !r.is_empty() {
        let bad = "COTP parameter runs past the header";
        let (code, len) = (r.u8(bad)?, r.u8(bad)?);
        let value = r.take(usize::from(len), bad)?;
        match code {
            PARAM_TPDU_SIZE => match value {
                [n @ 7..=13] => c.tpdu_size = Some(1 << n),
                _ => return Err(m("COTP TPDU size is not 128-8192 bytes")),
            },
            PARAM_CALLING_TSAP => c.calling = Tsap::of(value),
            PARAM_CALLED_TSAP => c.called = Tsap::of(value),
            // Other parameters (version, checksum, options, additional information)
            // are data.
            _ => {}
        }
    }
    if end != total {
        return Err(m("user data after a COTP control TPDU"));
    }
    Ok(Tpkt::Control(tpdu, c))
}
