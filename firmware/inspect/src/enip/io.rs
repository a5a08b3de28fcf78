//! Implicit (class 0/1) I/O: one Common Packet Format per UDP datagram on port 2222
//! (Volume 2, 3-2.2 and 2-6): an address item — sequenced address (0x8002: connection
//! id and a 32-bit sequence number), or connected address (0x00A1: connection id) —
//! then a connected data item (0x00B1) holding the I/O data; further items are walked
//! for shape. There is no encapsulation header.
//!
//! The I/O data is opaque here: whether it starts with a class 1 sequence count or a
//! run/idle header depends on what the Forward Open negotiated, which this packet does
//! not say. Every packet produces data into its receiver, so every well-formed packet is
//! a request, judged by the rule for its own sender and receiver.

use crate::{Dir, Fields, Malformed, Protocol, Reader};

use super::ItemType;

const P: Protocol = Protocol::EnipIo;

/// A checked implicit I/O packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoMessage<'a> {
    bytes: &'a [u8],
    dir: Dir,
    connection: u32,
    sequence: Option<u32>,
    data: &'a [u8],
    items: u16,
}

/// Parses one UDP datagram of implicit I/O.
pub fn parse_io(bytes: &[u8], dir: Dir) -> Result<IoMessage<'_>, Malformed> {
    let mut r = Reader::new(P, bytes);
    let items = r.le_u16("item count missing")?;
    if items < 2 {
        return Err(r.error("fewer than two items"));
    }
    let short = "item header truncated";
    let address = ItemType::from(r.le_u16(short)?);
    let len = r.le_u16(short)?;
    let (connection, sequence) = match (address, len) {
        (ItemType::SequencedAddress, 8) => {
            let c = r.le_u32("address item truncated")?;
            (c, Some(r.le_u32("address item truncated")?))
        }
        (ItemType::ConnectedAddress, 4) => (r.le_u32("address item truncated")?, None),
        (ItemType::SequencedAddress | ItemType::ConnectedAddress, _) => {
            return Err(r.error("address item of the wrong length"))
        }
        _ => return Err(r.error("first item is not a connected or sequenced address")),
    };
    if ItemType::from(r.le_u16(short)?) != ItemType::ConnectedData {
        return Err(r.error("second item is not connected data"));
    }
    let len = usize::from(r.le_u16(short)?);
    let data = r.take(len, "data item longer than the datagram")?;
    for _ in 2..items {
        r.skip(2, short)?;
        let len = usize::from(r.le_u16(short)?);
        r.skip(len, "item longer than the datagram")?;
    }
    if !r.is_empty() {
        return Err(r.error("bytes after the last item"));
    }
    Ok(IoMessage {
        bytes,
        dir,
        connection,
        sequence,
        data,
        items,
    })
}

impl<'a> IoMessage<'a> {
    /// Every I/O packet is data its receiver consumes: judged as a request, whichever
    /// way it travels.
    pub fn is_request(&self) -> bool {
        true
    }

    pub fn dir(&self) -> Dir {
        self.dir
    }

    /// The connection id (chosen by the consumer in the Forward Open).
    pub fn connection(&self) -> u32 {
        self.connection
    }

    /// The 32-bit sequence number of a sequenced address item.
    pub fn sequence(&self) -> Option<u32> {
        self.sequence
    }

    /// The connected data item: the I/O data (with the class 1 sequence count and any
    /// run/idle header).
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    pub fn items(&self) -> u16 {
        self.items
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn op(&self) -> IoOp {
        IoOp {
            connection: self.connection,
            sequence: self.sequence,
            size: self.data.len() as u16,
        }
    }
}

/// What an I/O packet carried, for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoOp {
    pub connection: u32,
    pub sequence: Option<u32>,
    /// Bytes of I/O data (the connected data item).
    pub size: u16,
}

impl IoOp {
    pub fn describe(&self, out: &mut dyn Fields) {
        out.number("connection", self.connection.into());
        if let Some(s) = self.sequence {
            out.number("sequence", s.into());
        }
        out.number("size", self.size.into());
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// A class 1 O→T packet: sequenced address (connection 0x12345678, sequence 7),
    /// connected data: sequence count 7, run/idle header (run), two data bytes.
    const PACKET: [u8; 26] = [
        0x02, 0x00, 0x02, 0x80, 0x08, 0x00, 0x78, 0x56, 0x34, 0x12, 0x07, 0x00, 0x00, 0x00, 0xb1,
        0x00, 0x08, 0x00, 0x07, 0x00, 0x01, 0x00, 0x00, 0x00, 0xaa, 0x55,
    ];

    #[test]
    fn a_class_1_packet() {
        let m = parse_io(&PACKET, Dir::Request).unwrap();
        assert_eq!(m.connection(), 0x1234_5678);
        assert_eq!(m.sequence(), Some(7));
        assert_eq!(m.data().len(), 8);
        assert!(m.is_request());
        assert!(parse_io(&PACKET, Dir::Response).unwrap().is_request());
        assert_eq!(
            std::format!("{}", crate::Op::EnipIo(m.op())),
            "enip-io connection=305419896 sequence=7 size=8"
        );
    }

    #[test]
    fn malformed_packets() {
        let cases: &[(usize, u8, &str)] = &[
            (0, 1, "fewer than two items"),
            (
                2,
                0x03,
                "first item is not a connected or sequenced address",
            ),
            (4, 4, "address item of the wrong length"),
            (14, 0xb2, "second item is not connected data"),
            (16, 9, "data item longer than the datagram"),
            (16, 7, "bytes after the last item"),
        ];
        for &(at, v, what) in cases {
            let mut b = PACKET;
            b[at] = v;
            assert_eq!(
                parse_io(&b, Dir::Request).unwrap_err().what,
                what,
                "byte {at}"
            );
        }
        assert!(parse_io(&PACKET[..5], Dir::Request).is_err());
        assert!(parse_io(&[], Dir::Request).is_err());
        // A third item, well formed, is walked.
        let mut three = PACKET.to_vec();
        three[0] = 3;
        three.extend_from_slice(&[0x00, 0x80, 0x02, 0x00, 0xab, 0xcd]);
        assert_eq!(parse_io(&three, Dir::Request).unwrap().items(), 3);
        three.pop();
        assert!(parse_io(&three, Dir::Request).is_err());
    }
}
