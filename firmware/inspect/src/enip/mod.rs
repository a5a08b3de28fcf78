//! EtherNet/IP: the encapsulation layer (TCP and UDP 44818) with CIP explicit messages,
//! and implicit I/O (CPF packets on UDP 2222, [`io`]).
//!
//! References: *The CIP Networks Library, Volume 2: EtherNet/IP Adaptation of CIP* —
//! chapter 2 (encapsulation: the 24-byte header 2-3, commands 2-4, status codes 2-3.3,
//! the Common Packet Format 2-6) and chapter 3 (implicit I/O over UDP 3-2.2); Volume 1
//! for CIP itself ([`cip`]).
//!
//! An encapsulation message is a 24-byte little-endian header (command, length, session
//! handle, status, sender context, options) and `length` bytes of command data.
//! SendRRData (unconnected, UCMM) and SendUnitData (connected, class 3) carry one CIP
//! message in a Common Packet Format; its request or response is checked down to every
//! path segment and embedded request (see [`cip`]).
//!
//! The encapsulation header does not say whether a message is a request or a reply.
//! Direction decides, except where the message itself says: a CIP message in
//! SendRRData/SendUnitData is a request when its service code has bit 7 clear, whoever
//! sends it; List Identity, List Services and List Interfaces from the responder are
//! requests when they carry no data (replies always do).

pub mod cip;
pub mod io;
pub mod repr;

pub use io::{parse_io, IoMessage, IoOp};

use crate::macros::codes;
use crate::{code_field, Dir, Fields, Framing, Malformed, Protocol, Reader};

use cip::{Kind, Request, Response};

/// The encapsulation header.
pub const HEADER_LEN: usize = 24;
/// The longest command data the specification allows (Volume 2, 2-3.1).
pub const MAX_LENGTH: usize = 65511;

const P: Protocol = Protocol::Enip;

codes! {
    /// Encapsulation commands (Volume 2, table 2-3.2).
    pub enum Command(u16) {
        Nop = 0x0000 => "nop",
        ListServices = 0x0004 => "list-services",
        ListIdentity = 0x0063 => "list-identity",
        ListInterfaces = 0x0064 => "list-interfaces",
        RegisterSession = 0x0065 => "register-session",
        UnregisterSession = 0x0066 => "unregister-session",
        SendRrData = 0x006f => "send-rr-data",
        SendUnitData = 0x0070 => "send-unit-data",
        IndicateStatus = 0x0072 => "indicate-status",
        Cancel = 0x0073 => "cancel",
    }
}

codes! {
    /// Encapsulation status codes (Volume 2, table 2-3.3).
    pub enum Status(u32) {
        Success = 0x0000 => "success",
        InvalidCommand = 0x0001 => "invalid-command",
        InsufficientMemory = 0x0002 => "insufficient-memory",
        IncorrectData = 0x0003 => "incorrect-data",
        InvalidSessionHandle = 0x0064 => "invalid-session-handle",
        InvalidLength = 0x0065 => "invalid-length",
        UnsupportedProtocol = 0x0069 => "unsupported-protocol-revision",
    }
}

codes! {
    /// Common Packet Format item types (Volume 2, table 2-6.3).
    pub enum ItemType(u16) {
        NullAddress = 0x0000 => "null-address",
        ListIdentity = 0x000c => "list-identity",
        ConnectedAddress = 0x00a1 => "connected-address",
        ConnectedData = 0x00b1 => "connected-data",
        UnconnectedData = 0x00b2 => "unconnected-data",
        ListServices = 0x0100 => "list-services",
        SockaddrOt = 0x8000 => "sockaddr-o-t",
        SockaddrTo = 0x8001 => "sockaddr-t-o",
        SequencedAddress = 0x8002 => "sequenced-address",
    }
}

/// How long the encapsulation message at the start of `head` is: the header and its
/// `length`. Any length is framed (a message longer than the stream buffer is judged on
/// its first bytes); bytes whose options field is not 0 cannot be EtherNet/IP (the
/// specification has receivers discard them) and lose the framing.
pub fn frame(head: &[u8]) -> Framing {
    if head.len() < HEADER_LEN {
        return Framing::NeedMore(HEADER_LEN);
    }
    if head[20..24] != [0, 0, 0, 0] {
        return Framing::Invalid(Malformed::new(P, "options are not 0"));
    }
    Framing::Length(HEADER_LEN + usize::from(u16::from_le_bytes([head[2], head[3]])))
}

/// What a stream remembers between encapsulation messages: nothing (each message stands
/// alone; the session handle is data, checked by the target).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Session;

impl Session {
    /// One framed message of the stream (see `stream.rs`).
    pub fn message<'s>(
        &mut self,
        bytes: &'s [u8],
        total: usize,
        dir: Dir,
        _scratch: &'s mut [u8],
    ) -> Option<Result<crate::Message<'s>, Malformed>> {
        Some(parse(bytes, total, dir).map(crate::Message::Enip))
    }

    /// No message is half assembled.
    pub fn is_idle(&self) -> bool {
        true
    }
}

/// The CIP message an encapsulation message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cip<'a> {
    Request(Request<'a>),
    Response(Response<'a>),
}

/// A checked encapsulation message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    bytes: &'a [u8],
    total: usize,
    dir: Dir,
    request: bool,
    cip: Option<Cip<'a>>,
    /// SendUnitData: the connection id of the connected address item.
    connection: Option<u32>,
    /// SendUnitData: the sequence count before the CIP message.
    sequence: Option<u16>,
}

/// Parses one encapsulation message: `bytes` is the whole message, or its first part
/// when the message (`total` bytes) is longer than the stream buffer.
pub fn parse(bytes: &[u8], total: usize, dir: Dir) -> Result<Message<'_>, Malformed> {
    let mut r = Reader::new(P, bytes);
    let short = "encapsulation header truncated";
    let command = Command::from(r.le_u16(short)?);
    let length = usize::from(r.le_u16(short)?);
    let _session = r.le_u32(short)?;
    let status = r.le_u32(short)?;
    r.skip(8, short)?;
    if r.le_u32(short)? != 0 {
        return Err(r.error("options are not 0"));
    }
    if total != HEADER_LEN + length || bytes.len() > total {
        return Err(r.error("length disagrees with the header"));
    }
    if length > MAX_LENGTH {
        return Err(r.error("length above 65511"));
    }
    let cut = bytes.len() < total;
    let mut msg = Message {
        bytes,
        total,
        dir,
        request: dir == Dir::Request,
        cip: None,
        connection: None,
        sequence: None,
    };
    use Command as C;
    match command {
        C::ListServices | C::ListIdentity | C::ListInterfaces => {
            // Requests carry no data; what the initiator sends is judged either way.
            msg.request = dir == Dir::Request || length == 0;
            if length > 0 && status == 0 {
                items(&mut r, cut)?;
            }
        }
        C::RegisterSession if (msg.request || status == 0) && length != 4 => {
            return Err(r.error("register-session data is not 4 bytes"));
        }
        C::UnregisterSession if length != 0 => {
            return Err(r.error("unregister-session carries data"));
        }
        C::SendRrData | C::SendUnitData if msg.request || status == 0 => {
            msg.send_data(&mut r, command, cut)?;
        }
        _ => {}
    }
    if msg.request && status != 0 {
        return Err(r.error("status is not 0 in a request"));
    }
    Ok(msg)
}

/// Walks the items of a Common Packet Format to its end.
fn items(r: &mut Reader<'_>, cut: bool) -> Result<(), Malformed> {
    let count = r.le_u16("item count missing")?;
    for _ in 0..count {
        if cut && r.remaining() < 4 {
            return Ok(());
        }
        r.skip(2, "item header truncated")?;
        let len = usize::from(r.le_u16("item header truncated")?);
        if len > r.remaining() {
            return if cut {
                Ok(())
            } else {
                Err(r.error("item longer than the message"))
            };
        }
        r.skip(len, "item truncated")?;
    }
    if !r.is_empty() && !cut {
        return Err(r.error("bytes after the last item"));
    }
    Ok(())
}

impl<'a> Message<'a> {
    /// SendRRData / SendUnitData: interface handle, timeout, and a CPF with an address
    /// item, a data item holding one CIP message, and optional further items.
    fn send_data(
        &mut self,
        r: &mut Reader<'a>,
        command: Command,
        cut: bool,
    ) -> Result<(), Malformed> {
        let short = "command data truncated";
        if r.le_u32(short)? != 0 {
            return Err(r.error("interface handle is not 0 (CIP)"));
        }
        let _timeout = r.le_u16(short)?;
        let count = r.le_u16(short)?;
        if count < 2 {
            return Err(r.error("fewer than two items"));
        }
        let connected = command == Command::SendUnitData;
        let address = ItemType::from(r.le_u16(short)?);
        let len = r.le_u16(short)?;
        match (connected, address, len) {
            (false, ItemType::NullAddress, 0) => {}
            (true, ItemType::ConnectedAddress, 4) => {
                self.connection = Some(r.le_u32(short)?);
            }
            (false, _, _) => return Err(r.error("send-rr-data without a null address item")),
            (true, _, _) => return Err(r.error("send-unit-data without a connected address item")),
        }
        let data = ItemType::from(r.le_u16(short)?);
        let len = usize::from(r.le_u16(short)?);
        match (connected, data) {
            (false, ItemType::UnconnectedData) | (true, ItemType::ConnectedData) => {}
            (false, _) => return Err(r.error("send-rr-data without an unconnected data item")),
            (true, _) => return Err(r.error("send-unit-data without a connected data item")),
        }
        let (body, body_cut) = if len <= r.remaining() {
            (r.take(len, short)?, false)
        } else if cut {
            (r.take(r.remaining(), short)?, true)
        } else {
            return Err(r.error("data item longer than the message"));
        };
        let mut b = Reader::new(P, body);
        if connected {
            self.sequence = Some(b.le_u16("sequence count missing")?);
        }
        let cip = b.rest();
        let first = *cip.first().ok_or(r.error("empty CIP message"))?;
        self.request = first & 0x80 == 0;
        self.cip = Some(if self.request {
            Cip::Request(cip::parse_request(cip, body_cut)?)
        } else {
            Cip::Response(cip::parse_response(cip, body_cut)?)
        });
        if body_cut {
            return Ok(());
        }
        // Further items: socket addresses for Forward Open (Volume 2, 2-6.3.3), or
        // others, walked for shape.
        for _ in 2..count {
            if cut && r.remaining() < 4 {
                return Ok(());
            }
            let ty = ItemType::from(r.le_u16("item header truncated")?);
            let len = usize::from(r.le_u16("item header truncated")?);
            if matches!(ty, ItemType::SockaddrOt | ItemType::SockaddrTo) && len != 16 {
                return Err(r.error("socket address item is not 16 bytes"));
            }
            if len > r.remaining() {
                return if cut {
                    Ok(())
                } else {
                    Err(r.error("item longer than the message"))
                };
            }
            r.skip(len, "item truncated")?;
        }
        if !r.is_empty() && !cut {
            return Err(r.error("bytes after the last item"));
        }
        Ok(())
    }

    pub fn command_code(&self) -> u16 {
        u16::from_le_bytes([self.bytes[0], self.bytes[1]])
    }

    pub fn command(&self) -> Command {
        Command::from(self.command_code())
    }

    /// The length of the command data (after the header).
    pub fn length(&self) -> usize {
        self.total - HEADER_LEN
    }

    pub fn session(&self) -> u32 {
        u32::from_le_bytes([self.bytes[4], self.bytes[5], self.bytes[6], self.bytes[7]])
    }

    pub fn status(&self) -> Status {
        Status::from(u32::from_le_bytes([
            self.bytes[8],
            self.bytes[9],
            self.bytes[10],
            self.bytes[11],
        ]))
    }

    pub fn sender_context(&self) -> &'a [u8] {
        &self.bytes[12..20]
    }

    /// The command data as far as it was seen.
    pub fn data(&self) -> &'a [u8] {
        &self.bytes[HEADER_LEN..]
    }

    /// Whether the message is longer than what was seen.
    pub fn is_cut(&self) -> bool {
        self.bytes.len() < self.total
    }

    pub fn dir(&self) -> Dir {
        self.dir
    }

    /// Whether the message asks for something: see the module documentation.
    pub fn is_request(&self) -> bool {
        self.request
    }

    /// The CIP message of SendRRData / SendUnitData.
    pub fn cip(&self) -> Option<Cip<'a>> {
        self.cip
    }

    /// The CIP request, when the message carries one.
    pub fn cip_request(&self) -> Option<Request<'a>> {
        match self.cip {
            Some(Cip::Request(r)) => Some(r),
            _ => None,
        }
    }

    /// SendUnitData: the connection the message travels on.
    pub fn connection(&self) -> Option<u32> {
        self.connection
    }

    /// SendUnitData: the class 3 sequence count.
    pub fn sequence(&self) -> Option<u16> {
        self.sequence
    }

    pub fn op(&self) -> Op {
        let status = u32::from(self.status());
        let mut op = Op {
            command: self.command_code(),
            session: self.session(),
            response: !self.request,
            status: (!self.request && status != 0).then_some(status),
            connection: self.connection,
            cip: None,
        };
        op.cip = match self.cip {
            Some(Cip::Request(r)) => Some(CipOp::of_request(&r)),
            Some(Cip::Response(r)) => Some(CipOp {
                service: r.service(),
                general_status: Some(u8::from(r.general_status())),
                ..CipOp::default()
            }),
            None => None,
        };
        op
    }
}

/// A tag name, or its first bytes, for events (`Op` is plain `Copy` data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TagText {
    bytes: [u8; TagText::CAP],
    len: u8,
    /// The name was longer than [`TagText::CAP`].
    pub truncated: bool,
}

impl TagText {
    pub const CAP: usize = 32;

    pub fn as_str(&self) -> &str {
        // Only printable ASCII is ever written (see `Path::tag`).
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("?")
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What the CIP request (or response) of a message was, for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CipOp {
    /// The service code (without the reply bit).
    pub service: u8,
    /// Which table names the service (from the class the request path addresses).
    pub scope: Option<cip::Scope>,
    /// The class addressed (for Forward Open: the connection's application object).
    pub class: Option<u32>,
    pub instance: Option<u32>,
    pub attribute: Option<u32>,
    /// The path names a symbol (a Logix tag).
    pub symbolic: bool,
    pub tag: TagText,
    /// The request came through an Unconnected Send: the fields are the embedded one's.
    pub routed: bool,
    /// Multiple Service Packet: how many requests it carries.
    pub requests: Option<u16>,
    /// Forward Open: the transport class.
    pub transport_class: Option<u8>,
    /// Responses: the general status.
    pub general_status: Option<u8>,
}

impl CipOp {
    fn of_request(r: &Request<'_>) -> CipOp {
        // Through an Unconnected Send, what matters is the request it carries.
        let (r, routed) = match r.kind() {
            Kind::UnconnectedSend => match r.embedded().next() {
                Some(inner) => (inner, true),
                None => (*r, false),
            },
            _ => (*r, false),
        };
        let object = r.object_path();
        let t = object.target();
        let mut tag = TagText::default();
        if t.symbolic {
            let (n, whole) = object.tag(&mut tag.bytes, true);
            tag.len = n as u8;
            tag.truncated = !whole;
        }
        let requests = match r.kind() {
            Kind::Multiple => r.data().get(..2).map(|b| u16::from_le_bytes([b[0], b[1]])),
            _ => None,
        };
        CipOp {
            service: r.service(),
            scope: r.target().scope(),
            class: t.class,
            instance: t.instance,
            attribute: t.attribute,
            symbolic: t.symbolic,
            tag,
            routed,
            requests,
            transport_class: r.forward_open().map(|f| f.transport_class()),
            general_status: None,
        }
    }
}

/// What an encapsulation message asked for or answered, for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub command: u16,
    pub session: u32,
    /// A reply (encapsulation reply or CIP response).
    pub response: bool,
    /// A reply's encapsulation status, when not success.
    pub status: Option<u32>,
    /// SendUnitData: the connection id.
    pub connection: Option<u32>,
    pub cip: Option<CipOp>,
}

impl Op {
    pub fn describe(&self, out: &mut dyn Fields) {
        let command = Command::from(self.command);
        code_field(out, "command", command.name(), self.command.into());
        out.number("session", self.session.into());
        if let Some(c) = self.connection {
            out.number("connection", c.into());
        }
        if let Some(cip) = &self.cip {
            // Replies carry no path: object-specific codes go without a name.
            let scope = if self.response { None } else { cip.scope };
            let name = cip::service_name(cip.service, scope);
            code_field(out, "service", name, cip.service.into());
            if let Some(class) = cip.class {
                let name = u16::try_from(class)
                    .ok()
                    .and_then(|c| cip::Class::from(c).name());
                code_field(out, "class", name, class.into());
            }
            if let Some(i) = cip.instance {
                out.number("instance", i.into());
            }
            if let Some(a) = cip.attribute {
                out.number("attribute", a.into());
            }
            if !cip.tag.is_empty() {
                out.text("tag", cip.tag.as_str());
                if cip.tag.truncated {
                    out.flag("tag_truncated", true);
                }
            }
            if let Some(n) = cip.requests {
                out.number("requests", n.into());
            }
            if let Some(t) = cip.transport_class {
                out.number("transport_class", t.into());
            }
            if cip.routed {
                out.flag("routed", true);
            }
            if let Some(s) = cip.general_status {
                let name = cip::GeneralStatus::from(s).name();
                code_field(out, "general_status", name, s.into());
            }
        }
        if self.response {
            out.flag("response", true);
        }
        if let Some(s) = self.status {
            code_field(out, "status", Status::from(s).name(), s.into());
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::vec::Vec;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn msg(bytes: &[u8], dir: Dir) -> Result<Message<'_>, Malformed> {
        parse(bytes, bytes.len(), dir)
    }

    fn line(op: Op) -> std::string::String {
        std::format!("{}", crate::Op::Enip(op))
    }

    // Captured on loopback between cpppo 5.2.5 (`python -m cpppo.server.enip
    // Setpoint=INT[10] Level=REAL`) and its client and pycomm3 1.2.16.
    const REGISTER: &str = "65000400000000000000000000000000000000000000000001000000";
    const REGISTERED: &str = "650004009e05d8870000000000000000000000000000000001000000";
    const READ_TAG: &str = "6f002e009e05d88700000000300000000000000000000000000000000800020000000000b2001e00520220062401059d10004c069108536574706f696e742800040001000100";
    const READ_REPLY: &str = "6f001e009e05d88700000000300000000000000000000000000000000800020000000000b2000e00cc000000c3000000000000000000";
    const WRITE_TAG: &str = "6f0032009e05d88700000000320000000000000000000000000000000800020000000000b2002200520220062401059d14004d069108536574706f696e742801c3000100070001000100";
    const LIST_IDENTITY: &str = "63000000635de222000000005f7079636f6d6d5f00000000";
    const IDENTITY: &str = "63003c00635de222000000005f7079636f6d6d5f0000000001000c00360001000002af1200000000000000000000000001000e003600140b60311a066c0014313735362d4c36312f42204c4f47495835353631ff";
    const CONNECTED: &str = "70001c00635de222000000005f7079636f6d6d5f00000000000000000a000200a100040082d87590b10008000100010220642401";
    const CONNECTED_REPLY: &str = "70003200635de222000000005f7079636f6d6d5f00000000000000000a000200a100040082d87590b1001e00010081000000000007000000000000000000000000000000000000000000";
    const UNREGISTER: &str = "66000000635de222000000005f7079636f6d6d5f00000000";

    #[test]
    fn framing_from_the_header() {
        assert_eq!(frame(&[0x65, 0]), Framing::NeedMore(HEADER_LEN));
        let b = hex(REGISTER);
        assert_eq!(frame(&b), Framing::Length(28));
        assert_eq!(frame(&b[..24]), Framing::Length(28));
        let mut bad = b.clone();
        bad[21] = 1;
        assert!(matches!(frame(&bad), Framing::Invalid(_)));
        // The largest length still frames: the stream judges it on its first bytes.
        let mut big = b;
        big[2..4].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(frame(&big), Framing::Length(24 + 65535));
    }

    #[test]
    fn sessions_from_cpppo_and_pycomm3() {
        let b = hex(REGISTER);
        let m = msg(&b, Dir::Request).unwrap();
        assert!(m.is_request());
        assert_eq!(m.command(), Command::RegisterSession);
        assert_eq!(line(m.op()), "enip command=register-session session=0");
        let b = hex(REGISTERED);
        let m = msg(&b, Dir::Response).unwrap();
        assert!(!m.is_request());
        assert_eq!(m.session(), 0x87d8_059e);
        let b = hex(UNREGISTER);
        assert!(msg(&b, Dir::Request).unwrap().is_request());
        let mut bad = hex(REGISTER);
        bad[2] = 2;
        bad.truncate(26);
        assert!(
            msg(&bad, Dir::Request).is_err(),
            "register-session of 2 bytes"
        );
    }

    #[test]
    fn tag_reads_and_writes_through_unconnected_send() {
        let b = hex(READ_TAG);
        let m = msg(&b, Dir::Request).unwrap();
        assert!(m.is_request());
        let r = m.cip_request().unwrap();
        assert_eq!(r.service_name(), Some("unconnected-send"));
        assert_eq!(
            line(m.op()),
            "enip command=send-rr-data session=2279081374 service=read-tag tag=Setpoint[0] routed"
        );
        let b = hex(READ_REPLY);
        let m = msg(&b, Dir::Response).unwrap();
        assert!(!m.is_request());
        assert_eq!(
            line(m.op()),
            "enip command=send-rr-data session=2279081374 service=76 general_status=success response"
        );
        let b = hex(WRITE_TAG);
        let m = msg(&b, Dir::Request).unwrap();
        let inner = m.cip_request().unwrap().embedded().next().unwrap();
        assert_eq!(inner.service_name(), Some("write-tag"));
        assert_eq!(m.op().cip.unwrap().tag.as_str(), "Setpoint[1]");
    }

    #[test]
    fn list_identity_either_way() {
        let b = hex(LIST_IDENTITY);
        let m = msg(&b, Dir::Request).unwrap();
        assert!(m.is_request());
        let b = hex(IDENTITY);
        let m = msg(&b, Dir::Response).unwrap();
        assert!(!m.is_request());
        // What the initiator sends is judged, data or not.
        assert!(msg(&b, Dir::Request).unwrap().is_request());
        // A request from the responder (a device scanning too) is a request.
        let b = hex(LIST_IDENTITY);
        assert!(msg(&b, Dir::Response).unwrap().is_request());
        let mut bad = hex(IDENTITY);
        bad[29] = 0xff; // item length beyond the message
        assert!(msg(&bad, Dir::Response).is_err());
    }

    #[test]
    fn class_3_connected_messages() {
        let b = hex(CONNECTED);
        let m = msg(&b, Dir::Request).unwrap();
        assert!(m.is_request());
        assert_eq!(m.connection(), Some(0x9075_d882));
        assert_eq!(m.sequence(), Some(1));
        assert_eq!(
            line(m.op()),
            "enip command=send-unit-data session=585260387 connection=2423642242 \
             service=get-attributes-all class=program-name instance=1"
        );
        let b = hex(CONNECTED_REPLY);
        let m = msg(&b, Dir::Response).unwrap();
        assert!(!m.is_request());
        // A connected message with an unconnected data item is malformed.
        let mut bad = hex(CONNECTED);
        bad[40] = 0xb2;
        assert_eq!(
            msg(&bad, Dir::Request).unwrap_err().what,
            "send-unit-data without a connected data item"
        );
    }

    #[test]
    fn a_request_from_the_responder_is_a_request() {
        let b = hex(READ_TAG);
        assert!(msg(&b, Dir::Response).unwrap().is_request());
    }

    #[test]
    fn malformed_headers_and_items() {
        let good = hex(READ_TAG);
        let cases: &[(usize, u8, &str)] = &[
            (8, 1, "status is not 0 in a request"),
            (20, 1, "options are not 0"),
            (24, 1, "interface handle is not 0 (CIP)"),
            (30, 1, "fewer than two items"),
            (32, 0xa1, "send-rr-data without a null address item"),
            (36, 0xb1, "send-rr-data without an unconnected data item"),
            (38, 0x1f, "data item longer than the message"),
            (41, 0x1f, "request path truncated"),
            (68, 0x20, "route path holds a segment other than a port"),
        ];
        for &(at, value, what) in cases {
            let mut b = good.clone();
            b[at] = value;
            let e = msg(&b, Dir::Request).err().map(|e| e.what);
            assert_eq!(e, Some(what), "byte {at}");
        }
        // The length disagrees with the bytes, and trailing bytes after the items.
        assert!(parse(&good, good.len() + 1, Dir::Request).is_err());
        let mut long = good.clone();
        long.push(0);
        long[2] += 1;
        assert_eq!(
            msg(&long, Dir::Request).unwrap_err().what,
            "bytes after the last item"
        );
        assert!(msg(&good[..20], Dir::Request).is_err());
    }

    #[test]
    fn a_long_message_is_judged_on_its_first_bytes() {
        // A write-tag of 2000 INTs, of which only the first 100 bytes are seen.
        let mut out = [0u8; 5000];
        let values = [0x11u8; 4000];
        let mut data = std::vec![0xc3, 0x00, 0xd0, 0x07];
        data.extend_from_slice(&values);
        let n = repr::RequestRepr {
            service: 0x4d,
            path: &[repr::SegmentRepr::Symbol(b"Big")],
            data: &data,
        }
        .emit(&mut out)
        .unwrap();
        let cip = out[..n].to_vec();
        let n = repr::emit_send_rr_data(&mut out, 1, &cip).unwrap();
        let m = parse(&out[..100], n, Dir::Request).unwrap();
        assert!(m.is_cut());
        let r = m.cip_request().unwrap();
        assert_eq!(r.service_name(), Some("write-tag"));
        assert!(r.is_cut());
    }
}
