//! Building OPC UA messages from values: for tests, fuzz seeds and crafted frames.
//! Every `emit_*` writes one message into `out` and returns its length, or `None` when
//! it does not fit (or would exceed [`MAX_CHUNK`](super::MAX_CHUNK)).

use super::decode::{Cur, R};
use super::{
    ChunkType, MessageType, RequestType, SecurityMode, HEADER_LEN, MAX_CHUNK, SERVICE_FAULT,
};

/// The five UInt32 of HEL and ACK (OPC 10000-6, 7.1.2.3 and 7.1.2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Buffers {
    pub protocol_version: u32,
    pub receive_buffer: u32,
    pub send_buffer: u32,
    /// 0: no limit.
    pub max_message: u32,
    /// 0: no limit.
    pub max_chunks: u32,
}

impl Buffers {
    /// What most stacks send: version 0, 64 KiB buffers, no limits.
    pub const TYPICAL: Buffers = Buffers {
        protocol_version: 0,
        receive_buffer: 65535,
        send_buffer: 65535,
        max_message: 0,
        max_chunks: 0,
    };

    pub(super) fn read(c: &mut Cur<'_>, what: &'static str) -> R<Buffers> {
        Ok(Buffers {
            protocol_version: c.u32(what)?,
            receive_buffer: c.u32(what)?,
            send_buffer: c.u32(what)?,
            max_message: c.u32(what)?,
            max_chunks: c.u32(what)?,
        })
    }

    fn put(&self, w: &mut Writer<'_>) -> Option<()> {
        w.u32(self.protocol_version)?;
        w.u32(self.receive_buffer)?;
        w.u32(self.send_buffer)?;
        w.u32(self.max_message)?;
        w.u32(self.max_chunks)
    }
}

/// How a namespace-0 number is written as a NodeId (OPC 10000-6, 5.2.2.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodeIdEncoding {
    /// Two-byte below 256, four-byte below 65536, numeric above: what stacks send.
    #[default]
    Shortest,
    /// Four-byte (`0x01`, namespace byte, UInt16), where the number fits.
    FourByte,
    /// Numeric (`0x02`, namespace UInt16, UInt32).
    Numeric,
}

/// The body of an OPN after its sequence header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenBody<'v> {
    /// OpenSecureChannelRequest.
    Request {
        request_type: RequestType,
        mode: SecurityMode,
        nonce: Option<&'v [u8]>,
        lifetime: u32,
    },
    /// OpenSecureChannelResponse with its security token.
    Response {
        channel: u32,
        token: u32,
        lifetime: u32,
        nonce: Option<&'v [u8]>,
    },
    /// A ServiceFault with this service result.
    Fault { status: u32 },
    /// The bytes after the asymmetric security header as they are (ciphertext).
    Encrypted(&'v [u8]),
}

/// An OPN message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenRepr<'v> {
    pub channel: u32,
    pub policy_uri: &'v str,
    pub certificate: Option<&'v [u8]>,
    pub thumbprint: Option<&'v [u8]>,
    pub sequence: u32,
    pub request_id: u32,
    pub body: OpenBody<'v>,
}

/// The body of a MSG or CLO chunk after its symmetric security header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'v> {
    /// A request: its type NodeId, a request header with this handle, the parameters.
    Request {
        type_id: u32,
        encoding: NodeIdEncoding,
        handle: u32,
        params: &'v [u8],
    },
    /// A response (or a ServiceFault, [`SERVICE_FAULT`]).
    Response {
        type_id: u32,
        handle: u32,
        status: u32,
        params: &'v [u8],
    },
    /// Bytes after the sequence header as they are (a later chunk's part of a body).
    Raw(&'v [u8]),
    /// An abort chunk's body.
    Abort { code: u32, reason: &'v str },
    /// The bytes after the symmetric security header as they are (ciphertext: the
    /// sequence header is encrypted too).
    Encrypted(&'v [u8]),
}

/// A MSG or CLO chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRepr<'v> {
    pub message: MessageType,
    pub chunk: ChunkType,
    pub channel: u32,
    pub token: u32,
    pub sequence: u32,
    pub request_id: u32,
    pub body: Body<'v>,
}

/// The request header every emitted request carries: a null authentication token, a
/// timestamp in 2024, no diagnostics, no audit entry, a 10 s timeout hint.
const TIMESTAMP: i64 = 0x01da_5000_0000_0000;

struct Writer<'o> {
    out: &'o mut [u8],
    n: usize,
}

impl<'o> Writer<'o> {
    fn new(out: &'o mut [u8]) -> Writer<'o> {
        Writer { out, n: 0 }
    }

    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        self.out
            .get_mut(self.n..self.n + bytes.len())?
            .copy_from_slice(bytes);
        self.n += bytes.len();
        Some(())
    }

    fn u32(&mut self, v: u32) -> Option<()> {
        self.put(&v.to_le_bytes())
    }

    fn i64(&mut self, v: i64) -> Option<()> {
        self.put(&v.to_le_bytes())
    }

    fn bytes(&mut self, v: Option<&[u8]>) -> Option<()> {
        match v {
            None => self.put(&(-1i32).to_le_bytes()),
            Some(b) => {
                self.put(&i32::try_from(b.len()).ok()?.to_le_bytes())?;
                self.put(b)
            }
        }
    }

    fn node_id(&mut self, id: u32, encoding: NodeIdEncoding) -> Option<()> {
        match (encoding, u8::try_from(id), u16::try_from(id)) {
            (NodeIdEncoding::Shortest, Ok(small), _) => self.put(&[0x00, small]),
            (NodeIdEncoding::Shortest | NodeIdEncoding::FourByte, _, Ok(mid)) => {
                self.put(&[0x01, 0x00])?;
                self.put(&mid.to_le_bytes())
            }
            _ => {
                self.put(&[0x02, 0x00, 0x00])?;
                self.u32(id)
            }
        }
    }

    fn request_header(&mut self, handle: u32) -> Option<()> {
        self.put(&[0x00, 0x00])?; // authenticationToken: null
        self.i64(TIMESTAMP)?;
        self.u32(handle)?;
        self.u32(0)?; // returnDiagnostics
        self.bytes(None)?; // auditEntryId
        self.u32(10_000)?; // timeoutHint
        self.put(&[0x00, 0x00, 0x00]) // additionalHeader: none
    }

    fn response_header(&mut self, handle: u32, status: u32) -> Option<()> {
        self.i64(TIMESTAMP)?;
        self.u32(handle)?;
        self.u32(status)?;
        self.put(&[0x00])?; // serviceDiagnostics: empty
        self.put(&(-1i32).to_le_bytes())?; // stringTable: null
        self.put(&[0x00, 0x00, 0x00]) // additionalHeader: none
    }

    fn header(&mut self, kind: MessageType, chunk: ChunkType) -> Option<()> {
        self.put(&kind.bytes())?;
        self.put(&[u8::from(chunk)])?;
        self.u32(0) // the size, written at the end
    }

    fn finish(self) -> Option<usize> {
        if self.n > MAX_CHUNK {
            return None;
        }
        let size = u32::try_from(self.n).ok()?;
        self.out
            .get_mut(4..HEADER_LEN)?
            .copy_from_slice(&size.to_le_bytes());
        Some(self.n)
    }
}

/// HEL.
pub fn emit_hello(out: &mut [u8], buffers: &Buffers, endpoint_url: &str) -> Option<usize> {
    let mut w = Writer::new(out);
    w.header(MessageType::Hello, ChunkType::Final)?;
    buffers.put(&mut w)?;
    w.bytes(Some(endpoint_url.as_bytes()))?;
    w.finish()
}

/// ACK.
pub fn emit_acknowledge(out: &mut [u8], buffers: &Buffers) -> Option<usize> {
    let mut w = Writer::new(out);
    w.header(MessageType::Acknowledge, ChunkType::Final)?;
    buffers.put(&mut w)?;
    w.finish()
}

/// ERR.
pub fn emit_error(out: &mut [u8], code: u32, reason: &str) -> Option<usize> {
    let mut w = Writer::new(out);
    w.header(MessageType::Error, ChunkType::Final)?;
    w.u32(code)?;
    w.bytes(Some(reason.as_bytes()))?;
    w.finish()
}

/// RHE.
pub fn emit_reverse_hello(out: &mut [u8], server_uri: &str, endpoint_url: &str) -> Option<usize> {
    let mut w = Writer::new(out);
    w.header(MessageType::ReverseHello, ChunkType::Final)?;
    w.bytes(Some(server_uri.as_bytes()))?;
    w.bytes(Some(endpoint_url.as_bytes()))?;
    w.finish()
}

/// OPN.
pub fn emit_open(out: &mut [u8], r: &OpenRepr<'_>) -> Option<usize> {
    let mut w = Writer::new(out);
    w.header(MessageType::Open, ChunkType::Final)?;
    w.u32(r.channel)?;
    w.bytes(Some(r.policy_uri.as_bytes()))?;
    w.bytes(r.certificate)?;
    w.bytes(r.thumbprint)?;
    if let OpenBody::Encrypted(bytes) = r.body {
        w.put(bytes)?;
        return w.finish();
    }
    w.u32(r.sequence)?;
    w.u32(r.request_id)?;
    match r.body {
        OpenBody::Request {
            request_type,
            mode,
            nonce,
            lifetime,
        } => {
            w.node_id(446, NodeIdEncoding::Shortest)?;
            w.request_header(r.request_id)?;
            w.u32(0)?; // clientProtocolVersion
            w.u32(request_type.into())?;
            w.u32(mode.into())?;
            w.bytes(nonce)?;
            w.u32(lifetime)?;
        }
        OpenBody::Response {
            channel,
            token,
            lifetime,
            nonce,
        } => {
            w.node_id(449, NodeIdEncoding::Shortest)?;
            w.response_header(r.request_id, 0)?;
            w.u32(0)?; // serverProtocolVersion
            w.u32(channel)?;
            w.u32(token)?;
            w.i64(TIMESTAMP)?;
            w.u32(lifetime)?;
            w.bytes(nonce)?;
        }
        OpenBody::Fault { status } => {
            w.node_id(SERVICE_FAULT, NodeIdEncoding::Shortest)?;
            w.response_header(r.request_id, status)?;
        }
        OpenBody::Encrypted(_) => {}
    }
    w.finish()
}

/// A MSG or CLO chunk.
pub fn emit_chunk(out: &mut [u8], r: &ChunkRepr<'_>) -> Option<usize> {
    let mut w = Writer::new(out);
    w.header(r.message, r.chunk)?;
    w.u32(r.channel)?;
    w.u32(r.token)?;
    if let Body::Encrypted(bytes) = r.body {
        w.put(bytes)?;
        return w.finish();
    }
    w.u32(r.sequence)?;
    w.u32(r.request_id)?;
    match r.body {
        Body::Request {
            type_id,
            encoding,
            handle,
            params,
        } => {
            w.node_id(type_id, encoding)?;
            w.request_header(handle)?;
            w.put(params)?;
        }
        Body::Response {
            type_id,
            handle,
            status,
            params,
        } => {
            w.node_id(type_id, NodeIdEncoding::Shortest)?;
            w.response_header(handle, status)?;
            w.put(params)?;
        }
        Body::Raw(bytes) => w.put(bytes)?,
        Body::Abort { code, reason } => {
            w.u32(code)?;
            w.bytes(Some(reason.as_bytes()))?;
        }
        Body::Encrypted(_) => {}
    }
    w.finish()
}
