//! Building BACnet/IP datagrams from values: for tests, fuzz seeds and tools. The
//! packet path never builds BACnet.

use super::{BvlcFunction, ObjectId, PropertyId, BVLC_LEN, BVLC_TYPE};

/// Tagged data (clause 20.2), written into a caller's buffer. Every method writes one
/// element; running out of room is remembered and reported by [`Encoder::finish`].
#[derive(Debug)]
pub struct Encoder<'o> {
    out: &'o mut [u8],
    len: usize,
    overflow: bool,
}

impl<'o> Encoder<'o> {
    pub fn new(out: &'o mut [u8]) -> Encoder<'o> {
        Encoder {
            out,
            len: 0,
            overflow: false,
        }
    }

    /// The length written, `None` when something did not fit.
    pub fn finish(&self) -> Option<usize> {
        (!self.overflow).then_some(self.len)
    }

    /// Raw octets, as they are.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        match self.out.get_mut(self.len..self.len + bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            None => self.overflow = true,
        }
        self
    }

    /// A tag header: `context` is the context tag number, else `app` is the
    /// application tag number.
    fn header(&mut self, number: u8, context: bool, len: usize) -> &mut Self {
        let class = if context { 0x08 } else { 0 };
        let high = if number < 15 { number << 4 } else { 0xf0 };
        let lvt = if len < 5 { len as u8 } else { 5 };
        self.raw(&[high | class | lvt]);
        if number >= 15 {
            self.raw(&[number]);
        }
        if len >= 5 {
            if len < 254 {
                self.raw(&[len as u8]);
            } else if let Ok(n) = u16::try_from(len) {
                self.raw(&[254]).raw(&n.to_be_bytes());
            } else {
                let n = u32::try_from(len).unwrap_or(u32::MAX);
                self.raw(&[255]).raw(&n.to_be_bytes());
            }
        }
        self
    }

    /// A primitive element: context tag `ctx`, or application tag `app` when `ctx` is
    /// `None`.
    pub fn primitive(&mut self, ctx: Option<u8>, app: u8, data: &[u8]) -> &mut Self {
        match ctx {
            Some(n) => self.header(n, true, data.len()),
            None => self.header(app, false, data.len()),
        };
        self.raw(data)
    }

    pub fn opening(&mut self, ctx: u8) -> &mut Self {
        let high = if ctx < 15 { ctx << 4 } else { 0xf0 };
        self.raw(&[high | 0x0e]);
        if ctx >= 15 {
            self.raw(&[ctx]);
        }
        self
    }

    pub fn closing(&mut self, ctx: u8) -> &mut Self {
        let high = if ctx < 15 { ctx << 4 } else { 0xf0 };
        self.raw(&[high | 0x0f]);
        if ctx >= 15 {
            self.raw(&[ctx]);
        }
        self
    }

    pub fn null(&mut self, ctx: Option<u8>) -> &mut Self {
        self.primitive(ctx, 0, &[])
    }

    pub fn boolean(&mut self, ctx: Option<u8>, value: bool) -> &mut Self {
        match ctx {
            Some(_) => self.primitive(ctx, 1, &[u8::from(value)]),
            None => self.raw(&[0x10 | u8::from(value)]),
        }
    }

    pub fn unsigned(&mut self, ctx: Option<u8>, value: u32) -> &mut Self {
        let b = value.to_be_bytes();
        let skip = (value.leading_zeros() / 8).min(3) as usize;
        self.primitive(ctx, 2, &b[skip..])
    }

    pub fn real(&mut self, ctx: Option<u8>, value: f32) -> &mut Self {
        self.primitive(ctx, 4, &value.to_be_bytes())
    }

    pub fn octet_string(&mut self, ctx: Option<u8>, value: &[u8]) -> &mut Self {
        self.primitive(ctx, 6, value)
    }

    /// A character string in UTF-8 (character set 0).
    pub fn character_string(&mut self, ctx: Option<u8>, value: &str) -> &mut Self {
        let len = value.len() + 1;
        match ctx {
            Some(n) => self.header(n, true, len),
            None => self.header(7, false, len),
        };
        self.raw(&[0]).raw(value.as_bytes())
    }

    pub fn enumerated(&mut self, ctx: Option<u8>, value: u32) -> &mut Self {
        let b = value.to_be_bytes();
        let skip = (value.leading_zeros() / 8).min(3) as usize;
        self.primitive(ctx, 9, &b[skip..])
    }

    pub fn object(&mut self, ctx: Option<u8>, object: ObjectId) -> &mut Self {
        self.primitive(ctx, 12, &object.raw().to_be_bytes())
    }

    pub fn property(&mut self, ctx: Option<u8>, property: PropertyId) -> &mut Self {
        self.enumerated(ctx, property.into())
    }

    /// ReadProperty-Request: [0] object, [1] property, [2] array index.
    pub fn read_property(
        &mut self,
        object: ObjectId,
        property: PropertyId,
        index: Option<u32>,
    ) -> &mut Self {
        self.object(Some(0), object).property(Some(1), property);
        if let Some(i) = index {
            self.unsigned(Some(2), i);
        }
        self
    }

    /// WriteProperty-Request with an application-tagged value already encoded.
    pub fn write_property(
        &mut self,
        object: ObjectId,
        property: PropertyId,
        value: &[u8],
        priority: Option<u8>,
    ) -> &mut Self {
        self.object(Some(0), object)
            .property(Some(1), property)
            .opening(3)
            .raw(value)
            .closing(3);
        if let Some(p) = priority {
            self.unsigned(Some(4), p.into());
        }
        self
    }

    /// One ReadAccessSpecification of ReadPropertyMultiple.
    pub fn read_access(&mut self, object: ObjectId, properties: &[PropertyId]) -> &mut Self {
        self.object(Some(0), object).opening(1);
        for p in properties {
            self.property(Some(0), *p);
        }
        self.closing(1)
    }

    /// One WriteAccessSpecification of WritePropertyMultiple: (property, encoded value).
    pub fn write_access(&mut self, object: ObjectId, values: &[(PropertyId, &[u8])]) -> &mut Self {
        self.object(Some(0), object).opening(1);
        for (p, v) in values {
            self.property(Some(0), *p).opening(2).raw(v).closing(2);
        }
        self.closing(1)
    }

    /// Who-Is, with a device instance range or without.
    pub fn who_is(&mut self, range: Option<(u32, u32)>) -> &mut Self {
        if let Some((lo, hi)) = range {
            self.unsigned(Some(0), lo).unsigned(Some(1), hi);
        }
        self
    }

    /// I-Am: device, max APDU length, segmentation supported, vendor id.
    pub fn i_am(
        &mut self,
        device: ObjectId,
        max_apdu: u32,
        segmentation: u32,
        vendor: u32,
    ) -> &mut Self {
        self.object(None, device)
            .unsigned(None, max_apdu)
            .enumerated(None, segmentation)
            .unsigned(None, vendor)
    }
}

/// The BVLC function that carries an NPDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    OriginalUnicast,
    OriginalBroadcast,
    /// Forwarded by a BBMD, with the original source's B/IP address (IP and port).
    Forwarded([u8; 6]),
    DistributeBroadcast,
}

/// The NPCI of an NPDU as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NpciRepr<'v> {
    pub expecting_reply: bool,
    pub priority: u8,
    /// DNET, DADR and the hop count.
    pub destination: Option<(u16, &'v [u8], u8)>,
    /// SNET and SADR.
    pub source: Option<(u16, &'v [u8])>,
}

/// The sequence number, window size and more-follows of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub sequence: u8,
    pub window: u8,
    pub more_follows: bool,
}

/// What an NPDU carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'v> {
    Network {
        message: u8,
        /// The vendor id of a proprietary message (0x80-0xFF).
        vendor: Option<u16>,
        data: &'v [u8],
    },
    Confirmed {
        invoke_id: u8,
        service: u8,
        segment: Option<Segment>,
        data: &'v [u8],
    },
    Unconfirmed {
        service: u8,
        data: &'v [u8],
    },
    SimpleAck {
        invoke_id: u8,
        service: u8,
    },
    ComplexAck {
        invoke_id: u8,
        service: u8,
        segment: Option<Segment>,
        data: &'v [u8],
    },
    SegmentAck {
        invoke_id: u8,
        sequence: u8,
        window: u8,
        nak: bool,
        server: bool,
    },
    Error {
        invoke_id: u8,
        service: u8,
        class: u16,
        code: u16,
    },
    Reject {
        invoke_id: u8,
        reason: u8,
    },
    Abort {
        invoke_id: u8,
        reason: u8,
        server: bool,
    },
}

/// A BACnet/IP datagram as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'v> {
    /// A BVLC function without an NPDU, and its data as it goes on the wire.
    Link {
        function: BvlcFunction,
        data: &'v [u8],
    },
    Npdu {
        carrier: Carrier,
        npci: NpciRepr<'v>,
        body: Body<'v>,
    },
}

impl<'v> Repr<'v> {
    /// An original-unicast NPDU with a plain NPCI (expecting a reply for confirmed
    /// requests).
    pub fn unicast(body: Body<'v>) -> Repr<'v> {
        Repr::Npdu {
            carrier: Carrier::OriginalUnicast,
            npci: NpciRepr {
                expecting_reply: matches!(body, Body::Confirmed { .. }),
                ..NpciRepr::default()
            },
            body,
        }
    }

    /// Writes the datagram into `out` and returns its length; `None` when it does not
    /// fit (or is longer than the 16-bit BVLC length).
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let (head, rest) = out.split_at_mut_checked(BVLC_LEN)?;
        let mut e = Encoder::new(rest);
        let function = match self {
            Repr::Link { function, data } => {
                e.raw(data);
                *function
            }
            Repr::Npdu {
                carrier,
                npci,
                body,
            } => {
                let function = match carrier {
                    Carrier::OriginalUnicast => BvlcFunction::OriginalUnicastNpdu,
                    Carrier::OriginalBroadcast => BvlcFunction::OriginalBroadcastNpdu,
                    Carrier::DistributeBroadcast => BvlcFunction::DistributeBroadcast,
                    Carrier::Forwarded(from) => {
                        e.raw(from);
                        BvlcFunction::ForwardedNpdu
                    }
                };
                emit_npdu(&mut e, npci, body);
                function
            }
        };
        let total = BVLC_LEN + e.finish()?;
        head[0] = BVLC_TYPE;
        head[1] = function.into();
        head[2..4].copy_from_slice(&u16::try_from(total).ok()?.to_be_bytes());
        Some(total)
    }
}

fn emit_npdu(e: &mut Encoder<'_>, npci: &NpciRepr<'_>, body: &Body<'_>) {
    let mut ctl = npci.priority & 0x03;
    if npci.expecting_reply {
        ctl |= 0x04;
    }
    if npci.source.is_some() {
        ctl |= 0x08;
    }
    if npci.destination.is_some() {
        ctl |= 0x20;
    }
    if matches!(body, Body::Network { .. }) {
        ctl |= 0x80;
    }
    e.raw(&[1, ctl]);
    if let Some((dnet, dadr, _)) = npci.destination {
        e.raw(&dnet.to_be_bytes())
            .raw(&[dadr.len() as u8])
            .raw(dadr);
    }
    if let Some((snet, sadr)) = npci.source {
        e.raw(&snet.to_be_bytes())
            .raw(&[sadr.len() as u8])
            .raw(sadr);
    }
    if let Some((_, _, hops)) = npci.destination {
        e.raw(&[hops]);
    }
    let seg = |e: &mut Encoder<'_>, segment: &Option<Segment>| {
        if let Some(s) = segment {
            e.raw(&[s.sequence, s.window]);
        }
    };
    let seg_bits = |segment: &Option<Segment>| match segment {
        Some(s) if s.more_follows => 0x0c,
        Some(_) => 0x08,
        None => 0,
    };
    match *body {
        Body::Network {
            message,
            vendor,
            data,
        } => {
            e.raw(&[message]);
            if let Some(v) = vendor {
                e.raw(&v.to_be_bytes());
            }
            e.raw(data);
        }
        Body::Confirmed {
            invoke_id,
            service,
            segment,
            data,
        } => {
            // Segmented responses accepted, APDUs of up to 1476 octets.
            e.raw(&[seg_bits(&segment) | 0x02, 0x05, invoke_id]);
            seg(e, &segment);
            e.raw(&[service]).raw(data);
        }
        Body::Unconfirmed { service, data } => {
            e.raw(&[0x10, service]).raw(data);
        }
        Body::SimpleAck { invoke_id, service } => {
            e.raw(&[0x20, invoke_id, service]);
        }
        Body::ComplexAck {
            invoke_id,
            service,
            segment,
            data,
        } => {
            e.raw(&[0x30 | seg_bits(&segment), invoke_id]);
            seg(e, &segment);
            e.raw(&[service]).raw(data);
        }
        Body::SegmentAck {
            invoke_id,
            sequence,
            window,
            nak,
            server,
        } => {
            let flags = (u8::from(nak) << 1) | u8::from(server);
            e.raw(&[0x40 | flags, invoke_id, sequence, window]);
        }
        Body::Error {
            invoke_id,
            service,
            class,
            code,
        } => {
            e.raw(&[0x50, invoke_id, service])
                .enumerated(None, class.into())
                .enumerated(None, code.into());
        }
        Body::Reject { invoke_id, reason } => {
            e.raw(&[0x60, invoke_id, reason]);
        }
        Body::Abort {
            invoke_id,
            reason,
            server,
        } => {
            e.raw(&[0x70 | u8::from(server), invoke_id, reason]);
        }
    }
}
