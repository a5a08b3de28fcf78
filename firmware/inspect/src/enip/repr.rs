//! Building EtherNet/IP messages from values: for tests, fuzz seeds and the benchmark.
//! Every function writes into `out` and returns the length written, or `None` when it
//! does not fit (or a field cannot hold a length).

use super::{Command, ItemType, HEADER_LEN};

/// A bounded writer over a caller's buffer.
#[derive(Debug)]
struct Writer<'o> {
    out: &'o mut [u8],
    n: usize,
}

impl<'o> Writer<'o> {
    fn new(out: &'o mut [u8]) -> Self {
        Writer { out, n: 0 }
    }

    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        self.out
            .get_mut(self.n..self.n + bytes.len())?
            .copy_from_slice(bytes);
        self.n += bytes.len();
        Some(())
    }

    fn u8(&mut self, v: u8) -> Option<()> {
        self.put(&[v])
    }

    fn u16(&mut self, v: u16) -> Option<()> {
        self.put(&v.to_le_bytes())
    }

    fn u32(&mut self, v: u32) -> Option<()> {
        self.put(&v.to_le_bytes())
    }

    fn pad(&mut self) -> Option<()> {
        if self.n % 2 == 1 {
            self.u8(0)?;
        }
        Some(())
    }

    /// A u16 length placeholder at the current place, filled in by `fill16`.
    fn mark16(&mut self) -> Option<usize> {
        let at = self.n;
        self.u16(0)?;
        Some(at)
    }

    fn fill16(&mut self, at: usize, v: usize) -> Option<()> {
        let v = u16::try_from(v).ok()?;
        self.out
            .get_mut(at..at + 2)?
            .copy_from_slice(&v.to_le_bytes());
        Some(())
    }
}

/// One segment of a padded EPATH, as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentRepr<'v> {
    Port {
        port: u16,
        link: &'v [u8],
    },
    Class(u32),
    Instance(u32),
    Member(u32),
    ConnectionPoint(u32),
    Attribute(u32),
    /// An ANSI extended symbol (0x91).
    Symbol(&'v [u8]),
    /// A simple data segment (0x80); its length must be even.
    Data(&'v [u8]),
}

fn put_segment(w: &mut Writer<'_>, seg: &SegmentRepr<'_>) -> Option<()> {
    let logical = |w: &mut Writer<'_>, ty: u8, v: u32| -> Option<()> {
        let base = 0x20 | (ty << 2);
        if let Ok(b) = u8::try_from(v) {
            w.put(&[base, b])
        } else if let Ok(h) = u16::try_from(v) {
            w.put(&[base | 1, 0])?;
            w.u16(h)
        } else {
            w.put(&[base | 2, 0])?;
            w.u32(v)
        }
    };
    match *seg {
        SegmentRepr::Port { port, link } => {
            let extended_link = link.len() != 1;
            let id = if port < 15 { port as u8 } else { 15 };
            if id == 0 {
                return None;
            }
            w.u8(id | if extended_link { 0x10 } else { 0 })?;
            if extended_link {
                w.u8(u8::try_from(link.len()).ok()?)?;
            }
            if id == 15 {
                w.u16(port)?;
            }
            w.put(link)?;
            w.pad()
        }
        SegmentRepr::Class(v) => logical(w, 0, v),
        SegmentRepr::Instance(v) => logical(w, 1, v),
        SegmentRepr::Member(v) => logical(w, 2, v),
        SegmentRepr::ConnectionPoint(v) => logical(w, 3, v),
        SegmentRepr::Attribute(v) => logical(w, 4, v),
        SegmentRepr::Symbol(name) => {
            if name.is_empty() {
                return None;
            }
            w.put(&[0x91, u8::try_from(name.len()).ok()?])?;
            w.put(name)?;
            w.pad()
        }
        SegmentRepr::Data(data) => {
            if data.len() % 2 == 1 {
                return None;
            }
            w.put(&[0x80, u8::try_from(data.len() / 2).ok()?])?;
            w.put(data)
        }
    }
}

/// Writes a padded EPATH; the caller writes its size in words.
fn put_path(w: &mut Writer<'_>, segs: &[SegmentRepr<'_>]) -> Option<u8> {
    let start = w.n;
    for seg in segs {
        put_segment(w, seg)?;
    }
    u8::try_from((w.n - start) / 2).ok()
}

/// Writes a padded EPATH alone (no size byte).
pub fn emit_path(out: &mut [u8], segs: &[SegmentRepr<'_>]) -> Option<usize> {
    let mut w = Writer::new(out);
    put_path(&mut w, segs)?;
    Some(w.n)
}

/// A Message Router request: service, path, data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRepr<'v> {
    pub service: u8,
    pub path: &'v [SegmentRepr<'v>],
    pub data: &'v [u8],
}

impl RequestRepr<'_> {
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let mut w = Writer::new(out);
        w.u8(self.service)?;
        let size_at = w.n;
        w.u8(0)?;
        let words = put_path(&mut w, self.path)?;
        w.out[size_at] = words;
        w.put(self.data)?;
        Some(w.n)
    }
}

/// A Multiple Service Packet to the message router (class 2, instance 1) carrying
/// `requests` (each one whole, as `RequestRepr::emit` writes them).
pub fn emit_multiple(out: &mut [u8], requests: &[&[u8]]) -> Option<usize> {
    let mut w = Writer::new(out);
    w.put(&[0x0a, 0x02, 0x20, 0x02, 0x24, 0x01])?;
    let base = w.n;
    w.u16(u16::try_from(requests.len()).ok()?)?;
    let mut offset = 2 + 2 * requests.len();
    for r in requests {
        w.u16(u16::try_from(offset).ok()?)?;
        offset += r.len();
    }
    for r in requests {
        w.put(r)?;
    }
    u16::try_from(w.n - base).ok()?;
    Some(w.n)
}

/// An Unconnected Send to the Connection Manager (class 6, instance 1) carrying
/// `embedded` along `route` (port segments).
pub fn emit_unconnected_send(
    out: &mut [u8],
    embedded: &[u8],
    route: &[SegmentRepr<'_>],
) -> Option<usize> {
    let mut w = Writer::new(out);
    w.put(&[0x52, 0x02, 0x20, 0x06, 0x24, 0x01, 0x0a, 0x05])?;
    w.u16(u16::try_from(embedded.len()).ok()?)?;
    w.put(embedded)?;
    w.pad()?;
    let size_at = w.n;
    w.put(&[0, 0])?;
    let words = put_path(&mut w, route)?;
    w.out[size_at] = words;
    Some(w.n)
}

/// The network connection parameters of one direction of a Forward Open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamsRepr {
    pub rpi: u32,
    pub size: u16,
    /// 0 null, 1 multicast, 2 point-to-point.
    pub kind: u8,
}

/// A Forward Open (or Large Forward Open) to the Connection Manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardOpenRepr<'v> {
    pub large: bool,
    pub o_t_connection: u32,
    pub t_o_connection: u32,
    pub serial: u16,
    pub vendor: u16,
    pub originator_serial: u32,
    pub o_t: ParamsRepr,
    pub t_o: ParamsRepr,
    /// Transport class and trigger (0xA3: server, application trigger, class 3).
    pub transport: u8,
    pub path: &'v [SegmentRepr<'v>],
}

impl ForwardOpenRepr<'_> {
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let mut w = Writer::new(out);
        let service = if self.large { 0x5b } else { 0x54 };
        w.put(&[service, 0x02, 0x20, 0x06, 0x24, 0x01, 0x0a, 0x05])?;
        w.u32(self.o_t_connection)?;
        w.u32(self.t_o_connection)?;
        w.u16(self.serial)?;
        w.u16(self.vendor)?;
        w.u32(self.originator_serial)?;
        w.put(&[3, 0, 0, 0])?;
        for p in [self.o_t, self.t_o] {
            w.u32(p.rpi)?;
            if self.large {
                w.u32(u32::from(p.size) | (u32::from(p.kind & 3) << 29))?;
            } else {
                if p.size > 0x1ff {
                    return None;
                }
                w.u16(p.size | (u16::from(p.kind & 3) << 13))?;
            }
        }
        w.u8(self.transport)?;
        let size_at = w.n;
        w.u8(0)?;
        let words = put_path(&mut w, self.path)?;
        w.out[size_at] = words;
        Some(w.n)
    }
}

/// A Forward Close of the connection `serial`/`vendor`/`originator_serial`.
pub fn emit_forward_close(
    out: &mut [u8],
    serial: u16,
    vendor: u16,
    originator_serial: u32,
    path: &[SegmentRepr<'_>],
) -> Option<usize> {
    let mut w = Writer::new(out);
    w.put(&[0x4e, 0x02, 0x20, 0x06, 0x24, 0x01, 0x0a, 0x05])?;
    w.u16(serial)?;
    w.u16(vendor)?;
    w.u32(originator_serial)?;
    let size_at = w.n;
    w.put(&[0, 0])?;
    let words = put_path(&mut w, path)?;
    w.out[size_at] = words;
    Some(w.n)
}

/// A Message Router response: `service` (the reply bit is added), status, additional
/// status words, data.
pub fn emit_response(
    out: &mut [u8],
    service: u8,
    status: u8,
    additional: &[u16],
    data: &[u8],
) -> Option<usize> {
    let mut w = Writer::new(out);
    w.put(&[
        service | 0x80,
        0,
        status,
        u8::try_from(additional.len()).ok()?,
    ])?;
    for a in additional {
        w.u16(*a)?;
    }
    w.put(data)?;
    Some(w.n)
}

/// An encapsulation message: header (sender context zero, options 0) and `data`.
pub fn emit_encapsulation(
    out: &mut [u8],
    command: Command,
    session: u32,
    status: u32,
    data: &[u8],
) -> Option<usize> {
    let mut w = Writer::new(out);
    w.u16(u16::from(command))?;
    w.u16(u16::try_from(data.len()).ok()?)?;
    w.u32(session)?;
    w.u32(status)?;
    w.put(&[0; 8])?;
    w.u32(0)?;
    w.put(data)?;
    debug_assert!(w.n == HEADER_LEN + data.len());
    Some(w.n)
}

/// SendRRData with a null address item and an unconnected data item holding `cip`.
pub fn emit_send_rr_data(out: &mut [u8], session: u32, cip: &[u8]) -> Option<usize> {
    let mut w = Writer::new(out);
    w.u16(u16::from(Command::SendRrData))?;
    let len_at = w.mark16()?;
    w.u32(session)?;
    w.put(&[0; 16])?;
    w.u32(0)?; // interface handle
    w.u16(10)?; // timeout
    w.u16(2)?;
    w.u16(u16::from(ItemType::NullAddress))?;
    w.u16(0)?;
    w.u16(u16::from(ItemType::UnconnectedData))?;
    w.u16(u16::try_from(cip.len()).ok()?)?;
    w.put(cip)?;
    w.fill16(len_at, w.n - HEADER_LEN)?;
    Some(w.n)
}

/// SendUnitData on `connection` with sequence count `sequence` and `cip`.
pub fn emit_send_unit_data(
    out: &mut [u8],
    session: u32,
    connection: u32,
    sequence: u16,
    cip: &[u8],
) -> Option<usize> {
    let mut w = Writer::new(out);
    w.u16(u16::from(Command::SendUnitData))?;
    let len_at = w.mark16()?;
    w.u32(session)?;
    w.put(&[0; 16])?;
    w.u32(0)?;
    w.u16(0)?;
    w.u16(2)?;
    w.u16(u16::from(ItemType::ConnectedAddress))?;
    w.u16(4)?;
    w.u32(connection)?;
    w.u16(u16::from(ItemType::ConnectedData))?;
    w.u16(u16::try_from(cip.len() + 2).ok()?)?;
    w.u16(sequence)?;
    w.put(cip)?;
    w.fill16(len_at, w.n - HEADER_LEN)?;
    Some(w.n)
}

/// RegisterSession (protocol version 1, no options).
pub fn emit_register_session(out: &mut [u8], session: u32) -> Option<usize> {
    emit_encapsulation(out, Command::RegisterSession, session, 0, &[1, 0, 0, 0])
}

/// An implicit I/O packet: sequenced address item and connected data item.
pub fn emit_io(out: &mut [u8], connection: u32, sequence: u32, data: &[u8]) -> Option<usize> {
    let mut w = Writer::new(out);
    w.u16(2)?;
    w.u16(u16::from(ItemType::SequencedAddress))?;
    w.u16(8)?;
    w.u32(connection)?;
    w.u32(sequence)?;
    w.u16(u16::from(ItemType::ConnectedData))?;
    w.u16(u16::try_from(data.len()).ok()?)?;
    w.put(data)?;
    Some(w.n)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::enip::{cip, parse, parse_io};
    use crate::Dir;

    #[test]
    fn built_messages_parse_back() {
        let mut a = [0u8; 256];
        let mut b = [0u8; 256];
        let mut c = [0u8; 512];
        let get = RequestRepr {
            service: 0x0e,
            path: &[
                SegmentRepr::Class(0xf5),
                SegmentRepr::Instance(1),
                SegmentRepr::Attribute(5),
            ],
            data: &[],
        };
        let n = get.emit(&mut a).unwrap();
        assert_eq!(&a[..n], &[0x0e, 0x03, 0x20, 0xf5, 0x24, 0x01, 0x30, 0x05]);
        let m = emit_multiple(&mut b, &[&a[..n], &a[..n]]).unwrap();
        let u = emit_unconnected_send(
            &mut c,
            &b[..m],
            &[SegmentRepr::Port {
                port: 1,
                link: &[0],
            }],
        )
        .unwrap();
        let mut out = [0u8; 600];
        let e = emit_send_rr_data(&mut out, 9, &c[..u]).unwrap();
        let msg = parse(&out[..e], e, Dir::Request).unwrap();
        let r = msg.cip_request().unwrap();
        let mut services = std::vec::Vec::new();
        r.for_each::<()>(&mut |q| {
            services.push(q.service());
            Ok(())
        })
        .unwrap();
        assert_eq!(services, [0x52, 0x0a, 0x0e, 0x0e]);
        let fo = ForwardOpenRepr {
            large: false,
            o_t_connection: 0,
            t_o_connection: 7,
            serial: 1,
            vendor: 2,
            originator_serial: 3,
            o_t: ParamsRepr {
                rpi: 10_000,
                size: 36,
                kind: 2,
            },
            t_o: ParamsRepr {
                rpi: 10_000,
                size: 40,
                kind: 1,
            },
            transport: 0x01,
            path: &[
                SegmentRepr::Port {
                    port: 1,
                    link: &[0],
                },
                SegmentRepr::Class(4),
                SegmentRepr::Instance(1),
                SegmentRepr::ConnectionPoint(100),
                SegmentRepr::ConnectionPoint(150),
            ],
        };
        let n = fo.emit(&mut a).unwrap();
        let r = cip::parse_request(&a[..n], false).unwrap();
        let f = r.forward_open().unwrap();
        assert_eq!((f.transport_class(), f.o_t.size, f.t_o.size), (1, 36, 40));
        assert_eq!(r.object_path().target().connection_point, Some(100));
        let n = emit_io(&mut a, 7, 1, &[1, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(parse_io(&a[..n], Dir::Request).unwrap().data().len(), 6);
        let n = emit_register_session(&mut a, 0).unwrap();
        assert!(parse(&a[..n], n, Dir::Request).is_ok());
    }
}
