//! Building TPKTs from values: connection TPDUs, S7comm jobs, userdata and raw PDUs,
//! and S7comm-plus PDUs (tests, fuzz seeds, the namespace tests' hand-built frames).

use super::codes::{Area, BlockType, Group, PlusOpcode, PlusVersion, Rosctr, TransportSize};
use super::cotp::{PARAM_CALLED_TSAP, PARAM_CALLING_TSAP, PARAM_TPDU_SIZE, TPKT_HEADER};
use super::pdu::{PROTOCOL_ID, USERDATA_HEAD, VAR_SPEC};

/// A bounded writer: every put fails (None) rather than run past the buffer.
struct Out<'o> {
    buf: &'o mut [u8],
    n: usize,
}

impl<'o> Out<'o> {
    fn new(buf: &'o mut [u8]) -> Self {
        Out { buf, n: 0 }
    }

    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        self.buf
            .get_mut(self.n..self.n + bytes.len())?
            .copy_from_slice(bytes);
        self.n += bytes.len();
        Some(())
    }

    fn u8(&mut self, v: u8) -> Option<()> {
        self.put(&[v])
    }

    fn u16(&mut self, v: u16) -> Option<()> {
        self.put(&v.to_be_bytes())
    }

    /// Writes a big-endian u16 at `at` (a length known only later).
    fn patch_u16(&mut self, at: usize, v: usize) -> Option<()> {
        let v = u16::try_from(v).ok()?;
        self.buf
            .get_mut(at..at + 2)?
            .copy_from_slice(&v.to_be_bytes());
        Some(())
    }
}

/// Wraps `cotp` (a COTP TPDU: length indicator, type, …) in a TPKT.
fn tpkt(out: &mut [u8], cotp: impl FnOnce(&mut Out<'_>) -> Option<()>) -> Option<usize> {
    let mut o = Out::new(out);
    o.put(&[3, 0, 0, 0])?;
    cotp(&mut o)?;
    let n = o.n;
    o.patch_u16(2, n)?;
    Some(n)
}

/// A connection request (CR) or confirm (CC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRepr<'v> {
    /// `true`: connection confirm; `false`: connection request.
    pub confirm: bool,
    pub dst_ref: u16,
    pub src_ref: u16,
    /// TPDU size code (7-13: 128-8192 bytes).
    pub tpdu_size: Option<u8>,
    pub calling: &'v [u8],
    pub called: &'v [u8],
}

/// A two-byte TSAP: connection type (1 PG, 2 OP, 3 S7 basic), then rack × 32 + slot.
pub fn tsap(connection: u8, rack: u8, slot: u8) -> [u8; 2] {
    [connection, (rack << 5) | (slot & 0x1f)]
}

impl ConnectRepr<'_> {
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        tpkt(out, |o| {
            let size_param = if self.tpdu_size.is_some() { 3 } else { 0 };
            let li = 6 + size_param + 2 + self.calling.len() + 2 + self.called.len();
            o.u8(u8::try_from(li).ok()?)?;
            o.u8(if self.confirm { 0xd0 } else { 0xe0 })?;
            o.u16(self.dst_ref)?;
            o.u16(self.src_ref)?;
            o.u8(0)?;
            if let Some(size) = self.tpdu_size {
                o.put(&[PARAM_TPDU_SIZE, 1, size])?;
            }
            o.put(&[PARAM_CALLING_TSAP, u8::try_from(self.calling.len()).ok()?])?;
            o.put(self.calling)?;
            o.put(&[PARAM_CALLED_TSAP, u8::try_from(self.called.len()).ok()?])?;
            o.put(self.called)
        })
    }
}

/// A disconnect request (DR) with `reason`.
pub fn emit_disconnect(out: &mut [u8], dst_ref: u16, src_ref: u16, reason: u8) -> Option<usize> {
    tpkt(out, |o| {
        o.put(&[6, 0x80])?;
        o.u16(dst_ref)?;
        o.u16(src_ref)?;
        o.u8(reason)
    })
}

/// A data TPDU (DT) around `payload`; `eot` ends the TSDU.
pub fn emit_data(out: &mut [u8], eot: bool, payload: &[u8]) -> Option<usize> {
    tpkt(out, |o| {
        o.put(&[2, 0xf0, if eot { 0x80 } else { 0 }])?;
        o.put(payload)
    })
}

/// An S7comm PDU from its parts (no TPKT or COTP around it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PduRepr<'v> {
    pub rosctr: Rosctr,
    pub pdu_ref: u16,
    /// Error class and code (written for ack and ack-data only).
    pub error: (u8, u8),
    pub params: &'v [u8],
    pub data: &'v [u8],
}

impl PduRepr<'_> {
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let mut o = Out::new(out);
        o.put(&[PROTOCOL_ID, u8::from(self.rosctr), 0, 0])?;
        o.u16(self.pdu_ref)?;
        o.u16(u16::try_from(self.params.len()).ok()?)?;
        o.u16(u16::try_from(self.data.len()).ok()?)?;
        if matches!(self.rosctr, Rosctr::Ack | Rosctr::AckData) {
            o.put(&[self.error.0, self.error.1])?;
        }
        o.put(self.params)?;
        o.put(self.data)?;
        Some(o.n)
    }

    /// The PDU in a single data TPDU.
    pub fn emit_tpkt(&self, out: &mut [u8]) -> Option<usize> {
        let mut pdu = [0u8; 2048];
        let n = self.emit(&mut pdu)?;
        emit_data(out, true, &pdu[..n])
    }
}

/// An S7ANY address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ItemRepr {
    pub area: Area,
    pub db: u16,
    pub transport: TransportSize,
    pub count: u16,
    /// Byte address (for timers and counters: the element number).
    pub start: u32,
    pub bit: u8,
}

impl ItemRepr {
    /// `count` bytes of DB `db` from byte `start`.
    pub fn db_bytes(db: u16, start: u32, count: u16) -> ItemRepr {
        ItemRepr {
            area: Area::Db,
            db,
            transport: TransportSize::Byte,
            count,
            start,
            bit: 0,
        }
    }

    fn emit(&self, o: &mut Out<'_>) -> Option<()> {
        let address = match self.area {
            Area::Counters | Area::Timers | Area::IecCounters | Area::IecTimers => self.start,
            _ => (self.start << 3) | u32::from(self.bit & 7),
        };
        if address > 0xff_ffff {
            return None;
        }
        o.put(&[VAR_SPEC, 10, 0x10, u8::from(self.transport)])?;
        o.u16(self.count)?;
        o.u16(self.db)?;
        o.u8(u8::from(self.area))?;
        o.put(&address.to_be_bytes()[1..])
    }

    /// The transport size and length field of this item's data in a write-var.
    fn data_header(&self, bytes: usize) -> Option<(u8, u16)> {
        use TransportSize as T;
        let (ts, len) = match self.transport {
            T::Bit => (3, bytes),
            T::Byte | T::Word | T::Dword => (4, bytes * 8),
            T::Int | T::Dint => (5, bytes * 8),
            T::Real => (7, bytes),
            _ => (9, bytes),
        };
        Some((ts, u16::try_from(len).ok()?))
    }
}

/// A request from the client: the parameters and data of a job or a userdata request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestRepr<'v> {
    Setup {
        pdu_size: u16,
    },
    ReadVar {
        items: &'v [ItemRepr],
    },
    /// Items and the bytes each one writes.
    WriteVar {
        items: &'v [(ItemRepr, &'v [u8])],
    },
    RequestDownload {
        block: BlockType,
        number: u32,
    },
    StartUpload {
        block: BlockType,
        number: u32,
    },
    Upload {
        id: u32,
    },
    EndUpload {
        id: u32,
    },
    /// A PI service with its argument block (`_INSE` with `01 00 30 41 …`).
    PlcControl {
        args: &'v [u8],
        service: &'v [u8],
    },
    PlcStop,
    /// A userdata request; `payload` follows the data header (return code 0xFF,
    /// transport size 0x09, length).
    Userdata {
        group: Group,
        subfunction: u8,
        sequence: u8,
        payload: &'v [u8],
    },
}

/// A request and its PDU reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRepr<'v> {
    pub pdu_ref: u16,
    pub request: RequestRepr<'v>,
}

impl JobRepr<'_> {
    /// The S7comm PDU.
    pub fn emit_pdu(&self, out: &mut [u8]) -> Option<usize> {
        let mut params = [0u8; 1024];
        let mut data = [0u8; 2048];
        let mut p = Out::new(&mut params);
        let mut d = Out::new(&mut data);
        let mut rosctr = Rosctr::Job;
        let file = |o: &mut Out<'_>, kind: BlockType, number: u32, fs: u8| -> Option<()> {
            if number > 99_999 {
                return None;
            }
            o.put(&[9, b'_', b'0', u8::from(kind)])?;
            let mut digits = [b'0'; 5];
            let mut n = number;
            for d in digits.iter_mut().rev() {
                *d = b'0' + (n % 10) as u8;
                n /= 10;
            }
            o.put(&digits)?;
            o.u8(fs)
        };
        match &self.request {
            RequestRepr::Setup { pdu_size } => {
                p.put(&[0xf0, 0, 0, 1, 0, 1])?;
                p.u16(*pdu_size)?;
            }
            RequestRepr::ReadVar { items } => {
                p.put(&[0x04, u8::try_from(items.len()).ok()?])?;
                for item in items.iter() {
                    item.emit(&mut p)?;
                }
            }
            RequestRepr::WriteVar { items } => {
                p.put(&[0x05, u8::try_from(items.len()).ok()?])?;
                for (i, (item, bytes)) in items.iter().enumerate() {
                    item.emit(&mut p)?;
                    let (ts, len) = item.data_header(bytes.len())?;
                    d.put(&[0, ts])?;
                    d.u16(len)?;
                    d.put(bytes)?;
                    if bytes.len() % 2 == 1 && i + 1 < items.len() {
                        d.u8(0)?;
                    }
                }
            }
            RequestRepr::RequestDownload { block, number } => {
                p.put(&[0x1a, 0, 1, 0, 0, 0, 0, 0])?;
                file(&mut p, *block, *number, b'P')?;
                p.put(b"\x0d1000100000064")?;
            }
            RequestRepr::StartUpload { block, number } => {
                p.put(&[0x1d, 0, 0, 0, 0, 0, 0, 0])?;
                file(&mut p, *block, *number, b'A')?;
            }
            RequestRepr::Upload { id } => {
                p.put(&[0x1e, 0, 0, 0])?;
                p.put(&id.to_be_bytes())?;
            }
            RequestRepr::EndUpload { id } => {
                p.put(&[0x1f, 0, 0, 0])?;
                p.put(&id.to_be_bytes())?;
            }
            RequestRepr::PlcControl { args, service } => {
                p.put(&[0x28, 0, 0, 0, 0, 0, 0, 0xfd])?;
                p.u16(u16::try_from(args.len()).ok()?)?;
                p.put(args)?;
                p.u8(u8::try_from(service.len()).ok()?)?;
                p.put(service)?;
            }
            RequestRepr::PlcStop => {
                p.put(&[0x29, 0, 0, 0, 0, 0, 9])?;
                p.put(b"P_PROGRAM")?;
            }
            RequestRepr::Userdata {
                group,
                subfunction,
                sequence,
                payload,
            } => {
                rosctr = Rosctr::Userdata;
                p.put(&USERDATA_HEAD)?;
                p.put(&[
                    4,
                    0x11,
                    0x40 | (u8::from(*group) & 0x3f),
                    *subfunction,
                    *sequence,
                ])?;
                d.put(&[0xff, 0x09])?;
                d.u16(u16::try_from(payload.len()).ok()?)?;
                d.put(payload)?;
            }
        }
        let (pn, dn) = (p.n, d.n);
        PduRepr {
            rosctr,
            pdu_ref: self.pdu_ref,
            error: (0, 0),
            params: &params[..pn],
            data: &data[..dn],
        }
        .emit(out)
    }

    /// The PDU in one TPKT with a single data TPDU.
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let mut pdu = [0u8; 4096];
        let n = self.emit_pdu(&mut pdu)?;
        emit_data(out, true, &pdu[..n])
    }
}

/// An S7comm-plus PDU: header, (for V3 a zero digest,) opcode, function, sequence
/// number and `body`, and the trailer when `last`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlusRepr<'v> {
    pub version: PlusVersion,
    pub opcode: PlusOpcode,
    pub function: u16,
    pub sequence: u16,
    pub body: &'v [u8],
    pub last: bool,
}

impl PlusRepr<'_> {
    /// The PDU in one TPKT with a single data TPDU.
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let mut pdu = [0u8; 2048];
        let mut o = Out::new(&mut pdu);
        let version = u8::from(self.version);
        o.put(&[0x72, version, 0, 0])?;
        if self.version == PlusVersion::V3 {
            o.u8(32)?;
            o.put(&[0; 32])?;
        }
        o.put(&[u8::from(self.opcode), 0, 0])?;
        o.u16(self.function)?;
        o.put(&[0, 0])?;
        o.u16(self.sequence)?;
        o.put(self.body)?;
        let n = o.n;
        o.patch_u16(2, n - 4)?;
        if self.last {
            o.put(&[0x72, version, 0, 0])?;
        }
        let n = o.n;
        emit_data(out, true, &pdu[..n])
    }
}

/// The number of bytes a TPKT's header says it has.
pub fn tpkt_length(bytes: &[u8]) -> Option<usize> {
    let b = bytes.get(..TPKT_HEADER)?;
    Some(usize::from(u16::from_be_bytes([b[2], b[3]])))
}
