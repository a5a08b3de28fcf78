//! S7comm and S7comm-plus over TPKT (RFC 1006) and COTP (ISO 8073 class 0), TCP 102.
//!
//! Every TPKT is checked: its header, the COTP TPDU (connection request and confirm
//! with their parameters, disconnect, error, data), and the S7 PDU a data TPDU carries.
//! S7comm (protocol id 0x32) is parsed in full: the header, the job functions (setup
//! communication, read/write var with every address item, request/download/upload of
//! blocks, PI services of plc-control and plc-stop), acknowledgements with their data
//! items, and userdata (function group, subfunction, SZL ids, cyclic subscriptions).
//! S7comm-plus (protocol id 0x72) is recognised (version, opcode, function) and judged
//! as a whole. References are in [`codes`]: the Wireshark S7comm dissector and the
//! S7comm-plus plugin describe the protocol, which Siemens does not publish.
//!
//! **Roles.** Jobs and userdata requests are requests. The PLC sends jobs too: during a
//! download it asks the client for the block (download-block, download-ended); those
//! belong to the client's request-download and are not judged again, and the client's
//! acknowledgements to them are answers. Any other job from the PLC is judged with the
//! roles swapped, and an acknowledgement from the client of anything but those two is
//! malformed.
//!
//! **Fragments.** A data TPDU without the end-of-TSDU mark continues in the next. The
//! PDU is judged on its first fragment, which must hold the S7 header and the whole
//! parameter block (it always does: TPDUs are at least as large as the negotiated PDU);
//! the fragments after it are only counted, and the last must end the PDU exactly.
//! S7comm-plus splits large messages into PDUs of its own; each is judged, only the
//! first has an opcode.
//!
//! **Prefixes.** A TPKT longer than the stream buffer is judged on its first bytes:
//! the parameters must be among them (data items beyond are not checked).

mod codes;
mod cotp;
mod pdu;
mod plus;
mod repr;

pub use codes::*;
pub use cotp::{Control, Tsap, DATA_OVERHEAD, MIN_TPKT, TPKT_HEADER};
pub use pdu::{Block, Item, Items, Pdu, Userdata};
pub use plus::Plus;
pub use repr::*;

use cotp::Tpkt;
use pdu::Detail;

use crate::{code_field, Dir, Fields, Framing, Malformed, Protocol};

const P: Protocol = Protocol::S7;

/// How long the TPKT at the start of `head` is.
pub fn frame(head: &[u8]) -> Framing {
    if head.len() < TPKT_HEADER {
        return Framing::NeedMore(TPKT_HEADER);
    }
    if head[0] != 3 {
        return Framing::Invalid(Malformed::new(P, "TPKT version is not 3"));
    }
    if head[1] != 0 {
        return Framing::Invalid(Malformed::new(P, "TPKT reserved byte is not 0"));
    }
    let length = usize::from(u16::from_be_bytes([head[2], head[3]]));
    if length < MIN_TPKT {
        return Framing::Invalid(Malformed::new(P, "TPKT length below 7"));
    }
    Framing::Length(length)
}

/// What one direction of a stream remembers: the TSAP its connection request called
/// (requests carry it for the policy), a PDU continuing in the next data TPDUs, and an
/// S7comm-plus message continuing in the next PDU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Session {
    tsap: Tsap,
    fragment: Fragment,
    plus_continues: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Fragment {
    #[default]
    None,
    /// An S7comm PDU with this many bytes still to come.
    S7(u32),
    /// Fragments to pass over until the end of the TSDU (S7comm-plus, or after a first
    /// fragment that was malformed).
    Skip,
}

impl Session {
    /// One framed TPKT of the stream (see `stream.rs`); `None` for a fragment after the
    /// first of a PDU (judged with the first).
    pub fn message<'s>(
        &mut self,
        bytes: &'s [u8],
        total: usize,
        dir: Dir,
        _scratch: &'s mut [u8],
    ) -> Option<Result<crate::Message<'s>, Malformed>> {
        let tpkt = match cotp::parse(bytes, total) {
            Ok(t) => t,
            Err(e) => {
                self.fragment = Fragment::None;
                return Some(Err(e));
            }
        };
        if let Tpkt::Data { eot, length, .. } = tpkt {
            match self.fragment {
                Fragment::None => {}
                Fragment::Skip => {
                    if eot {
                        self.fragment = Fragment::None;
                    }
                    return None;
                }
                Fragment::S7(left) => {
                    let left = left as usize;
                    let result = if length > left {
                        Some(Err(Malformed::new(P, "COTP fragment runs past the S7 PDU")))
                    } else if eot && length != left {
                        Some(Err(Malformed::new(
                            P,
                            "S7 PDU ends after its last COTP fragment",
                        )))
                    } else {
                        None
                    };
                    self.fragment = match (&result, eot) {
                        (None, false) => Fragment::S7((left - length) as u32),
                        (Some(_), false) => Fragment::Skip,
                        _ => Fragment::None,
                    };
                    return result;
                }
            }
        } else {
            self.fragment = Fragment::None;
        }
        let ctx = Context {
            tsap: self.tsap,
            plus_continues: self.plus_continues,
        };
        let parsed = view(tpkt, dir, ctx);
        let eot = match tpkt {
            Tpkt::Data { eot, .. } => eot,
            Tpkt::Control(..) => true,
        };
        match &parsed {
            Ok((msg, rest)) => {
                if let Body::Control(Tpdu::ConnectionRequest, c) = msg.body {
                    if dir == Dir::Request {
                        self.tsap = c.called;
                    }
                }
                if let Body::Plus(p) = msg.body {
                    if eot && p.version != PlusVersion::KeepAlive {
                        self.plus_continues = !p.last;
                    }
                }
                self.fragment = match (*rest, eot) {
                    (_, true) => Fragment::None,
                    (Some(left), false) => Fragment::S7(left as u32),
                    (None, false) => Fragment::Skip,
                };
            }
            Err(_) if !eot => self.fragment = Fragment::Skip,
            Err(_) => {}
        }
        Some(parsed.map(|(msg, _)| crate::Message::S7(msg)))
    }

    /// Whether no PDU is half received.
    pub fn is_idle(&self) -> bool {
        self.fragment == Fragment::None
    }
}

#[derive(Debug, Clone, Copy)]
struct Context {
    tsap: Tsap,
    plus_continues: bool,
}

/// A checked TPKT: a COTP control TPDU, or the (first fragment of an) S7comm or
/// S7comm-plus PDU of a data TPDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    dir: Dir,
    tsap: Tsap,
    body: Body<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body<'a> {
    Control(Tpdu, Control),
    S7(Pdu<'a>),
    Plus(Plus),
}

/// Parses one TPKT on its own (no stream state: no TSAP, no fragments before it).
/// `bytes` may be the first part of a longer TPKT of `total` bytes.
pub fn parse(bytes: &[u8], total: usize, dir: Dir) -> Result<Message<'_>, Malformed> {
    let tpkt = cotp::parse(bytes, total)?;
    let ctx = Context {
        tsap: Tsap::None,
        plus_continues: false,
    };
    view(tpkt, dir, ctx).map(|(m, _)| m)
}

/// The message of a TPDU, and for the first fragment of an S7comm PDU the bytes still
/// to come in the next fragments.
fn view(tpkt: Tpkt<'_>, dir: Dir, ctx: Context) -> Result<(Message<'_>, Option<usize>), Malformed> {
    let m = |what| Malformed::new(P, what);
    let msg = |body| Message {
        dir,
        tsap: ctx.tsap,
        body,
    };
    match tpkt {
        Tpkt::Control(tpdu, c) => {
            match (tpdu, dir) {
                (Tpdu::ConnectionRequest, Dir::Response) => {
                    return Err(m("connection request from the responder"))
                }
                (Tpdu::ConnectionConfirm, Dir::Request) => {
                    return Err(m("connection confirm from the initiator"))
                }
                _ => {}
            }
            Ok((msg(Body::Control(tpdu, c)), None))
        }
        Tpkt::Data {
            eot,
            visible,
            length,
        } => match visible.first() {
            None if length == 0 => Err(m("COTP data without user data")),
            None => Err(m("S7 header truncated")),
            Some(&pdu::PROTOCOL_ID) => {
                let (p, pdu_len) = pdu::parse(visible, length, eot, dir)?;
                let rest = (!eot).then(|| pdu_len - length);
                Ok((msg(Body::S7(p)), rest))
            }
            Some(&plus::PROTOCOL_ID) => {
                let p = plus::parse(visible, length, eot, ctx.plus_continues)?;
                Ok((msg(Body::Plus(p)), None))
            }
            Some(_) => Err(m("not S7comm or S7comm-plus (protocol id)")),
        },
    }
}

impl<'a> Message<'a> {
    pub fn dir(&self) -> Dir {
        self.dir
    }

    /// The COTP TPDU type.
    pub fn tpdu(&self) -> Tpdu {
        match self.body {
            Body::Control(t, _) => t,
            _ => Tpdu::Data,
        }
    }

    /// The TSAP the connection request of this stream called (for requests: the
    /// initiator's connection request), or the TSAP a connection request itself calls.
    pub fn tsap(&self) -> Tsap {
        match self.body {
            Body::Control(Tpdu::ConnectionRequest, c) => c.called,
            _ => self.tsap,
        }
    }

    /// The fields of a COTP control TPDU.
    pub fn control(&self) -> Option<Control> {
        match self.body {
            Body::Control(_, c) => Some(c),
            _ => None,
        }
    }

    /// The S7comm PDU.
    pub fn pdu(&self) -> Option<&Pdu<'a>> {
        match &self.body {
            Body::S7(p) => Some(p),
            _ => None,
        }
    }

    /// The S7comm-plus PDU.
    pub fn plus(&self) -> Option<Plus> {
        match self.body {
            Body::Plus(p) => Some(p),
            _ => None,
        }
    }

    pub fn rosctr(&self) -> Option<Rosctr> {
        self.pdu().map(|p| p.rosctr)
    }

    /// The job function (of a job or an acknowledgement).
    pub fn function(&self) -> Option<Function> {
        self.pdu().and_then(Pdu::function)
    }

    /// The userdata parameter head.
    pub fn userdata(&self) -> Option<Userdata> {
        self.pdu().and_then(|p| p.userdata)
    }

    /// The address items of a read-var or write-var job or of a cyclic subscription.
    pub fn items(&self) -> Items<'a> {
        match self.pdu().map(|p| p.detail) {
            Some(Detail::Items(items)) => items,
            _ => Items::empty(),
        }
    }

    /// The PI service of a plc-control or plc-stop job.
    pub fn pi_service(&self) -> Option<PiService> {
        self.pdu().and_then(|p| pdu::pi_service(&p.detail))
    }

    /// The PI service name as sent (`_INSE`, `P_PROGRAM`, …).
    pub fn pi_service_name(&self) -> Option<&'a [u8]> {
        match self.pdu().map(|p| p.detail) {
            Some(Detail::Pi { name, .. }) => Some(name),
            _ => None,
        }
    }

    /// Whether the message asks the receiver to do something (see the module docs).
    pub fn is_request(&self) -> bool {
        let from_initiator = self.dir == Dir::Request;
        match &self.body {
            Body::Control(..) => false,
            Body::Plus(_) => from_initiator,
            Body::S7(p) => match p.rosctr {
                Rosctr::Job => {
                    from_initiator
                        || !matches!(
                            p.function(),
                            Some(Function::DownloadBlock | Function::DownloadEnded)
                        )
                }
                Rosctr::Ack | Rosctr::AckData => false,
                Rosctr::Userdata => {
                    from_initiator || p.userdata.is_some_and(|u| u.kind == UserdataType::Request)
                }
                Rosctr::Unknown(_) => from_initiator,
            },
        }
    }

    pub fn op(&self) -> Op {
        let what = match &self.body {
            Body::Control(tpdu, c) => What::Cotp {
                tpdu: *tpdu,
                calling: c.calling.number(),
                called: c.called.number(),
                tpdu_size: c.tpdu_size,
            },
            Body::Plus(p) => What::Plus {
                version: p.version,
                opcode: p.opcode,
                function: p.function,
            },
            Body::S7(p) => {
                let detail = match p.detail {
                    Detail::None => OpDetail::None,
                    Detail::Setup { pdu_size } => OpDetail::PduSize(pdu_size),
                    Detail::Items(mut items) => OpDetail::Items {
                        count: items.specs(),
                        first: items.next(),
                    },
                    // plc-stop names P_PROGRAM too: its function says it all.
                    Detail::Pi { .. } if p.function() == Some(Function::PlcStop) => OpDetail::None,
                    Detail::Pi { name, block } => OpDetail::Pi {
                        service: PiService::from_wire(name),
                        block,
                    },
                    Detail::Block(block) => OpDetail::Block(block),
                    Detail::Szl { id, index } => OpDetail::Szl { id, index },
                    Detail::Count(count) => OpDetail::Items { count, first: None },
                };
                What::S7 {
                    rosctr: p.rosctr,
                    pdu_ref: p.pdu_ref,
                    function: p
                        .params
                        .first()
                        .copied()
                        .filter(|_| p.rosctr != Rosctr::Userdata),
                    userdata: p.userdata,
                    error: p.error.filter(|&e| e != (0, 0)),
                    detail,
                }
            }
        };
        Op {
            tsap: match self.body {
                Body::Control(..) => None,
                _ => self.tsap.number(),
            },
            response: self.dir == Dir::Response,
            what,
        }
    }
}

/// What an S7 message asked for, for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    /// The called TSAP of the stream's connection request, when it was two bytes.
    pub tsap: Option<u16>,
    /// Sent by the responder.
    pub response: bool,
    pub what: What,
}

/// The kind of message an [`Op`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// A COTP TPDU other than data.
    Cotp {
        tpdu: Tpdu,
        calling: Option<u16>,
        called: Option<u16>,
        tpdu_size: Option<u16>,
    },
    /// An S7comm PDU.
    S7 {
        rosctr: Rosctr,
        pdu_ref: u16,
        /// The job function (jobs and acknowledgements).
        function: Option<u8>,
        userdata: Option<Userdata>,
        /// Error class and code of an acknowledgement, when not 0.
        error: Option<(u8, u8)>,
        detail: OpDetail,
    },
    /// An S7comm-plus PDU.
    Plus {
        version: PlusVersion,
        opcode: Option<PlusOpcode>,
        function: Option<u16>,
    },
}

/// What an S7comm operation says beyond its function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpDetail {
    None,
    PduSize(u16),
    /// The number of address (or result) items, and the first address.
    Items {
        count: u8,
        first: Option<Item>,
    },
    Pi {
        service: PiService,
        block: Option<Block>,
    },
    Block(Option<Block>),
    Szl {
        id: u16,
        index: u16,
    },
}

impl Op {
    pub fn describe(&self, out: &mut dyn Fields) {
        match self.what {
            What::Cotp {
                tpdu,
                calling,
                called,
                tpdu_size,
            } => {
                code_field(out, "tpdu", tpdu.name(), u8::from(tpdu).into());
                if let Some(t) = calling {
                    out.number("calling_tsap", t.into());
                }
                if let Some(t) = called {
                    out.number("called_tsap", t.into());
                }
                if let Some(s) = tpdu_size {
                    out.number("tpdu_size", s.into());
                }
            }
            What::Plus {
                version,
                opcode,
                function,
            } => {
                out.flag("s7comm_plus", true);
                code_field(out, "version", version.name(), u8::from(version).into());
                if let Some(o) = opcode {
                    code_field(out, "opcode", o.name(), u8::from(o).into());
                }
                if let Some(f) = function {
                    code_field(out, "function", PlusFunction::from(f).name(), f.into());
                }
            }
            What::S7 {
                rosctr,
                pdu_ref,
                function,
                userdata,
                error,
                detail,
            } => {
                code_field(out, "rosctr", rosctr.name(), u8::from(rosctr).into());
                if let Some(f) = function {
                    code_field(out, "function", Function::from(f).name(), f.into());
                }
                if let Some(u) = userdata {
                    code_field(out, "type", u.kind.name(), u8::from(u.kind).into());
                    code_field(out, "group", u.group.name(), u8::from(u.group).into());
                    let name = subfunction_name(u.group, u.subfunction);
                    code_field(out, "function", name, u.subfunction.into());
                }
                out.number("pdu_ref", pdu_ref.into());
                describe_detail(&detail, out);
                if let Some((class, code)) = error {
                    let class_code = ErrorClass::from(class);
                    code_field(out, "error_class", class_code.name(), class.into());
                    out.number("error_code", code.into());
                }
            }
        }
        if let Some(t) = self.tsap {
            out.number("tsap", t.into());
        }
        if self.response {
            out.flag("response", true);
        }
    }
}

fn describe_detail(detail: &OpDetail, out: &mut dyn Fields) {
    match *detail {
        OpDetail::None => {}
        OpDetail::PduSize(s) => out.number("pdu_size", s.into()),
        OpDetail::Items { count, first } => {
            out.number("items", count.into());
            match first {
                Some(
                    item @ Item::Any {
                        area,
                        transport,
                        count,
                        address,
                        ..
                    },
                ) => {
                    code_field(out, "area", area.name(), u8::from(area).into());
                    if let Some(db) = item.db() {
                        out.number("db", db.into());
                    }
                    if let Some(start) = item.start() {
                        out.number("address", start.into());
                    }
                    if transport == TransportSize::Bit {
                        out.number("bit", (address & 7).into());
                    }
                    code_field(
                        out,
                        "transport",
                        transport.name(),
                        u8::from(transport).into(),
                    );
                    out.number("count", count.into());
                }
                Some(Item::DbRead { db, start, bytes }) => {
                    out.text("area", "db");
                    out.number("db", db.into());
                    out.number("address", start.into());
                    out.number("count", bytes.into());
                }
                Some(Item::Other { syntax }) => {
                    code_field(out, "syntax", syntax.name(), u8::from(syntax).into());
                }
                None => {}
            }
        }
        OpDetail::Pi { service, block } => {
            out.text("pi_service", service.name());
            describe_block(block, out);
        }
        OpDetail::Block(block) => describe_block(block, out),
        OpDetail::Szl { id, index } => {
            out.number("szl_id", id.into());
            out.number("szl_index", index.into());
        }
    }
}

fn describe_block(block: Option<Block>, out: &mut dyn Fields) {
    if let Some(Block { kind, number }) = block {
        code_field(out, "block_type", kind.name(), u8::from(kind).into());
        out.number("block", number.into());
    }
}

#[cfg(test)]
mod test;
