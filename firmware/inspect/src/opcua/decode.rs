//! The OPC UA binary encoding of the built-in types a firewall meets before a service's
//! own parameters (OPC 10000-6, 5.2): integers, String/ByteString, NodeId,
//! ExtensionObject, DiagnosticInfo, and the request and response headers.
//!
//! A read stops with [`Stop::Short`] when the bytes run out — which is fine when only
//! the first part of a long message is at hand — and with [`Stop::Bad`] when the bytes
//! cannot be this type at all.

/// Why a read stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// The bytes ran out (what was being read).
    Short(&'static str),
    /// The bytes are not a value of the type.
    Bad(&'static str),
}

pub(super) type R<T> = Result<T, Stop>;

/// `DiagnosticInfo` nests through its inner diagnostics; stacks recurse on them, and no
/// honest message nests deeper than this.
pub(super) const MAX_DIAGNOSTIC_DEPTH: usize = 32;

/// A NodeId as the policy sees it: numeric ones by namespace and number, the others
/// (string, GUID, opaque) only as such.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeId {
    Numeric {
        ns: u16,
        id: u32,
    },
    /// A string, GUID or opaque identifier.
    Other {
        ns: u16,
    },
}

impl NodeId {
    /// The number of a namespace-0 numeric NodeId.
    pub fn ns0(self) -> Option<u32> {
        match self {
            NodeId::Numeric { ns: 0, id } => Some(id),
            _ => None,
        }
    }
}

/// What a request header says that the parser uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RequestHeader {
    pub timestamp: i64,
    pub return_diagnostics: u32,
}

/// What a response header says that the parser uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ResponseHeader {
    pub timestamp: i64,
    pub service_result: u32,
}

/// A cursor over one message. It never reads past its bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cur<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    pub fn at(bytes: &'a [u8], pos: usize) -> Cur<'a> {
        Cur {
            bytes,
            pos: pos.min(bytes.len()),
        }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> R<&'a [u8]> {
        if n > self.remaining() {
            return Err(Stop::Short(what));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> R<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub fn u8(&mut self, what: &'static str) -> R<u8> {
        Ok(self.take(1, what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> R<u16> {
        self.array(what).map(u16::from_le_bytes)
    }

    pub fn u32(&mut self, what: &'static str) -> R<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub fn i32(&mut self, what: &'static str) -> R<i32> {
        self.array(what).map(i32::from_le_bytes)
    }

    pub fn i64(&mut self, what: &'static str) -> R<i64> {
        self.array(what).map(i64::from_le_bytes)
    }

    /// A String or ByteString: an Int32 length (-1 for null) and that many bytes.
    pub fn bytes_field(&mut self, what: &'static str) -> R<Option<&'a [u8]>> {
        match self.i32(what)? {
            -1 => Ok(None),
            n if n < 0 => Err(Stop::Bad("negative length")),
            n => self.take(n as usize, what).map(Some),
        }
    }

    /// A String of at most `max` bytes of UTF-8 (`None` for null).
    pub fn string(
        &mut self,
        max: usize,
        what: &'static str,
        too_long: &'static str,
    ) -> R<Option<&'a [u8]>> {
        let mut peek = *self;
        if let Ok(n) = peek.i32(what) {
            if n > 0 && n as usize > max {
                return Err(Stop::Bad(too_long));
            }
        }
        let s = self.bytes_field(what)?;
        if let Some(s) = s {
            if core::str::from_utf8(s).is_err() {
                return Err(Stop::Bad("string is not UTF-8"));
            }
        }
        Ok(s)
    }

    /// A NodeId in any of its six encodings; the ExpandedNodeId flags are not allowed.
    pub fn node_id(&mut self, what: &'static str) -> R<NodeId> {
        Ok(match self.u8(what)? {
            0x00 => NodeId::Numeric {
                ns: 0,
                id: self.u8(what)?.into(),
            },
            0x01 => {
                let ns = self.u8(what)?.into();
                let id = self.u16(what)?.into();
                NodeId::Numeric { ns, id }
            }
            0x02 => {
                let ns = self.u16(what)?;
                let id = self.u32(what)?;
                NodeId::Numeric { ns, id }
            }
            0x03 | 0x05 => {
                let ns = self.u16(what)?;
                self.bytes_field(what)?;
                NodeId::Other { ns }
            }
            0x04 => {
                let ns = self.u16(what)?;
                self.take(16, what)?;
                NodeId::Other { ns }
            }
            _ => return Err(Stop::Bad("bad NodeId encoding")),
        })
    }

    /// An ExtensionObject: its type's NodeId, an encoding byte and the body.
    pub fn extension_object(&mut self, what: &'static str) -> R<()> {
        self.node_id(what)?;
        match self.u8(what)? {
            0x00 => {}
            0x01 | 0x02 => {
                self.bytes_field(what)?;
            }
            _ => return Err(Stop::Bad("bad ExtensionObject encoding")),
        }
        Ok(())
    }

    /// A DiagnosticInfo with its inner ones (a loop, not recursion: the inner one is the
    /// last field).
    pub fn diagnostic_info(&mut self, what: &'static str) -> R<()> {
        for _ in 0..MAX_DIAGNOSTIC_DEPTH {
            let mask = self.u8(what)?;
            if mask & 0x80 != 0 {
                return Err(Stop::Bad("reserved DiagnosticInfo bit set"));
            }
            // SymbolicId, NamespaceUri, LocalizedText, Locale: Int32 indexes.
            let ints = (mask & 0x0f).count_ones() as usize;
            self.take(4 * ints, what)?;
            if mask & 0x10 != 0 {
                self.bytes_field(what)?;
            }
            if mask & 0x20 != 0 {
                self.u32(what)?;
            }
            if mask & 0x40 == 0 {
                return Ok(());
            }
        }
        Err(Stop::Bad("DiagnosticInfo nested too deep"))
    }

    /// `RequestHeader` (OPC 10000-4, 7.33).
    pub fn request_header(&mut self) -> R<RequestHeader> {
        let what = "request header truncated";
        self.node_id(what)?; // authenticationToken
        let timestamp = self.i64(what)?;
        self.u32(what)?; // requestHandle
        let return_diagnostics = self.u32(what)?;
        self.bytes_field(what)?; // auditEntryId
        self.u32(what)?; // timeoutHint
        self.extension_object(what)?; // additionalHeader
        Ok(RequestHeader {
            timestamp,
            return_diagnostics,
        })
    }

    /// `ResponseHeader` (OPC 10000-4, 7.34).
    pub fn response_header(&mut self) -> R<ResponseHeader> {
        let what = "response header truncated";
        let timestamp = self.i64(what)?;
        self.u32(what)?; // requestHandle
        let service_result = self.u32(what)?;
        self.diagnostic_info(what)?;
        match self.i32(what)? {
            -1 => {}
            n if n < 0 => return Err(Stop::Bad("negative length")),
            n => {
                for _ in 0..n {
                    self.bytes_field(what)?;
                }
            }
        }
        self.extension_object(what)?;
        Ok(ResponseHeader {
            timestamp,
            service_result,
        })
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn node_id_encodings() {
        // OPC 10000-6, 5.2.2.9: the three numeric encodings of i=631.
        for bytes in [
            &[0x01, 0x00, 0x77, 0x02][..],
            &[0x02, 0x00, 0x00, 0x77, 0x02, 0x00, 0x00][..],
        ] {
            let n = Cur::at(bytes, 0).node_id("x").unwrap();
            assert_eq!(n, NodeId::Numeric { ns: 0, id: 631 });
        }
        assert_eq!(
            Cur::at(&[0x00, 0x48], 0).node_id("x"),
            Ok(NodeId::Numeric { ns: 0, id: 0x48 })
        );
        // 5.2.2.9's string example: ns=1, "Hot水".
        let s = [
            0x03, 0x01, 0x00, 0x06, 0, 0, 0, b'H', b'o', b't', 0xe6, 0xb0, 0xb4,
        ];
        assert_eq!(Cur::at(&s, 0).node_id("x"), Ok(NodeId::Other { ns: 1 }));
        assert_eq!(
            Cur::at(&[0x81, 0, 0, 0], 0).node_id("x"),
            Err(Stop::Bad("bad NodeId encoding"))
        );
        assert_eq!(
            Cur::at(&[0x01, 0x00], 0).node_id("x"),
            Err(Stop::Short("x"))
        );
    }

    #[test]
    fn strings_and_lengths() {
        let mut c = Cur::at(&[0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, b'o', b'k'], 0);
        assert_eq!(c.string(10, "s", "long"), Ok(None));
        assert_eq!(c.string(10, "s", "long"), Ok(Some(&b"ok"[..])));
        let mut c = Cur::at(&[2, 0, 0, 0, b'o', b'k'], 0);
        assert_eq!(c.string(1, "s", "long"), Err(Stop::Bad("long")));
        let mut c = Cur::at(&[0xfe, 0xff, 0xff, 0xff], 0);
        assert_eq!(c.bytes_field("s"), Err(Stop::Bad("negative length")));
        let mut c = Cur::at(&[2, 0, 0, 0, 0xff, 0xfe], 0);
        assert_eq!(
            c.string(10, "s", "long"),
            Err(Stop::Bad("string is not UTF-8"))
        );
    }

    #[test]
    fn diagnostic_info_nesting_is_bounded() {
        let mut deep = [0x40u8; 64];
        deep[63] = 0;
        assert_eq!(
            Cur::at(&deep, 0).diagnostic_info("d"),
            Err(Stop::Bad("DiagnosticInfo nested too deep"))
        );
        let ok = [0x41, 1, 0, 0, 0, 0x20, 5, 0, 0, 0];
        let mut c = Cur::at(&ok, 0);
        assert_eq!(c.diagnostic_info("d"), Ok(()));
        assert_eq!(c.remaining(), 0);
    }
}
