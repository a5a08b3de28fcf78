//! Building DNP3 frames from values (tests, fuzz seeds, benchmarks): link frames with
//! their CRCs, fragments cut into transport segments, requests and responses.

use super::{crc, Control, Function, Range, BLOCK, LINK_HEADER, MAX_SEGMENT, MAX_USER_DATA};

/// A link header as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkRepr {
    pub control: u8,
    pub destination: u16,
    pub source: u16,
}

impl LinkRepr {
    /// A master's unconfirmed user data (DIR, PRM, function 4: control 0xC4).
    pub fn from_master(destination: u16, source: u16) -> LinkRepr {
        LinkRepr {
            control: 0xc4,
            destination,
            source,
        }
    }

    /// An outstation's unconfirmed user data (PRM, function 4: control 0x44).
    pub fn from_outstation(destination: u16, source: u16) -> LinkRepr {
        LinkRepr {
            control: 0x44,
            destination,
            source,
        }
    }

    /// Writes one link frame carrying `user_data` (at most 250 bytes) and returns its
    /// length.
    pub fn emit(&self, user_data: &[u8], out: &mut [u8]) -> Option<usize> {
        if user_data.len() > MAX_USER_DATA {
            return None;
        }
        let blocks = user_data.len().div_ceil(BLOCK);
        let total = LINK_HEADER + user_data.len() + 2 * blocks;
        let out = out.get_mut(..total)?;
        out[0] = 0x05;
        out[1] = 0x64;
        out[2] = (5 + user_data.len()) as u8;
        out[3] = self.control;
        out[4..6].copy_from_slice(&self.destination.to_le_bytes());
        out[6..8].copy_from_slice(&self.source.to_le_bytes());
        let c = crc(&out[..8]);
        out[8..10].copy_from_slice(&c.to_le_bytes());
        let mut at = LINK_HEADER;
        for block in user_data.chunks(BLOCK) {
            out[at..at + block.len()].copy_from_slice(block);
            at += block.len();
            out[at..at + 2].copy_from_slice(&crc(block).to_le_bytes());
            at += 2;
        }
        Some(total)
    }

    /// Writes `fragment` as transport segments of at most `segment` application bytes
    /// each (1-249), one link frame per segment, numbered from `seq`. Returns the
    /// bytes written.
    pub fn emit_fragment(
        &self,
        seq: u8,
        fragment: &[u8],
        segment: usize,
        out: &mut [u8],
    ) -> Option<usize> {
        if !(1..=MAX_SEGMENT).contains(&segment) {
            return None;
        }
        let parts = fragment.len().div_ceil(segment).max(1);
        let mut at = 0;
        let mut user = [0u8; MAX_USER_DATA];
        for i in 0..parts {
            let part = fragment
                .get(i * segment..((i + 1) * segment).min(fragment.len()))
                .unwrap_or(&[]);
            let mut th = (seq.wrapping_add(i as u8)) & 0x3f;
            if i == 0 {
                th |= 0x40;
            }
            if i == parts - 1 {
                th |= 0x80;
            }
            user[0] = th;
            user[1..=part.len()].copy_from_slice(part);
            at += self.emit(&user[..=part.len()], out.get_mut(at..)?)?;
        }
        Some(at)
    }
}

/// An object header and its objects, as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRepr<'v> {
    pub group: u8,
    pub variation: u8,
    pub qualifier: u8,
    /// Written with the widths the qualifier's range code says.
    pub range: Range,
    /// The objects with their prefixes, as they follow the header.
    pub objects: &'v [u8],
}

impl HeaderRepr<'_> {
    /// A header that names every object of a group (qualifier 0x06).
    pub fn all(group: u8, variation: u8) -> HeaderRepr<'static> {
        HeaderRepr {
            group,
            variation,
            qualifier: 0x06,
            range: Range::All,
            objects: &[],
        }
    }

    /// Writes the header and its objects; `None` when the range does not fit the
    /// qualifier or `out`.
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let mut head = [0u8; 11];
        head[..3].copy_from_slice(&[self.group, self.variation, self.qualifier]);
        let mut n = 3;
        let mut put = |v: u32, width: usize| -> Option<()> {
            if width < 4 && v >> (8 * width) != 0 {
                return None;
            }
            head[n..n + width].copy_from_slice(&v.to_le_bytes()[..width]);
            n += width;
            Some(())
        };
        match (self.qualifier & 0x0f, self.range) {
            (c @ (0..=5), Range::StartStop { start, stop }) => {
                let width = [1, 2, 4][usize::from(c % 3)];
                put(start, width)?;
                put(stop, width)?;
            }
            (6, Range::All) => {}
            (7 | 0xb, Range::Count(c)) => put(c, 1)?,
            (8, Range::Count(c)) => put(c, 2)?,
            (9, Range::Count(c)) => put(c, 4)?,
            _ => return None,
        }
        let total = n + self.objects.len();
        let out = out.get_mut(..total)?;
        out[..n].copy_from_slice(&head[..n]);
        out[n..].copy_from_slice(self.objects);
        Some(total)
    }
}

/// A request fragment as values: FIR and FIN set, sequence `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRepr<'v> {
    pub seq: u8,
    pub function: Function,
    pub headers: &'v [HeaderRepr<'v>],
}

impl RequestRepr<'_> {
    /// Writes the fragment and returns its length.
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let head = out.get_mut(..2)?;
        head[0] = Control::FIR | Control::FIN | (self.seq & 0x0f);
        head[1] = u8::from(self.function);
        let mut at = 2;
        for h in self.headers {
            at += h.emit(out.get_mut(at..)?)?;
        }
        Some(at)
    }
}

/// A response fragment as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseRepr<'v> {
    /// Application control (FIR, FIN, CON, UNS, sequence).
    pub control: u8,
    pub function: Function,
    pub iin: [u8; 2],
    /// Object headers and objects, as they follow the IIN.
    pub objects: &'v [u8],
}

impl ResponseRepr<'_> {
    /// Writes the fragment and returns its length.
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let total = 4 + self.objects.len();
        let out = out.get_mut(..total)?;
        out[..4].copy_from_slice(&[
            self.control,
            u8::from(self.function),
            self.iin[0],
            self.iin[1],
        ]);
        out[4..].copy_from_slice(self.objects);
        Some(total)
    }
}
