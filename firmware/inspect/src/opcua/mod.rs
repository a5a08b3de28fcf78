//! OPC UA binary: the UA TCP connection protocol (HEL, ACK, ERR, RHE) and UA Secure
//! Conversation (OPN, MSG, CLO) with the service a MSG carries when it can be read.
//!
//! References: *OPC 10000-6* (Mappings) — 7.1.2 the connection protocol messages, 6.7.2
//! the secure conversation message header, the asymmetric (OPN) and symmetric (MSG,
//! CLO) security headers, the sequence header, chunks and aborts, 5.2 the binary
//! encoding, A.3 the encoding ids of the services; *OPC 10000-4* (Services) — 5.5 the
//! OpenSecureChannel parameters, 7.20 MessageSecurityMode, 7.33/7.34 the request and
//! response headers.
//!
//! What is checked, so that what reaches the server is what the policy saw:
//! - framing: a known message type, a size of at least the type's minimum and at most
//!   [`MAX_CHUNK`] (16 MiB; a larger chunk loses the framing); the chunk type is `F` for
//!   everything but MSG, which also has `C` (intermediate) and `A` (abort);
//! - HEL, ACK, ERR, RHE whole and exact: five UInt32 and the endpoint URL (UTF-8, less
//!   than 4096 bytes), ACK exactly 28 bytes, error code and reason;
//! - per direction of a connection ([`Session`]), the order: the client starts with HEL
//!   (once), the server answers ACK (once) or starts with RHE (reverse connect, from the
//!   TCP initiator only), no OPN before it, no MSG or CLO before an OPN; a server sends
//!   neither HEL nor CLO; the chunks of one message follow each other (OPC 10000-6,
//!   6.7.3: "MessageChunks belonging to the same Message shall be sent sequentially");
//! - OPN: the asymmetric security header (secure channel id, SecurityPolicyUri of at
//!   most 255 bytes, certificate, thumbprint); with the policy `None` the body is plain
//!   and checked whole: sequence header, OpenSecureChannelRequest (request header,
//!   protocol version, request type, requested security mode, nonce, lifetime) or
//!   OpenSecureChannelResponse / ServiceFault, and nothing after it;
//! - MSG and CLO: the symmetric security header (channel and token id); when the body
//!   is plain, the sequence header, the NodeId of the body's type (any of its numeric
//!   encodings: two-byte, four-byte, numeric) and the request or response header.
//!
//! Whether a body can be read depends on the channel, which the [`Session`] of each
//! direction remembers from its OPN: with the policy `None` every body is plain. With
//! any other policy the OPN itself is encrypted (OPC 10000-4, 5.5.2: OpenSecureChannel
//! messages are always encrypted), so its requested mode cannot be seen; the mode shows
//! in the first MSG or CLO chunk of the direction: a chunk whose sequence header, type
//! NodeId (a known request from the client, a known response from the server) and
//! request or response header read as plain text (sane timestamp and diagnostics mask)
//! is signed only (`sign`), and the direction's later chunks must read as plain too;
//! otherwise the channel is `sign-and-encrypt` and every body is opaque. For the RSA
//! policies, an encrypted chunk must be a whole number of AES blocks. A service is
//! never read from encrypted bytes: an opaque request says so (`opaque`) and the policy
//! decides (a rule that limits services does not take it).
//!
//! A service without a name here (a NodeId outside namespace 0, a newer service) is
//! data: its request is judged by number. Responses are not judged; their header is
//! checked when it is plain.

mod codes;
mod decode;
mod emit;

pub use codes::{
    ChunkType, MessageType, RequestType, SecurityMode, SecurityPolicy, Service, POLICY_URI_PREFIX,
    SERVICE_FAULT,
};
pub use decode::NodeId;
pub use emit::{
    emit_acknowledge, emit_chunk, emit_error, emit_hello, emit_open, emit_reverse_hello, Body,
    Buffers, ChunkRepr, NodeIdEncoding, OpenBody, OpenRepr,
};

use decode::{Cur, Stop, R};

use crate::{code_field, Dir, Fields, Framing, Malformed, Protocol};

const P: Protocol = Protocol::OpcUa;

/// Message type, chunk type and message size.
pub const HEADER_LEN: usize = 8;
/// The largest chunk framed (16 MiB). Buffer sizes are negotiated in HEL/ACK and most
/// stacks use 64 KiB; a larger size is taken as bytes that are not OPC UA.
pub const MAX_CHUNK: usize = 1 << 24;
/// Endpoint URLs, server URIs and error reasons are "less than 4096 bytes".
pub const MAX_TEXT: usize = 4096;
/// SecurityPolicyUri: at most 255 bytes (OPC 10000-6, 6.7.2.3).
pub const MAX_POLICY_URI: usize = 255;
/// MSG and CLO: message header, secure channel id, token id.
pub const SYMMETRIC_HEADER_LEN: usize = 16;
/// The highest ReturnDiagnostics mask (bits 0-9 are defined, OPC 10000-4, 7.33).
const RETURN_DIAGNOSTICS_MASK: u32 = 0x3ff;

/// The smallest message of each type: HEL has five UInt32 and the URL's length; ACK
/// five UInt32; ERR a code and a reason's length; RHE two lengths; OPN the channel id
/// and three lengths; MSG and CLO the channel and token ids and a sequence header.
fn min_size(t: MessageType) -> usize {
    match t {
        MessageType::Hello => 32,
        MessageType::Acknowledge => 28,
        MessageType::Error | MessageType::ReverseHello => 16,
        MessageType::Open | MessageType::Message | MessageType::Close => 24,
        MessageType::Unknown(_) => HEADER_LEN,
    }
}

/// How long the message (chunk) at the start of `head` is, from its header.
pub fn frame(head: &[u8]) -> Framing {
    if head.len() < HEADER_LEN {
        return Framing::NeedMore(HEADER_LEN);
    }
    let kind = MessageType::of([head[0], head[1], head[2]]);
    if let MessageType::Unknown(_) = kind {
        return Framing::Invalid(Malformed::new(P, "unknown message type"));
    }
    let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    if size < min_size(kind) {
        return Framing::Invalid(Malformed::new(P, "message size below its type's minimum"));
    }
    if size > MAX_CHUNK {
        return Framing::Invalid(Malformed::new(P, "message size above 16 MiB"));
    }
    Framing::Length(size)
}

/// Which end of the OPC UA connection sent a message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Role {
    #[default]
    Client,
    Server,
}

/// What a direction knows of its secure channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Channel {
    policy: SecurityPolicy,
    /// `None` until it shows (policies other than `None`).
    mode: Option<SecurityMode>,
}

/// A chunked message whose final chunk has not come yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    request_id: Option<u32>,
    type_id: Option<NodeId>,
    opaque: bool,
}

/// What a direction of the conversation knows when it parses a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Context {
    role: Role,
    channel: Option<Channel>,
    pending: Option<Pending>,
}

/// What a stream remembers between the messages of one direction: who sends them (the
/// client or the server), the connection handshake, the secure channel's security
/// policy and mode, and a chunked message in progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Session {
    /// Messages seen (saturating).
    seen: u8,
    role: Role,
    /// HEL (client) or ACK (server) seen.
    hello: bool,
    channel: Option<Channel>,
    pending: Option<Pending>,
}

impl Session {
    /// One framed message of the stream (see `stream.rs`).
    pub fn message<'s>(
        &mut self,
        bytes: &'s [u8],
        total: usize,
        dir: Dir,
        _scratch: &'s mut [u8],
    ) -> Option<Result<crate::Message<'s>, Malformed>> {
        Some(self.next(bytes, total, dir).map(crate::Message::OpcUa))
    }

    /// No chunked message is half way.
    pub fn is_idle(&self) -> bool {
        self.pending.is_none()
    }

    /// The sender of this direction's messages, fixed by its first message.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The secure channel's policy and mode (the mode once it is known).
    pub fn security(&self) -> Option<(SecurityPolicy, Option<SecurityMode>)> {
        self.channel.map(|c| (c.policy, c.mode))
    }

    fn next<'s>(
        &mut self,
        bytes: &'s [u8],
        total: usize,
        dir: Dir,
    ) -> Result<Message<'s>, Malformed> {
        let kind = match bytes {
            [a, b, c, ..] => MessageType::of([*a, *b, *c]),
            _ => return Err(Malformed::new(P, "message shorter than its header")),
        };
        let first = self.seen == 0;
        if first {
            // The TCP initiator is the client unless it starts with a ReverseHello; the
            // responder is the server unless it starts with a Hello (reverse connect).
            self.role = match (dir, kind) {
                (Dir::Request, MessageType::ReverseHello) => Role::Server,
                (Dir::Request, _) => Role::Client,
                (Dir::Response, MessageType::Hello) => Role::Client,
                (Dir::Response, _) => Role::Server,
            };
        }
        self.seen = self.seen.saturating_add(1);
        self.check_order(kind, dir, first)
            .map_err(|what| Malformed::new(P, what))?;
        let context = Context {
            role: self.role,
            channel: self.channel,
            pending: self.pending.filter(|_| kind == MessageType::Message),
        };
        let m = parse_in(bytes, total, context)?;
        self.learn(&m);
        Ok(m)
    }

    fn check_order(&self, kind: MessageType, dir: Dir, first: bool) -> Result<(), &'static str> {
        use MessageType as T;
        let open = self.channel.is_some();
        match (self.role, kind) {
            (Role::Client, T::Hello) if self.hello => Err("second HEL"),
            (Role::Client, T::Hello) => Ok(()),
            (Role::Client, _) if !self.hello => Err("stream does not start with HEL"),
            (Role::Client, T::Acknowledge) => Err("ACK from the client"),
            (Role::Client, T::ReverseHello) => Err("RHE from the client"),
            (Role::Server, T::Hello) => Err("HEL from the server"),
            (Role::Server, T::Close) => Err("CLO from the server"),
            (Role::Server, T::ReverseHello) if dir == Dir::Response => {
                Err("RHE from the TCP responder")
            }
            (Role::Server, T::ReverseHello) if !first => Err("RHE after the first message"),
            (Role::Server, T::Acknowledge) if self.hello => Err("second ACK"),
            (Role::Server, T::Open) if !self.hello => Err("OPN before ACK"),
            (_, T::Message) if !open => Err("MSG before OpenSecureChannel"),
            (_, T::Close) if !open => Err("CLO before OpenSecureChannel"),
            _ => Ok(()),
        }
    }

    fn learn(&mut self, m: &Message<'_>) {
        match m.kind {
            MessageType::Hello | MessageType::Acknowledge => self.hello = true,
            MessageType::Open => {
                let Some(policy) = m.policy else { return };
                let mode = if policy == SecurityPolicy::None {
                    Some(m.mode.unwrap_or(SecurityMode::None))
                } else {
                    // A renewal keeps what the channel showed; a new policy starts over.
                    self.channel
                        .filter(|c| c.policy == policy)
                        .and_then(|c| c.mode)
                };
                self.channel = Some(Channel { policy, mode });
            }
            MessageType::Message | MessageType::Close => {
                if let Some(c) = &mut self.channel {
                    if c.mode.is_none() {
                        c.mode = m.mode;
                    }
                }
                if m.kind == MessageType::Message {
                    self.pending = match m.chunk {
                        ChunkType::Intermediate => Some(self.pending.unwrap_or(Pending {
                            request_id: m.request_id,
                            type_id: m.type_id,
                            opaque: m.opaque,
                        })),
                        _ => None,
                    };
                }
            }
            _ => {}
        }
    }
}

/// A checked OPC UA message (one chunk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    bytes: &'a [u8],
    total: usize,
    kind: MessageType,
    chunk: ChunkType,
    role: Role,
    request: bool,
    channel_id: Option<u32>,
    token_id: Option<u32>,
    policy: Option<SecurityPolicy>,
    policy_uri: Option<&'a [u8]>,
    mode: Option<SecurityMode>,
    request_type: Option<RequestType>,
    sequence: Option<u32>,
    request_id: Option<u32>,
    type_id: Option<NodeId>,
    opaque: bool,
    continued: bool,
    status: Option<u32>,
    buffers: Option<Buffers>,
    endpoint_url: Option<&'a [u8]>,
    text: Option<&'a [u8]>,
}

/// Parses one message (chunk) without what the stream knows of its conversation: a
/// `Request` comes from the client, and the body of a MSG or CLO is read as plain when
/// it reads as plain, as opaque otherwise. `bytes` may be the first part of a longer
/// message of `total` bytes.
pub fn parse(bytes: &[u8], total: usize, dir: Dir) -> Result<Message<'_>, Malformed> {
    let role = match dir {
        Dir::Request => Role::Client,
        Dir::Response => Role::Server,
    };
    parse_in(
        bytes,
        total,
        Context {
            role,
            channel: None,
            pending: None,
        },
    )
}

fn parse_in(bytes: &[u8], total: usize, context: Context) -> Result<Message<'_>, Malformed> {
    let fail = |what| Err(Malformed::new(P, what));
    if bytes.len() < HEADER_LEN {
        return fail("message shorter than its header");
    }
    if bytes.len() > total {
        return fail("message longer than its size");
    }
    let kind = MessageType::of([bytes[0], bytes[1], bytes[2]]);
    if let MessageType::Unknown(_) = kind {
        return fail("unknown message type");
    }
    let size = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    if size != total {
        return fail("message size disagrees with its length");
    }
    if size < min_size(kind) {
        return fail("message size below its type's minimum");
    }
    let chunk = ChunkType::from(bytes[3]);
    if let ChunkType::Unknown(_) = chunk {
        return fail("unknown chunk type");
    }
    if kind != MessageType::Message && chunk != ChunkType::Final {
        return fail("chunk type of a message other than MSG is not F");
    }
    let mut m = Message {
        bytes,
        total,
        kind,
        chunk,
        role: context.role,
        request: false,
        channel_id: None,
        token_id: None,
        policy: None,
        policy_uri: None,
        mode: None,
        request_type: None,
        sequence: None,
        request_id: None,
        type_id: None,
        opaque: false,
        continued: false,
        status: None,
        buffers: None,
        endpoint_url: None,
        text: None,
    };
    let result = match kind {
        MessageType::Hello => m.hello(),
        MessageType::Acknowledge => m.acknowledge(),
        MessageType::Error => m.error(),
        MessageType::ReverseHello => m.reverse_hello(),
        MessageType::Open => m.open(),
        MessageType::Message | MessageType::Close => m.symmetric(&context),
        MessageType::Unknown(_) => Ok(()),
    };
    match result {
        Ok(()) => Ok(m),
        // Only the first part of a long message is here: what it holds was checked.
        Err(Stop::Short(_)) if m.is_truncated() => Ok(m),
        Err(Stop::Short(what) | Stop::Bad(what)) => fail(what),
    }
}

/// How a MSG or CLO body can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plainness {
    Plain,
    Encrypted,
    /// Not known yet: the chunk itself tells.
    Learn,
}

impl<'a> Message<'a> {
    fn is_truncated(&self) -> bool {
        self.bytes.len() < self.total
    }

    fn body(&self) -> Cur<'a> {
        Cur::at(self.bytes, HEADER_LEN)
    }

    /// The fields end exactly where the message does.
    fn end(&self, c: &Cur<'_>, what: &'static str) -> R<()> {
        if c.position() == self.total {
            Ok(())
        } else {
            Err(Stop::Bad(what))
        }
    }

    fn hello(&mut self) -> R<()> {
        let mut c = self.body();
        let what = "HEL truncated";
        self.buffers = Some(Buffers::read(&mut c, what)?);
        self.endpoint_url = c.string(MAX_TEXT, what, "endpoint URL longer than 4096 bytes")?;
        self.end(&c, "bytes after the HEL endpoint URL")
    }

    fn acknowledge(&mut self) -> R<()> {
        let mut c = self.body();
        self.buffers = Some(Buffers::read(&mut c, "ACK truncated")?);
        self.end(&c, "ACK is not 28 bytes")
    }

    fn error(&mut self) -> R<()> {
        let mut c = self.body();
        let what = "ERR truncated";
        self.status = Some(c.u32(what)?);
        self.text = c.string(MAX_TEXT, what, "ERR reason longer than 4096 bytes")?;
        self.end(&c, "bytes after the ERR reason")
    }

    fn reverse_hello(&mut self) -> R<()> {
        let mut c = self.body();
        let what = "RHE truncated";
        // The server asks the client to open a connection back: judged like a request.
        self.request = true;
        self.text = c.string(MAX_TEXT, what, "RHE server URI longer than 4096 bytes")?;
        self.endpoint_url = c.string(MAX_TEXT, what, "RHE endpoint URL longer than 4096 bytes")?;
        self.end(&c, "bytes after the RHE endpoint URL")
    }

    fn open(&mut self) -> R<()> {
        let mut c = self.body();
        let what = "asymmetric security header truncated";
        self.request = self.role == Role::Client;
        self.channel_id = Some(c.u32(what)?);
        let uri = c.string(
            MAX_POLICY_URI,
            what,
            "security policy URI longer than 255 bytes",
        )?;
        let uri = uri
            .filter(|u| !u.is_empty())
            .ok_or(Stop::Bad("OPN without a security policy URI"))?;
        let policy = SecurityPolicy::from_uri(uri);
        self.policy_uri = Some(uri);
        self.policy = Some(policy);
        // With a policy, the rest is encrypted with the receiver's public key, whatever
        // the mode.
        self.opaque = policy != SecurityPolicy::None;
        if !self.opaque {
            self.mode = Some(SecurityMode::None);
        }
        c.bytes_field(what)?; // SenderCertificate
        c.bytes_field(what)?; // ReceiverCertificateThumbprint
        if self.opaque {
            return Ok(());
        }
        self.sequence_header(&mut c)?;
        let type_id = c.node_id("OPN body truncated")?;
        self.type_id = Some(type_id);
        match (self.role, type_id.ns0()) {
            (Role::Client, Some(446)) => {
                let what = "OpenSecureChannelRequest truncated";
                c.request_header()?;
                c.u32(what)?; // ClientProtocolVersion
                self.request_type = Some(RequestType::from(c.u32(what)?));
                self.mode = Some(SecurityMode::from(c.u32(what)?));
                c.bytes_field(what)?; // ClientNonce
                c.u32(what)?; // RequestedLifetime
                self.end(&c, "bytes after OpenSecureChannelRequest")
            }
            (Role::Server, Some(449)) => {
                let what = "OpenSecureChannelResponse truncated";
                self.status = Some(c.response_header()?.service_result);
                c.u32(what)?; // ServerProtocolVersion
                c.u32(what)?; // SecurityToken: ChannelId
                c.u32(what)?; // TokenId
                c.i64(what)?; // CreatedAt
                c.u32(what)?; // RevisedLifetime
                c.bytes_field(what)?; // ServerNonce
                self.end(&c, "bytes after OpenSecureChannelResponse")
            }
            (Role::Server, Some(SERVICE_FAULT)) => {
                self.status = Some(c.response_header()?.service_result);
                self.end(&c, "bytes after the ServiceFault")
            }
            _ => Err(Stop::Bad("OPN does not carry OpenSecureChannel")),
        }
    }

    fn sequence_header(&mut self, c: &mut Cur<'a>) -> R<()> {
        let what = "sequence header truncated";
        self.sequence = Some(c.u32(what)?);
        self.request_id = Some(c.u32(what)?);
        Ok(())
    }

    fn symmetric(&mut self, context: &Context) -> R<()> {
        let mut c = self.body();
        let what = "symmetric security header truncated";
        self.channel_id = Some(c.u32(what)?);
        self.token_id = Some(c.u32(what)?);
        let channel = context.channel;
        self.policy = channel.map(|ch| ch.policy);
        self.mode = channel.and_then(|ch| ch.mode);
        let plainness = match channel {
            None => Plainness::Learn,
            Some(ch) if ch.policy == SecurityPolicy::None => Plainness::Plain,
            Some(ch) => match ch.mode {
                Some(SecurityMode::SignAndEncrypt) => Plainness::Encrypted,
                Some(_) => Plainness::Plain,
                None => Plainness::Learn,
            },
        };
        if let Some(p) = context.pending {
            // A later chunk of a message judged at its first chunk.
            self.continued = true;
            self.type_id = p.type_id;
            if p.opaque || plainness != Plainness::Plain {
                return self.encrypted(None);
            }
            self.sequence_header(&mut c)?;
            if self.request_id != p.request_id {
                return Err(Stop::Bad(
                    "chunk of another message before the last one ended",
                ));
            }
            return match self.chunk {
                ChunkType::Abort => self.abort(&mut c),
                _ => Ok(()),
            };
        }
        if self.chunk == ChunkType::Abort {
            return match plainness {
                Plainness::Plain => {
                    self.sequence_header(&mut c)?;
                    self.abort(&mut c)
                }
                _ => self.encrypted(None),
            };
        }
        match plainness {
            Plainness::Plain => self.plain(c, false, channel),
            Plainness::Encrypted => self.encrypted(None),
            Plainness::Learn => {
                let mut trial = *self;
                match trial.plain(c, true, channel) {
                    Err(Stop::Short(_)) if trial.is_truncated() && trial.type_id.is_some() => {}
                    Ok(()) => {}
                    Err(_) => {
                        let learnt = channel.map(|_| SecurityMode::SignAndEncrypt);
                        return self.encrypted(Some(learnt)).map_err(|_| {
                            Stop::Bad("chunk is neither plain nor whole cipher blocks")
                        });
                    }
                }
                *self = trial;
                if channel.is_some() {
                    self.mode = Some(SecurityMode::Sign);
                }
                Ok(())
            }
        }
    }

    /// An opaque body: encrypted with the channel's symmetric keys. `learnt` is the mode
    /// this chunk revealed.
    fn encrypted(&mut self, learnt: Option<Option<SecurityMode>>) -> R<()> {
        self.opaque = true;
        if let Some(mode) = learnt {
            self.mode = mode;
        }
        self.request =
            self.role == Role::Client && !self.continued && self.chunk != ChunkType::Abort;
        if let Some(block) = self.policy.and_then(SecurityPolicy::cipher_block) {
            if !(self.total - SYMMETRIC_HEADER_LEN).is_multiple_of(block) {
                return Err(Stop::Bad(
                    "encrypted chunk is not a whole number of cipher blocks",
                ));
            }
        }
        Ok(())
    }

    fn abort(&mut self, c: &mut Cur<'a>) -> R<()> {
        let what = "abort chunk truncated";
        self.status = Some(c.u32(what)?);
        self.text = c.string(MAX_TEXT, what, "abort reason longer than 4096 bytes")?;
        Ok(())
    }

    /// A plain first chunk. `learning`: the chunk must prove it is plain (a known type
    /// for its sender, sane header fields), or it is taken as encrypted.
    fn plain(&mut self, mut c: Cur<'a>, learning: bool, channel: Option<Channel>) -> R<()> {
        let not_plain = Stop::Bad("not plain text");
        self.sequence_header(&mut c)?;
        let type_id = c.node_id("message body truncated")?;
        let id = type_id.ns0();
        let request_service = id.and_then(Service::of_request);
        let response_service = id.and_then(Service::of_response);
        let fault = id == Some(SERVICE_FAULT);
        if learning {
            let evidence = match self.role {
                Role::Client => request_service.is_some(),
                Role::Server => response_service.is_some() || fault,
            };
            if !evidence {
                return Err(not_plain);
            }
        }
        if self.kind == MessageType::Close {
            if request_service != Some(Service::CloseSecureChannel) {
                return Err(Stop::Bad("CLO does not carry CloseSecureChannelRequest"));
            }
        } else if request_service
            .or(response_service)
            .is_some_and(Service::is_secure_channel)
        {
            return Err(Stop::Bad("secure channel service in a MSG"));
        }
        self.type_id = Some(type_id);
        self.request = request_service.is_some()
            || (response_service.is_none() && !fault && self.role == Role::Client);
        if self.request {
            let h = c.request_header()?;
            if learning && (h.timestamp < 0 || h.return_diagnostics > RETURN_DIAGNOSTICS_MASK) {
                return Err(not_plain);
            }
        } else {
            let h = c.response_header()?;
            self.status = Some(h.service_result);
            if learning && h.timestamp < 0 {
                return Err(not_plain);
            }
        }
        let unsigned = channel.is_some_and(|ch| ch.policy == SecurityPolicy::None);
        if self.kind == MessageType::Close && unsigned {
            return self.end(&c, "bytes after CloseSecureChannelRequest");
        }
        Ok(())
    }

    // Accessors.

    pub fn message_type(&self) -> MessageType {
        self.kind
    }

    pub fn chunk(&self) -> ChunkType {
        self.chunk
    }

    /// Who sent the message.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether the message asks the other end for something: OPN and CLO from the
    /// client, a MSG request (by its type when plain; from the client when opaque), the
    /// ReverseHello of a server. Later chunks of a message, aborts, responses and the
    /// connection protocol's HEL, ACK and ERR are not.
    pub fn is_request(&self) -> bool {
        self.request
    }

    /// The message as received (its first part when `total_len` is larger).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn total_len(&self) -> usize {
        self.total
    }

    pub fn secure_channel_id(&self) -> Option<u32> {
        self.channel_id
    }

    pub fn token_id(&self) -> Option<u32> {
        self.token_id
    }

    /// The secure channel's security policy: from the OPN's header, or for MSG and CLO
    /// from the OPN the stream saw (`None` without one).
    pub fn security_policy(&self) -> Option<SecurityPolicy> {
        self.policy
    }

    /// The SecurityPolicyUri of an OPN.
    pub fn security_policy_uri(&self) -> Option<&'a str> {
        self.policy_uri.and_then(|u| core::str::from_utf8(u).ok())
    }

    /// The channel's security mode where it shows: the requested mode of a plain OPN
    /// request, `none` for the policy `None`, or what the direction's chunks showed.
    /// `None` for the OPN of a secured channel (encrypted) until a chunk shows it.
    pub fn security_mode(&self) -> Option<SecurityMode> {
        self.mode
    }

    /// Issue or renew, for a plain OPN request.
    pub fn request_type(&self) -> Option<RequestType> {
        self.request_type
    }

    pub fn sequence_number(&self) -> Option<u32> {
        self.sequence
    }

    pub fn request_id(&self) -> Option<u32> {
        self.request_id
    }

    /// The NodeId a plain body starts with (for a later chunk, its first chunk's).
    pub fn type_id(&self) -> Option<NodeId> {
        self.type_id
    }

    /// The service the message belongs to: OPN and CLO by their type; a MSG by its
    /// type NodeId when it can be read and names a request or response here.
    pub fn service(&self) -> Option<Service> {
        match self.kind {
            MessageType::Open => Some(Service::OpenSecureChannel),
            MessageType::Close => Some(Service::CloseSecureChannel),
            MessageType::Message => {
                let id = self.type_id?.ns0()?;
                Service::of_request(id).or_else(|| Service::of_response(id))
            }
            _ => None,
        }
    }

    /// The body is encrypted: its service cannot be seen.
    pub fn is_opaque(&self) -> bool {
        self.opaque
    }

    /// A later chunk (intermediate or final) of a chunked message.
    pub fn is_continuation(&self) -> bool {
        self.continued
    }

    /// The ERR code, an abort chunk's code, or a plain response's service result.
    pub fn status(&self) -> Option<u32> {
        self.status
    }

    /// HEL and ACK sizes.
    pub fn buffers(&self) -> Option<Buffers> {
        self.buffers
    }

    /// The EndpointUrl of HEL and RHE.
    pub fn endpoint_url(&self) -> Option<&'a str> {
        self.endpoint_url.and_then(|u| core::str::from_utf8(u).ok())
    }

    /// ERR's and an abort chunk's reason; RHE's server URI.
    pub fn text(&self) -> Option<&'a str> {
        self.text.and_then(|u| core::str::from_utf8(u).ok())
    }

    pub fn op(&self) -> Op {
        let mut op = Op {
            message: self.kind.bytes(),
            chunk: self.chunk.into(),
            flags: 0,
            policy: self.policy,
            type_ns: 0,
            type_id: 0,
            channel: self.channel_id.unwrap_or(0),
            status: self.status.unwrap_or(0),
            mode: self.mode.map_or(0, u32::from),
            request_type: self.request_type.map_or(0, u32::from),
        };
        let set = |op: &mut Op, flag: u16, on: bool| {
            if on {
                op.flags |= flag;
            }
        };
        set(&mut op, Op::RESPONSE, self.role == Role::Server);
        set(&mut op, Op::OPAQUE, self.opaque);
        set(&mut op, Op::CONTINUED, self.continued);
        set(&mut op, Op::CHANNEL, self.channel_id.is_some());
        set(&mut op, Op::STATUS, self.status.is_some());
        set(&mut op, Op::MODE, self.mode.is_some());
        set(&mut op, Op::REQUEST_TYPE, self.request_type.is_some());
        match self.type_id {
            Some(NodeId::Numeric { ns, id }) => {
                (op.type_ns, op.type_id) = (ns, id);
                op.flags |= Op::TYPE_NUMERIC;
            }
            Some(NodeId::Other { ns }) => {
                op.type_ns = ns;
                op.flags |= Op::TYPE_OTHER;
            }
            None => {}
        }
        op
    }
}

/// What an OPC UA message asked for, for events: packed (32 bytes), since every event
/// carries one by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    message: [u8; 3],
    chunk: u8,
    flags: u16,
    policy: Option<SecurityPolicy>,
    type_ns: u16,
    type_id: u32,
    channel: u32,
    status: u32,
    mode: u32,
    request_type: u32,
}

impl Op {
    const RESPONSE: u16 = 1;
    const OPAQUE: u16 = 1 << 1;
    const CONTINUED: u16 = 1 << 2;
    const CHANNEL: u16 = 1 << 3;
    const STATUS: u16 = 1 << 4;
    const MODE: u16 = 1 << 5;
    const REQUEST_TYPE: u16 = 1 << 6;
    const TYPE_NUMERIC: u16 = 1 << 7;
    const TYPE_OTHER: u16 = 1 << 8;

    fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    pub fn message(&self) -> MessageType {
        MessageType::of(self.message)
    }

    pub fn chunk(&self) -> ChunkType {
        ChunkType::from(self.chunk)
    }

    /// Sent by the server.
    pub fn is_response(&self) -> bool {
        self.has(Op::RESPONSE)
    }

    pub fn is_opaque(&self) -> bool {
        self.has(Op::OPAQUE)
    }

    /// A later chunk of a chunked message.
    pub fn is_continuation(&self) -> bool {
        self.has(Op::CONTINUED)
    }

    pub fn channel(&self) -> Option<u32> {
        self.has(Op::CHANNEL).then_some(self.channel)
    }

    pub fn policy(&self) -> Option<SecurityPolicy> {
        self.policy
    }

    pub fn mode(&self) -> Option<SecurityMode> {
        self.has(Op::MODE).then(|| SecurityMode::from(self.mode))
    }

    pub fn request_type(&self) -> Option<RequestType> {
        self.has(Op::REQUEST_TYPE)
            .then(|| RequestType::from(self.request_type))
    }

    /// The body's type NodeId, when it could be read.
    pub fn type_id(&self) -> Option<NodeId> {
        if self.has(Op::TYPE_NUMERIC) {
            Some(NodeId::Numeric {
                ns: self.type_ns,
                id: self.type_id,
            })
        } else if self.has(Op::TYPE_OTHER) {
            Some(NodeId::Other { ns: self.type_ns })
        } else {
            None
        }
    }

    /// ERR's code, an abort's code, or a response's service result.
    pub fn status(&self) -> Option<u32> {
        self.has(Op::STATUS).then_some(self.status)
    }

    pub fn describe(&self, out: &mut dyn Fields) {
        let message = self.message();
        code_field(out, "message", message.name(), u32::from(message).into());
        let chunk = self.chunk();
        if chunk != ChunkType::Final {
            code_field(out, "chunk", chunk.name(), self.chunk.into());
        }
        if self.is_continuation() {
            out.flag("continued", true);
        }
        if let Some(c) = self.channel() {
            out.number("channel", c.into());
        }
        if let Some(p) = self.policy {
            out.text("security_policy", p.name().unwrap_or("other"));
        }
        if let Some(m) = self.mode() {
            code_field(out, "security_mode", m.name(), self.mode.into());
        }
        if let Some(t) = self.request_type() {
            code_field(out, "request_type", t.name(), self.request_type.into());
        }
        match (message, self.type_id()) {
            (MessageType::Open, _) => out.text("service", "open-secure-channel"),
            (MessageType::Close, _) => out.text("service", "close-secure-channel"),
            (_, Some(NodeId::Numeric { ns: 0, id })) => {
                let name = if id == SERVICE_FAULT {
                    Some("service-fault")
                } else {
                    Service::of_request(id)
                        .or_else(|| Service::of_response(id))
                        .and_then(Service::name)
                };
                code_field(out, "service", name, id.into());
            }
            (_, Some(NodeId::Numeric { ns, id })) => {
                out.number("service_ns", ns.into());
                out.number("service", id.into());
            }
            (_, Some(NodeId::Other { ns })) => {
                out.number("service_ns", ns.into());
                out.text("service", "non-numeric");
            }
            (_, None) => {}
        }
        if self.is_opaque() {
            out.flag("opaque", true);
        }
        if self.is_response() {
            out.flag("response", true);
        }
        if let Some(s) = self.status() {
            let mut buf = [0u8; 10];
            out.text("status", hex32(s, &mut buf));
        }
    }
}

/// `0x80340000`: status codes read best in hexadecimal.
fn hex32(v: u32, buf: &mut [u8; 10]) -> &str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    buf[0] = b'0';
    buf[1] = b'x';
    for i in 0..8 {
        buf[2 + i] = DIGITS[((v >> (28 - 4 * i)) & 0xf) as usize];
    }
    core::str::from_utf8(buf).unwrap_or("?")
}

#[cfg(test)]
mod test;
