//! DNP3 over TCP: the link layer (with its CRCs), transport reassembly, and the
//! application layer (function codes, object headers).
//!
//! References: IEEE 1815-2012 (DNP3): the data link layer (frame format, CRC, link
//! function codes), the transport function, the application layer (fragments, object
//! headers) and the object library; DNP3 over TCP/IP carries link frames as they are on
//! the byte stream, on port 20000.
//!
//! The stream frames link frames ([`frame`]: start bytes, header CRC, length). Each
//! frame goes to [`Session::message`], which checks the CRC of every 16-byte block of
//! user data and feeds the transport function: segments are appended in order to the
//! fragment being assembled in the stream's spare buffer (`scratch`), and the
//! application fragment is parsed when its last segment (FIN) arrives. Link-layer
//! frames without user data (reset link, test link, link status, acknowledgements) are
//! messages of their own.
//!
//! Transport, decided for a firewall on TCP (where nothing is lost or reordered, so
//! what the specification tolerates on a noisy serial line is a sign of tampering, and
//! where two receivers that recover differently would see different requests):
//! - a segment without FIR and no fragment in progress, one whose sequence number is
//!   not the next, one from other link addresses than the fragment's, and a FIR
//!   segment while a fragment is in progress (IEEE 1815 restarts there; a receiver
//!   that appends instead would execute what the gatekeeper never judged) are
//!   *malformed*; the segments after it up to the next FIR are passed over silently;
//! - a fragment longer than `scratch` is malformed (said at the segment that overflows);
//! - user data in a frame whose link function carries none (anything but primary
//!   confirmed and unconfirmed user data, unknown functions included) is malformed: no
//!   receiver should take it as a transport segment, and none is left unjudged.
//!
//! One fragment is assembled at a time per direction: a multi-drop line behind a
//! terminal server that interleaves the segments of two outstations is reported as out
//! of sequence.
//!
//! What a message asks for ([`Message::is_request`]): application requests (every
//! function code but confirm and the three responses, unknown codes included) are
//! requests, whichever way they travel. Confirms answer responses; link-layer frames
//! manage the link; responses answer. Those are checked for shape only.

mod app;
mod emit;

pub use app::{
    object_size, Control, Function, Group, Indices, ListedIndices, ObjectHeader, Objects, Range,
    Size,
};
pub use emit::{HeaderRepr, LinkRepr, RequestRepr, ResponseRepr};

use crate::macros::codes;
use crate::{code_field, Dir, Fields, Framing, Malformed, Protocol};

/// The link header: start (2), length, control, destination (2), source (2), CRC (2).
pub const LINK_HEADER: usize = 10;
/// The most user data one link frame carries.
pub const MAX_USER_DATA: usize = 250;
/// A link frame: 10-byte header and up to 250 bytes of user data in CRC'd blocks.
pub const MAX_LINK_FRAME: usize = 292;
/// The most application data one transport segment carries.
pub const MAX_SEGMENT: usize = MAX_USER_DATA - 1;

const START: [u8; 2] = [0x05, 0x64];
const BLOCK: usize = 16;

const P: Protocol = Protocol::Dnp3;

codes! {
    /// Link-layer functions: the control byte's PRM bit (0x40) and function code (low
    /// nibble). Primary (0x4_) frames come from the station that starts a transaction,
    /// secondary (0x0_) ones answer it.
    pub enum LinkFunction(u8) {
        ResetLinkStates = 0x40 => "reset-link-states",
        ResetUserProcess = 0x41 => "reset-user-process",
        TestLinkStates = 0x42 => "test-link-states",
        ConfirmedUserData = 0x43 => "confirmed-user-data",
        UnconfirmedUserData = 0x44 => "unconfirmed-user-data",
        RequestLinkStatus = 0x49 => "request-link-status",
        Ack = 0x00 => "ack",
        Nack = 0x01 => "nack",
        LinkStatus = 0x0b => "link-status",
        NotSupported = 0x0f => "not-supported",
    }
}

impl LinkFunction {
    /// Whether frames of this function carry transport segments.
    pub fn carries_user_data(self) -> bool {
        matches!(
            self,
            LinkFunction::ConfirmedUserData | LinkFunction::UnconfirmedUserData
        )
    }
}

/// The DNP3 CRC-16 (polynomial 0x3D65, reflected, initial value 0, complemented).
pub fn crc(bytes: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &b in bytes {
        crc = (crc >> 8) ^ CRC_TABLE[usize::from((crc ^ u16::from(b)) as u8)];
    }
    !crc
}

const CRC_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u16;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xa6bc
            } else {
                c >> 1
            };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

fn crc_ok(block: &[u8], crc_bytes: &[u8]) -> bool {
    crc_bytes.len() == 2 && crc(block) == u16::from_le_bytes([crc_bytes[0], crc_bytes[1]])
}

/// The length of a link frame whose header has length byte `len` (5-255).
fn frame_len(len: u8) -> usize {
    let n = usize::from(len).saturating_sub(5);
    LINK_HEADER + n + 2 * n.div_ceil(BLOCK)
}

/// How long the link frame at the start of `head` is, from its header (start bytes,
/// length, header CRC).
pub fn frame(head: &[u8]) -> Framing {
    if head.iter().zip(START).any(|(&a, b)| a != b) {
        return Framing::Invalid(Malformed::new(P, "no link start bytes (0x05 0x64)"));
    }
    if head.len() < LINK_HEADER {
        return Framing::NeedMore(LINK_HEADER);
    }
    if head[2] < 5 {
        return Framing::Invalid(Malformed::new(P, "link length below 5"));
    }
    if !crc_ok(&head[..8], &head[8..10]) {
        return Framing::Invalid(Malformed::new(P, "bad link header CRC"));
    }
    Framing::Length(frame_len(head[2]))
}

/// The link header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Link {
    /// DIR (0x80), PRM (0x40), FCB (0x20), FCV or DFC (0x10), function (0x0F).
    pub control: u8,
    pub destination: u16,
    pub source: u16,
}

impl Link {
    pub fn function(&self) -> LinkFunction {
        LinkFunction::from(self.control & 0x4f)
    }

    /// DIR: the frame comes from a master.
    pub fn from_master(&self) -> bool {
        self.control & 0x80 != 0
    }

    /// PRM: the frame starts a link transaction.
    pub fn primary(&self) -> bool {
        self.control & 0x40 != 0
    }
}

/// Broadcast destinations (IEEE 1815-2012 data link layer): 0xFFFD (confirm required), 0xFFFE
/// (no confirm), 0xFFFF (optional confirm).
pub fn is_broadcast(address: u16) -> bool {
    address >= 0xfffd
}

/// Checks a whole link frame and the CRC of each data block; returns the header and
/// the number of user data bytes.
fn link_frame(bytes: &[u8], total: usize) -> Result<(Link, usize), Malformed> {
    if bytes.len() != total {
        return Err(Malformed::new(P, "truncated link frame"));
    }
    match frame(bytes) {
        Framing::Length(n) if n == bytes.len() => {}
        Framing::Invalid(e) => return Err(e),
        _ => {
            return Err(Malformed::new(
                P,
                "link frame length disagrees with its header",
            ))
        }
    }
    for chunk in bytes[LINK_HEADER..].chunks(BLOCK + 2) {
        let (block, crc) = chunk.split_at(chunk.len().saturating_sub(2));
        if !crc_ok(block, crc) {
            return Err(Malformed::new(P, "bad data block CRC"));
        }
    }
    let link = Link {
        control: bytes[3],
        destination: u16::from_le_bytes([bytes[4], bytes[5]]),
        source: u16::from_le_bytes([bytes[6], bytes[7]]),
    };
    Ok((link, usize::from(bytes[2]) - 5))
}

/// The user data bytes of a checked frame, block by block, without their CRCs.
fn user_blocks(frame: &[u8]) -> impl Iterator<Item = &[u8]> {
    frame[LINK_HEADER..]
        .chunks(BLOCK + 2)
        .map(|c| &c[..c.len().saturating_sub(2)])
}

/// Transport state of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Transport {
    /// Between fragments.
    #[default]
    Idle,
    /// A fragment is being gathered in `scratch`.
    Assembling,
    /// A broken fragment's segments are passed over until the next FIR (or its FIN).
    Discarding,
}

/// Transport-layer reassembly state of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Session {
    state: Transport,
    /// Bytes of the fragment gathered in `scratch`.
    assembled: u16,
    /// The sequence number the next segment must carry.
    next_seq: u8,
    /// The link addresses of the fragment being assembled.
    destination: u16,
    source: u16,
}

const FIN: u8 = 0x80;
const FIR: u8 = 0x40;

impl Session {
    /// Takes one complete link frame; returns a message when the frame completes one
    /// (a link-layer frame, or the last transport segment of an application fragment),
    /// `None` for a segment that does not finish its fragment. `scratch` holds the
    /// fragment being assembled between calls.
    pub fn message<'s>(
        &mut self,
        frame: &'s [u8],
        total: usize,
        dir: Dir,
        scratch: &'s mut [u8],
    ) -> Option<Result<crate::Message<'s>, Malformed>> {
        let (link, user) = match link_frame(frame, total) {
            Ok(v) => v,
            Err(e) => return Some(Err(e)),
        };
        let function = link.function();
        if !function.carries_user_data() {
            if user > 0 {
                return Some(Err(Malformed::new(
                    P,
                    "user data in a link frame that carries none",
                )));
            }
            return Some(Ok(crate::Message::Dnp3(Message::link(link, dir))));
        }
        if user == 0 {
            return Some(Err(Malformed::new(P, "user data frame without user data")));
        }
        let th = frame[LINK_HEADER];
        let (fir, fin, seq) = (th & FIR != 0, th & FIN != 0, th & 0x3f);
        let same_link = link.destination == self.destination && link.source == self.source;
        let fault = match (fir, self.state) {
            (true, Transport::Assembling) => Some("transport segment FIR inside a fragment"),
            (true, _) => {
                self.state = Transport::Assembling;
                self.assembled = 0;
                self.destination = link.destination;
                self.source = link.source;
                None
            }
            (false, Transport::Idle) => Some("transport segment without a first segment"),
            (false, Transport::Discarding) => {
                if fin {
                    self.state = Transport::Idle;
                }
                return None;
            }
            (false, Transport::Assembling) if seq != self.next_seq => {
                Some("transport segment out of sequence")
            }
            (false, Transport::Assembling) if !same_link => {
                Some("transport segment from another link")
            }
            (false, Transport::Assembling) => None,
        };
        if let Some(what) = fault {
            return Some(Err(self.discard(fin, what)));
        }
        // Append the segment's application bytes (the user data after the transport
        // header, without the block CRCs).
        let mut at = usize::from(self.assembled);
        let mut skip = 1;
        for block in user_blocks(frame) {
            let part = &block[skip..];
            skip = 0;
            let Some(dst) = scratch.get_mut(at..at + part.len()) else {
                return Some(Err(self.discard(
                    fin,
                    "application fragment longer than the reassembly buffer",
                )));
            };
            dst.copy_from_slice(part);
            at += part.len();
        }
        let Ok(assembled) = u16::try_from(at) else {
            return Some(Err(self.discard(
                fin,
                "application fragment longer than the reassembly buffer",
            )));
        };
        self.assembled = assembled;
        self.next_seq = (seq + 1) & 0x3f;
        if !fin {
            return None;
        }
        self.state = Transport::Idle;
        self.assembled = 0;
        let scratch: &'s [u8] = scratch;
        Some(Message::application(link, dir, &scratch[..at]).map(crate::Message::Dnp3))
    }

    /// Gives up the fragment in progress after `what` went wrong.
    fn discard(&mut self, fin: bool, what: &'static str) -> Malformed {
        self.state = if fin {
            Transport::Idle
        } else {
            Transport::Discarding
        };
        self.assembled = 0;
        Malformed::new(P, what)
    }

    /// No fragment is half assembled.
    pub fn is_idle(&self) -> bool {
        self.state != Transport::Assembling
    }
}

/// A checked DNP3 message: a link-layer frame, or an application fragment with the
/// header of the link frame that finished it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    link: Link,
    dir: Dir,
    /// The reassembled application fragment; `None` for a link-layer frame.
    fragment: Option<&'a [u8]>,
    app: Option<app::Summary>,
}

impl<'a> Message<'a> {
    fn link(link: Link, dir: Dir) -> Message<'a> {
        Message {
            link,
            dir,
            fragment: None,
            app: None,
        }
    }

    /// Checks an application fragment that arrived under `link`.
    pub fn application(link: Link, dir: Dir, fragment: &'a [u8]) -> Result<Message<'a>, Malformed> {
        let summary = app::parse(fragment)?;
        Ok(Message {
            link,
            dir,
            fragment: Some(fragment),
            app: Some(summary),
        })
    }

    /// The link header (of the last frame, for a reassembled fragment).
    pub fn link_header(&self) -> Link {
        self.link
    }

    pub fn destination(&self) -> u16 {
        self.link.destination
    }

    pub fn source(&self) -> u16 {
        self.link.source
    }

    pub fn dir(&self) -> Dir {
        self.dir
    }

    /// Whether this is a link-layer frame (no application fragment).
    pub fn is_link_only(&self) -> bool {
        self.fragment.is_none()
    }

    /// The application fragment as reassembled.
    pub fn fragment(&self) -> Option<&'a [u8]> {
        self.fragment
    }

    /// The application function.
    pub fn function(&self) -> Option<Function> {
        self.app.map(|a| a.function)
    }

    pub fn control(&self) -> Option<Control> {
        self.app.map(|a| a.control)
    }

    /// IIN1 and IIN2 of a response.
    pub fn iin(&self) -> Option<[u8; 2]> {
        self.app.and_then(|a| a.iin)
    }

    /// Whether the message asks the receiver to do something: an application request,
    /// whichever way it travels (confirms, responses and link frames do not).
    pub fn is_request(&self) -> bool {
        self.function()
            .is_some_and(|f| f != Function::Confirm && !f.is_response())
    }

    /// The object headers, in order. For a request, every header; when one carries
    /// objects of unknown size it is the last, opaque one (see [`Message::opaque`]).
    /// For a response, only the first header (as opaque: responses are not walked).
    pub fn objects(&self) -> Objects<'a> {
        match (self.fragment, self.app) {
            (Some(f), Some(a)) => Objects::new(&f[usize::from(a.objects_at)..], a.function),
            _ => Objects::new(&[], Function::Confirm),
        }
    }

    /// The number of object headers [`Message::objects`] yields.
    pub fn headers(&self) -> u16 {
        self.app.map_or(0, |a| a.headers)
    }

    /// Whether part of a request could not be walked: the last header carries objects
    /// of a size this parser does not know, and what follows it (perhaps more headers)
    /// is unread.
    pub fn opaque(&self) -> bool {
        self.is_request() && self.app.is_some_and(|a| a.opaque)
    }

    pub fn op(&self) -> Op {
        let first = self.objects().next();
        Op {
            destination: self.link.destination,
            source: self.link.source,
            link: self.link.control & 0x4f,
            function: self.function().map(u8::from),
            object: first.map(|h| (h.group, h.variation)),
            headers: self.headers().min(255) as u8,
            opaque: self.opaque(),
            iin: self.iin().map(u16::from_be_bytes),
            index: first.and_then(|h| h.first_index()),
            count: first.and_then(|h| match h.range {
                Range::All => None,
                r => Some(u32::try_from(r.count()).unwrap_or(u32::MAX)),
            }),
        }
    }
}

/// What a DNP3 message asked for, for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    /// Link addresses.
    pub destination: u16,
    pub source: u16,
    /// The link function (control & 0x4F).
    pub link: u8,
    /// The application function; `None` for a link-layer frame.
    pub function: Option<u8>,
    /// Group and variation of the first object header.
    pub object: Option<(u8, u8)>,
    /// Object headers walked.
    pub headers: u8,
    /// Part of the request could not be walked.
    pub opaque: bool,
    /// IIN1 << 8 | IIN2 of a response.
    pub iin: Option<u16>,
    /// The first point index the first header names.
    pub index: Option<u32>,
    /// The objects the first header names (none for qualifier 0x06, "all").
    pub count: Option<u32>,
}

impl Op {
    pub fn describe(&self, out: &mut dyn Fields) {
        match self.function {
            Some(f) => code_field(out, "function", Function::from(f).name(), f.into()),
            None => {
                let l = LinkFunction::from(self.link);
                code_field(out, "link_function", l.name(), self.link.into());
            }
        }
        out.number("destination", self.destination.into());
        out.number("source", self.source.into());
        if let Some((g, v)) = self.object {
            out.number("group", g.into());
            out.number("variation", v.into());
            if let Some(i) = self.index {
                out.number("index", i.into());
            }
            if let Some(c) = self.count {
                out.number("count", c.into());
            }
            out.number("headers", self.headers.into());
        }
        if self.opaque {
            out.flag("opaque", true);
        }
        if let Some(iin) = self.iin {
            out.number("iin", iin.into());
        }
    }
}

#[cfg(test)]
mod test;
