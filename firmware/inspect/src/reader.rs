//! A bounds-checked cursor over untrusted bytes: every read either succeeds or returns
//! `Malformed` with the caller's phrase; nothing can index out of bounds.

use crate::{Malformed, Protocol};

#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    protocol: Protocol,
}

impl<'a> Reader<'a> {
    pub fn new(protocol: Protocol, bytes: &'a [u8]) -> Self {
        Reader {
            bytes,
            pos: 0,
            protocol,
        }
    }

    /// A `Malformed` of this reader's protocol.
    pub fn error(&self, what: &'static str) -> Malformed {
        Malformed::new(self.protocol, what)
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Malformed> {
        if n > self.remaining() {
            return Err(self.error(what));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn skip(&mut self, n: usize, what: &'static str) -> Result<(), Malformed> {
        self.take(n, what).map(|_| ())
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, Malformed> {
        Ok(self.take(1, what)?[0])
    }

    pub fn be_u16(&mut self, what: &'static str) -> Result<u16, Malformed> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn le_u16(&mut self, what: &'static str) -> Result<u16, Malformed> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn be_u32(&mut self, what: &'static str) -> Result<u32, Malformed> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn le_u32(&mut self, what: &'static str) -> Result<u32, Malformed> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn le_u24(&mut self, what: &'static str) -> Result<u32, Malformed> {
        let b = self.take(3, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], 0]))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn reads_and_refuses_past_the_end() {
        let mut r = Reader::new(Protocol::Modbus, &[1, 2, 3, 4, 5]);
        assert_eq!(r.u8("a"), Ok(1));
        assert_eq!(r.be_u16("b"), Ok(0x0203));
        assert_eq!(r.le_u16("c"), Ok(0x0504));
        assert_eq!(r.u8("d"), Err(Malformed::new(Protocol::Modbus, "d")));
        assert!(r.is_empty());
        let mut r = Reader::new(Protocol::Dnp3, &[1, 2, 3]);
        assert!(r.be_u32("x").is_err());
        assert_eq!(r.position(), 0, "a failed read consumes nothing");
        assert_eq!(r.le_u24("y"), Ok(0x030201));
    }
}
