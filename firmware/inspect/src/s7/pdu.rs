//! The S7comm PDU (protocol id 0x32): header, parameters and data of jobs,
//! acknowledgements and userdata.
//!
//! Header: protocol id, ROSCTR, two reserved bytes, PDU reference, parameter length,
//! data length, and for acknowledgements the error class and code (10 or 12 bytes).
//! The parameters follow, then the data. What a policy judges (the function, the
//! addresses of read-var and write-var, the PI service, the userdata group and
//! subfunction) is in the parameters, except the addresses of a cyclic subscription and
//! the list of a SZL read, which are at the start of the data.

use super::codes::{Area, PiService};
use super::codes::{
    BlockType, CpuFunction, CyclicFunction, Function, Group, Rosctr, SyntaxId, TransportSize,
    UserdataType,
};
use super::P;
use crate::{Dir, Malformed, Reader};

pub const PROTOCOL_ID: u8 = 0x32;
/// A variable specification (the first byte of every address item).
pub const VAR_SPEC: u8 = 0x12;
/// The head of every userdata parameter block.
pub const USERDATA_HEAD: [u8; 3] = [0x00, 0x01, 0x12];

fn m(what: &'static str) -> Malformed {
    Malformed::new(P, what)
}

/// One address of a read-var, write-var or cyclic subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Item {
    /// An S7ANY address: `count` elements of `transport` at `address` of `area` (in data
    /// block `db` for DB areas). `address` is the bit address (byte × 8 + bit); for
    /// timers and counters, the element number.
    Any {
        area: Area,
        db: u16,
        transport: TransportSize,
        count: u16,
        address: u32,
    },
    /// One area of an S7-400 DB-read item: `bytes` bytes of DB `db` from `start`.
    DbRead { db: u16, start: u16, bytes: u8 },
    /// An address in another syntax (S7-1200 symbolic, NCK, drive …): not decoded.
    Other { syntax: SyntaxId },
}

impl Item {
    /// The memory area, where the address says it.
    pub fn area(&self) -> Option<Area> {
        match *self {
            Item::Any { area, .. } => Some(area),
            Item::DbRead { .. } => Some(Area::Db),
            Item::Other { .. } => None,
        }
    }

    /// The data block number, for addresses in a data block or instance data block.
    pub fn db(&self) -> Option<u16> {
        match *self {
            Item::Any {
                area: Area::Db | Area::InstanceDb,
                db,
                ..
            } => Some(db),
            Item::DbRead { db, .. } => Some(db),
            _ => None,
        }
    }

    /// The first byte addressed (the element number for timers and counters).
    pub fn start(&self) -> Option<u32> {
        match *self {
            Item::Any {
                area: Area::Counters | Area::Timers | Area::IecCounters | Area::IecTimers,
                address,
                ..
            } => Some(address),
            Item::Any { address, .. } => Some(address >> 3),
            Item::DbRead { start, .. } => Some(start.into()),
            Item::Other { .. } => None,
        }
    }

    /// How many bytes the item reads or writes, where its transport size says.
    fn bytes(&self) -> Option<u32> {
        match *self {
            Item::Any {
                transport, count, ..
            } => transport
                .element_bytes()
                .map(|size| size * u32::from(count)),
            Item::DbRead { .. } | Item::Other { .. } => None,
        }
    }
}

/// The address items of a request: a checked run of variable specifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Items<'a> {
    rest: &'a [u8],
    left: u8,
    /// Items are padded to an even length (in cyclic subscriptions).
    padded: bool,
    /// The areas still to yield of a DB-read item.
    dbread: &'a [u8],
}

impl<'a> Items<'a> {
    pub(crate) fn empty() -> Items<'a> {
        Items {
            rest: &[],
            left: 0,
            padded: false,
            dbread: &[],
        }
    }

    /// Checks `count` items in `bytes` (which they must fill exactly).
    pub(crate) fn check(bytes: &'a [u8], count: u8, padded: bool) -> Result<Items<'a>, Malformed> {
        if count == 0 {
            return Err(m("no address items"));
        }
        let items = Items {
            rest: bytes,
            left: count,
            padded,
            dbread: &[],
        };
        let mut r = Reader::new(P, bytes);
        for _ in 0..count {
            next_spec(&mut r, padded)?;
        }
        if !r.is_empty() {
            return Err(m("address bytes after the last item"));
        }
        Ok(items)
    }

    /// How many variable specifications there are (a DB-read item counts once).
    pub fn specs(&self) -> u8 {
        self.left
    }
}

impl Iterator for Items<'_> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if let [len, d0, d1, s0, s1, rest @ ..] = self.dbread {
            self.dbread = rest;
            return Some(Item::DbRead {
                db: u16::from_be_bytes([*d0, *d1]),
                start: u16::from_be_bytes([*s0, *s1]),
                bytes: *len,
            });
        }
        if self.left == 0 {
            return None;
        }
        let mut r = Reader::new(P, self.rest);
        // Checked at construction: cannot fail.
        let spec = next_spec(&mut r, self.padded).ok()?;
        self.rest = r.rest();
        self.left -= 1;
        match spec {
            Spec::Item(item) => Some(item),
            Spec::DbRead(areas) => {
                self.dbread = areas;
                self.next()
            }
        }
    }
}

enum Spec<'a> {
    Item(Item),
    DbRead(&'a [u8]),
}

/// One variable specification: 0x12, its length, the syntax id and the address.
fn next_spec<'a>(r: &mut Reader<'a>, padded: bool) -> Result<Spec<'a>, Malformed> {
    let short = "address item truncated";
    if r.u8(short)? != VAR_SPEC {
        return Err(m("address item is not a variable specification (0x12)"));
    }
    let len = usize::from(r.u8(short)?);
    let body = r.take(len, short)?;
    if padded && len % 2 == 1 {
        r.skip(1, short)?;
    }
    let Some((&syntax, address)) = body.split_first() else {
        return Err(m("address item without a syntax id"));
    };
    Ok(match SyntaxId::from(syntax) {
        SyntaxId::S7Any => {
            let [ts, c0, c1, d0, d1, area, a0, a1, a2] = address else {
                return Err(m("S7ANY address is not 10 bytes"));
            };
            Spec::Item(Item::Any {
                area: Area::from(*area),
                db: u16::from_be_bytes([*d0, *d1]),
                transport: TransportSize::from(*ts),
                count: u16::from_be_bytes([*c0, *c1]),
                address: u32::from_be_bytes([0, *a0, *a1, *a2]),
            })
        }
        SyntaxId::DbRead => match address.split_first() {
            Some((&n, areas)) if n > 0 && areas.len() == 5 * usize::from(n) => Spec::DbRead(areas),
            _ => return Err(m("DB-read address length disagrees with its areas")),
        },
        other => Spec::Item(Item::Other { syntax: other }),
    })
}

/// A block named in a download, upload or PI service: `_0A00001P` is DB 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Block {
    pub kind: BlockType,
    pub number: u32,
}

impl Block {
    /// From a block file name (`_0` or `$0`, type, five digits, file system) or a PI
    /// argument (`0`, type, five digits, file system).
    fn parse(name: &[u8]) -> Option<Block> {
        let rest = match name {
            [b'_' | b'$', b'0', rest @ ..] | [b'0', rest @ ..] => rest,
            _ => return None,
        };
        let [kind, digits @ .., _fs] = rest else {
            return None;
        };
        if digits.len() != 5 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let number = digits
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
        Some(Block {
            kind: BlockType::from(*kind),
            number,
        })
    }
}

/// The parameter head of a userdata PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Userdata {
    pub kind: UserdataType,
    pub group: Group,
    pub subfunction: u8,
    pub sequence: u8,
}

/// What the parameters (or, for userdata, the start of the data) say beyond the
/// function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detail<'a> {
    None,
    /// Setup communication: the PDU size proposed or granted.
    Setup {
        pdu_size: u16,
    },
    /// Read-var and write-var requests, cyclic subscriptions.
    Items(Items<'a>),
    /// A PI service (plc-control, plc-stop) and the first block it names.
    Pi {
        name: &'a [u8],
        block: Option<Block>,
    },
    /// The block of a download or upload.
    Block(Option<Block>),
    /// A SZL read: list id and index.
    Szl {
        id: u16,
        index: u16,
    },
    /// The number of items of a read-var or write-var acknowledgement.
    Count(u8),
}

/// A checked S7comm PDU (possibly the first fragment of one, or a prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pdu<'a> {
    pub rosctr: Rosctr,
    pub pdu_ref: u16,
    /// Error class and code of an acknowledgement.
    pub error: Option<(u8, u8)>,
    pub params: &'a [u8],
    /// The data part as far as it is visible (all of it when `complete`).
    pub data: &'a [u8],
    pub complete: bool,
    pub userdata: Option<Userdata>,
    pub(crate) detail: Detail<'a>,
}

impl Pdu<'_> {
    /// The function of a job or acknowledgement (the first parameter byte).
    pub fn function(&self) -> Option<Function> {
        match self.rosctr {
            Rosctr::Userdata => None,
            _ => self.params.first().map(|&f| Function::from(f)),
        }
    }
}

/// Parses an S7comm PDU from `visible` (the user data of the first DT in the buffer),
/// of which `in_tpdu` bytes are in this TPDU; `eot` says whether the PDU ends there.
/// Returns the PDU and its whole length.
pub fn parse(
    visible: &[u8],
    in_tpdu: usize,
    eot: bool,
    dir: Dir,
) -> Result<(Pdu<'_>, usize), Malformed> {
    let short = "S7 header truncated";
    let mut r = Reader::new(P, visible);
    r.skip(1, short)?;
    let rosctr = Rosctr::from(r.u8(short)?);
    r.skip(2, short)?;
    let pdu_ref = r.be_u16(short)?;
    let plen = usize::from(r.be_u16(short)?);
    let dlen = usize::from(r.be_u16(short)?);
    let error = match rosctr {
        Rosctr::Ack | Rosctr::AckData => Some((r.u8(short)?, r.u8(short)?)),
        _ => None,
    };
    let header = r.position();
    let pdu_len = header + plen + dlen;
    if eot && pdu_len != in_tpdu {
        return Err(m("S7 lengths disagree with the TPKT length"));
    }
    if !eot && pdu_len <= in_tpdu {
        return Err(m("S7 PDU ends before its last COTP fragment"));
    }
    let params = match visible.get(header..header + plen) {
        Some(p) => p,
        None if header + plen > in_tpdu => return Err(m("S7 parameters span COTP fragments")),
        None => return Err(m("S7 parameters longer than the inspection buffer")),
    };
    let data_end = pdu_len.min(visible.len());
    let data = &visible[header + plen..data_end];
    let complete = visible.len() >= pdu_len;
    let mut pdu = Pdu {
        rosctr,
        pdu_ref,
        error,
        params,
        data,
        complete,
        userdata: None,
        detail: Detail::None,
    };
    match rosctr {
        Rosctr::Job => job(&mut pdu, dlen)?,
        Rosctr::Ack | Rosctr::AckData => ack(&mut pdu, dlen, dir)?,
        Rosctr::Userdata => userdata(&mut pdu, dlen)?,
        // Another PDU type: its parameters and data are the policy's business.
        Rosctr::Unknown(_) => {}
    }
    Ok((pdu, pdu_len))
}

fn job<'a>(pdu: &mut Pdu<'a>, dlen: usize) -> Result<(), Malformed> {
    let p = pdu.params;
    let Some(&code) = p.first() else {
        return Err(m("job without a function"));
    };
    let function = Function::from(code);
    use Function as F;
    let no_data = || {
        if dlen == 0 {
            Ok(())
        } else {
            Err(m("job data where its function takes none"))
        }
    };
    match function {
        F::SetupCommunication => {
            let [_, _, _, _, _, _, s0, s1] = p else {
                return Err(m("setup-communication parameters are not 8 bytes"));
            };
            pdu.detail = Detail::Setup {
                pdu_size: u16::from_be_bytes([*s0, *s1]),
            };
            no_data()?;
        }
        F::ReadVar | F::WriteVar => {
            let Some((&count, specs)) = p[1..].split_first() else {
                return Err(m("read/write-var without an item count"));
            };
            let items = Items::check(specs, count, false)?;
            pdu.detail = Detail::Items(items);
            if function == F::ReadVar {
                no_data()?;
            } else {
                data_items(pdu.data, pdu.complete, count, Some(items), true)?;
            }
        }
        F::RequestDownload | F::DownloadBlock | F::DownloadEnded | F::StartUpload => {
            let name = match p.get(8) {
                Some(&n) => p.get(9..9 + usize::from(n)),
                None => None,
            };
            let Some(name) = name else {
                return Err(m("block file name truncated"));
            };
            pdu.detail = Detail::Block(Block::parse(name));
            no_data()?;
        }
        F::Upload | F::EndUpload => {
            if p.len() != 8 {
                return Err(m("upload parameters are not 8 bytes"));
            }
            no_data()?;
        }
        F::PlcControl => {
            // Function, 7 unspecified bytes, parameter block length and block, service
            // name length and name.
            let mut r = Reader::new(P, p);
            let short = "PI service parameters truncated";
            r.skip(8, short)?;
            let block_len = usize::from(r.be_u16(short)?);
            let args = r.take(block_len, short)?;
            let name_len = usize::from(r.u8(short)?);
            let name = r.take(name_len, short)?;
            if name.is_empty() || !r.is_empty() {
                return Err(m("PI service name length disagrees with the parameters"));
            }
            // The argument of _INSE/_DELE: block count, a reserved byte, then blocks of
            // eight characters (`0A00001P`).
            let block = match args {
                [_, _, first @ ..] if first.len() >= 8 => Block::parse(&first[..8]),
                _ => None,
            };
            pdu.detail = Detail::Pi { name, block };
            no_data()?;
        }
        F::PlcStop => {
            let [_, _, _, _, _, _, len, name @ ..] = p else {
                return Err(m("PI service parameters truncated"));
            };
            if name.is_empty() || name.len() != usize::from(*len) {
                return Err(m("PI service name length disagrees with the parameters"));
            }
            pdu.detail = Detail::Pi { name, block: None };
            no_data()?;
        }
        // Functions without a definition here: their parameters are data.
        F::Unknown(_) => {}
    }
    Ok(())
}

fn ack(pdu: &mut Pdu<'_>, dlen: usize, dir: Dir) -> Result<(), Malformed> {
    let function = pdu.function();
    use Function as F;
    if dir == Dir::Request && !matches!(function, None | Some(F::DownloadBlock | F::DownloadEnded))
    {
        // The initiator acknowledges only the jobs the PLC sends it during a download.
        return Err(m(
            "acknowledgement from the initiator of a job it was not sent",
        ));
    }
    let p = pdu.params;
    match function {
        Some(F::SetupCommunication) => {
            let [_, _, _, _, _, _, s0, s1] = p else {
                return Err(m("setup-communication parameters are not 8 bytes"));
            };
            pdu.detail = Detail::Setup {
                pdu_size: u16::from_be_bytes([*s0, *s1]),
            };
        }
        Some(F::ReadVar) => {
            let [_, count] = p else {
                return Err(m("read-var acknowledgement parameters are not 2 bytes"));
            };
            data_items(pdu.data, pdu.complete, *count, None, false)?;
            pdu.detail = Detail::Count(*count);
        }
        Some(F::WriteVar) => {
            let [_, count] = p else {
                return Err(m("write-var acknowledgement parameters are not 2 bytes"));
            };
            if dlen != usize::from(*count) {
                return Err(m("write-var acknowledgement has not one result per item"));
            }
            pdu.detail = Detail::Count(*count);
        }
        Some(F::DownloadBlock) => {
            if p.len() != 2 {
                return Err(m(
                    "download-block acknowledgement parameters are not 2 bytes",
                ));
            }
            // Data: block bytes length, 0x00FB, the bytes.
            if let (true, [l0, l1, _, _, ..]) = (pdu.complete, pdu.data) {
                if usize::from(u16::from_be_bytes([*l0, *l1])) + 4 != dlen {
                    return Err(m("download-block length disagrees with its data"));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn userdata<'a>(pdu: &mut Pdu<'a>, dlen: usize) -> Result<(), Malformed> {
    let p = pdu.params;
    let [h0, h1, h2, len, _method, type_group, sub, seq, ..] = p else {
        return Err(m("userdata parameters truncated"));
    };
    if [*h0, *h1, *h2] != USERDATA_HEAD {
        return Err(m("userdata parameter head is not 00 01 12"));
    }
    if usize::from(*len) + 4 != p.len() {
        return Err(m("userdata parameter length disagrees with the header"));
    }
    let ud = Userdata {
        kind: UserdataType::from(type_group >> 6),
        group: Group::from(type_group & 0x3f),
        subfunction: *sub,
        sequence: *seq,
    };
    pdu.userdata = Some(ud);
    let request = ud.kind == UserdataType::Request;
    // A subscription names its addresses in the data: it must be seen whole.
    let subscription = request
        && ud.group == Group::CyclicData
        && matches!(
            CyclicFunction::from(*sub),
            CyclicFunction::CyclicTransfer | CyclicFunction::ChangeDrivenTransfer
        );
    if subscription && !pdu.complete {
        return Err(m("cyclic subscription not whole in its first fragment"));
    }
    if dlen == 0 {
        return Ok(());
    }
    // Data: return code, transport size, length, and that many bytes.
    let [_ret, _ts, l0, l1, payload @ ..] = pdu.data else {
        if pdu.complete || pdu.data.len() >= 4 {
            return Err(m("userdata data header truncated"));
        }
        return Ok(());
    };
    let len = usize::from(u16::from_be_bytes([*l0, *l1]));
    if len + 4 != dlen {
        return Err(m("userdata data length disagrees with the header"));
    }
    if subscription {
        // Reserved byte, item count, time base, interval, then address items.
        let [_, count, _, _, specs @ ..] = payload else {
            return Err(m("cyclic subscription truncated"));
        };
        pdu.detail = Detail::Items(Items::check(specs, *count, true)?);
    } else if request
        && ud.group == Group::CpuFunctions
        && CpuFunction::from(*sub) == CpuFunction::ReadSzl
    {
        if let [i0, i1, x0, x1, ..] = payload {
            pdu.detail = Detail::Szl {
                id: u16::from_be_bytes([*i0, *i1]),
                index: u16::from_be_bytes([*x0, *x1]),
            };
        }
    }
    Ok(())
}

/// Checks the data items of a write-var request (against its address `items`) or of a
/// read-var acknowledgement: return code, transport size, length, the bytes, and a fill
/// byte after an odd length but the last. Stops quietly at the end of what is visible
/// when the PDU is not `complete`.
fn data_items(
    data: &[u8],
    complete: bool,
    count: u8,
    items: Option<Items<'_>>,
    request: bool,
) -> Result<(), Malformed> {
    let mut r = Reader::new(P, data);
    let mut items = items;
    let short = "data item truncated";
    for i in 0..count {
        let item = items.as_mut().and_then(Iterator::next);
        if r.remaining() < 4 && !complete {
            return Ok(());
        }
        let ret = r.u8(short)?;
        let ts = r.u8(short)?;
        let len = u32::from(r.be_u16(short)?);
        // Transport sizes 3, 4 and 5 count bits; the others count bytes.
        let bytes = match ts {
            3..=5 => len.div_ceil(8),
            _ => len,
        };
        let carries = request || ret == 0xff || ret == 0x00;
        if !carries {
            continue;
        }
        if let (Some(expected), true) = (item.and_then(|it| it.bytes()), request) {
            if expected != bytes {
                return Err(m("write-var data length disagrees with its address item"));
            }
        }
        let fill = usize::from(bytes % 2 == 1 && i + 1 < count);
        let want = bytes as usize + fill;
        if want > r.remaining() && !complete {
            return Ok(());
        }
        r.skip(want, short)?;
    }
    if complete && !r.is_empty() {
        return Err(m("data after the last data item"));
    }
    Ok(())
}

/// The PI service of a plc-control or plc-stop job.
pub(crate) fn pi_service(detail: &Detail<'_>) -> Option<PiService> {
    match detail {
        Detail::Pi { name, .. } => Some(PiService::from_wire(name)),
        _ => None,
    }
}
