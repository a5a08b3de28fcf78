//! BACnet's tag encoding (ANSI/ASHRAE 135, clause 20.2.1) and a walk over the tagged
//! service parameters of a request that finds the objects and properties it names.
//!
//! A tag's first octet holds the tag number (high nibble; 15 says an extended number
//! follows), the class (bit 3: application or context-specific) and the
//! length/value/type field (0-4: the length; 5: an extended length follows; 6 and 7:
//! opening and closing tags of constructed context data). The application tag 1
//! (boolean) carries its value in that field and has no content.
//!
//! The walk checks the whole encoding: every tag well formed, lengths inside the
//! data, opening and closing tags paired and nested at most [`MAX_DEPTH`] deep. It
//! reports the elements a service's [`Layout`] names, by their place: the context or
//! application tag number at the top level of the parameters, or one level down inside
//! a given constructed element (the property references of ReadPropertyMultiple, say).

use crate::{Malformed, Protocol, Reader};

use super::names::{ObjectType, PropertyId};
use super::ObjectId;

const P: Protocol = Protocol::Bacnet;

/// How deeply constructed data may nest before a message is refused.
pub const MAX_DEPTH: usize = 16;

/// Application tag numbers that matter here.
pub(crate) const APP_BOOLEAN: u8 = 1;
pub(crate) const APP_ENUMERATED: u8 = 9;
pub(crate) const APP_OBJECT_ID: u8 = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Application,
    Context,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind<'a> {
    /// Primitive data (for an application boolean: empty, see `Boolean`).
    Data(&'a [u8]),
    Boolean(bool),
    Opening,
    Closing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tag<'a> {
    pub number: u8,
    pub class: Class,
    pub kind: Kind<'a>,
}

/// Reads one tag and its content.
pub(crate) fn next_tag<'a>(r: &mut Reader<'a>) -> Result<Tag<'a>, Malformed> {
    let first = r.u8("tag truncated")?;
    let mut number = first >> 4;
    let class = if first & 0x08 != 0 {
        Class::Context
    } else {
        Class::Application
    };
    let lvt = first & 0x07;
    if number == 15 {
        number = r.u8("extended tag number truncated")?;
        if number == 255 {
            return Err(Malformed::new(P, "reserved tag number 255"));
        }
    }
    let kind_without_data = match (class, lvt) {
        (Class::Context, 6) => Some(Kind::Opening),
        (Class::Context, 7) => Some(Kind::Closing),
        (Class::Application, 6 | 7) => {
            return Err(Malformed::new(
                P,
                "opening or closing tag of application class",
            ))
        }
        (Class::Application, v) if number == APP_BOOLEAN => {
            if v > 1 {
                return Err(Malformed::new(P, "boolean value is neither 0 nor 1"));
            }
            Some(Kind::Boolean(v == 1))
        }
        _ => None,
    };
    if let Some(kind) = kind_without_data {
        return Ok(Tag {
            number,
            class,
            kind,
        });
    }
    let len = if lvt == 5 {
        match r.u8("extended length truncated")? {
            254 => usize::from(r.be_u16("extended length truncated")?),
            255 => r.be_u32("extended length truncated")? as usize,
            n => usize::from(n),
        }
    } else {
        usize::from(lvt)
    };
    let data = r.take(len, "tag data runs past the end")?;
    Ok(Tag {
        number,
        class,
        kind: Kind::Data(data),
    })
}

/// An unsigned or enumerated value of 1-4 octets.
pub(crate) fn unsigned(data: &[u8], what: &'static str) -> Result<u32, Malformed> {
    if data.is_empty() || data.len() > 4 {
        return Err(Malformed::new(P, what));
    }
    Ok(data.iter().fold(0u32, |v, &b| (v << 8) | u32::from(b)))
}

/// What an element of a service's parameters is, for the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// A `BACnetObjectIdentifier`.
    Object,
    /// A `BACnetObjectType` without an instance (CreateObject by type).
    ObjectType,
    /// A `BACnetPropertyIdentifier`.
    Property,
    /// An enumerated parameter shown in events (ReinitializeDevice's state,
    /// DeviceCommunicationControl's enable-disable).
    Value,
}

/// Where an element sits: at the top level (`inside: None`) or directly inside the
/// constructed element with context tag `inside`; and its own class and tag number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place {
    pub inside: Option<u8>,
    pub class: Class,
    pub number: u8,
    pub slot: Slot,
}

const fn ctx(inside: Option<u8>, number: u8, slot: Slot) -> Place {
    Place {
        inside,
        class: Class::Context,
        number,
        slot,
    }
}

const fn app(number: u8, slot: Slot) -> Place {
    Place {
        inside: None,
        class: Class::Application,
        number,
        slot,
    }
}

/// How a service's parameters name objects and properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// The elements at these places (and no object or property elsewhere).
    Places(&'static [Place]),
    /// The service names no object or property of the receiver at all.
    Nothing,
    /// Objects may be named in ways not decoded here (private transfers, the
    /// multiple-subscription services, write-group's channels …).
    Opaque,
}

use Slot::{Object as O, ObjectType as T, Property as Pr, Value as V};

/// ReadProperty, WriteProperty, ReadRange, Add/RemoveListElement: [0] object, [1] property.
pub(crate) const OBJECT_PROPERTY: Layout = Layout::Places(&[ctx(None, 0, O), ctx(None, 1, Pr)]);
/// Read/WritePropertyMultiple: [0] object, [1] { [0] property … } repeated.
pub(crate) const ACCESS_SPECS: Layout = Layout::Places(&[ctx(None, 0, O), ctx(Some(1), 0, Pr)]);
/// SubscribeCOV: [1] monitored object.
pub(crate) const SUBSCRIBE_COV: Layout = Layout::Places(&[ctx(None, 1, O)]);
/// SubscribeCOVProperty: [1] monitored object, [4] { [0] monitored property }.
pub(crate) const SUBSCRIBE_COV_PROPERTY: Layout =
    Layout::Places(&[ctx(None, 1, O), ctx(Some(4), 0, Pr)]);
/// AtomicRead/WriteFile, DeleteObject, I-Am, I-Have, You-Are: application-tagged
/// object identifiers at the top level.
pub(crate) const APP_OBJECTS: Layout = Layout::Places(&[app(APP_OBJECT_ID, O)]);
/// CreateObject: [0] { [0] object type | [1] object identifier }, [1] { [0] property … }.
pub(crate) const CREATE_OBJECT: Layout =
    Layout::Places(&[ctx(Some(0), 0, T), ctx(Some(0), 1, O), ctx(Some(1), 0, Pr)]);
/// AcknowledgeAlarm: [1] event object.
pub(crate) const ACKNOWLEDGE_ALARM: Layout = Layout::Places(&[ctx(None, 1, O)]);
/// LifeSafetyOperation: [3] object (optional).
pub(crate) const LIFE_SAFETY: Layout = Layout::Places(&[ctx(None, 3, O)]);
/// COV notifications: [2] monitored object, [4] { [0] property … }.
pub(crate) const COV_NOTIFICATION: Layout = Layout::Places(&[ctx(None, 2, O), ctx(Some(4), 0, Pr)]);
/// Event notifications: [2] event object. Who-Has: [2] object (or [3] its name).
pub(crate) const CONTEXT_2_OBJECT: Layout = Layout::Places(&[ctx(None, 2, O)]);
/// ReinitializeDevice: [0] reinitialized state of device.
pub(crate) const REINITIALIZE: Layout = Layout::Places(&[ctx(None, 0, V)]);
/// DeviceCommunicationControl: [1] enable-disable.
pub(crate) const COMMUNICATION_CONTROL: Layout = Layout::Places(&[ctx(None, 1, V)]);

/// One element found by the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Item {
    Object(ObjectId),
    ObjectType(ObjectType),
    Property(PropertyId),
    Value(u32),
}

/// A walk over tagged data: checks every tag and yields the elements `places` names.
#[derive(Debug, Clone)]
pub(crate) struct Walk<'a> {
    r: Reader<'a>,
    places: &'static [Place],
    stack: [u8; MAX_DEPTH],
    depth: usize,
}

impl<'a> Walk<'a> {
    pub fn new(data: &'a [u8], places: &'static [Place]) -> Walk<'a> {
        Walk {
            r: Reader::new(P, data),
            places,
            stack: [0; MAX_DEPTH],
            depth: 0,
        }
    }

    /// The next element of interest; `Ok(None)` at the end of well-formed data.
    pub fn next_item(&mut self) -> Result<Option<Item>, Malformed> {
        loop {
            if self.r.is_empty() {
                if self.depth != 0 {
                    return Err(Malformed::new(P, "opening tag without its closing tag"));
                }
                return Ok(None);
            }
            let tag = next_tag(&mut self.r)?;
            let data = match tag.kind {
                Kind::Opening => {
                    if self.depth == MAX_DEPTH {
                        return Err(Malformed::new(P, "constructed data nested too deep"));
                    }
                    self.stack[self.depth] = tag.number;
                    self.depth += 1;
                    continue;
                }
                Kind::Closing => {
                    if self.depth == 0 || self.stack[self.depth - 1] != tag.number {
                        return Err(Malformed::new(P, "closing tag without its opening tag"));
                    }
                    self.depth -= 1;
                    continue;
                }
                Kind::Boolean(_) => continue,
                Kind::Data(data) => data,
            };
            let inside = match self.depth {
                0 => None,
                1 => Some(self.stack[0]),
                _ => continue,
            };
            let Some(place) = self
                .places
                .iter()
                .find(|p| p.inside == inside && p.class == tag.class && p.number == tag.number)
            else {
                continue;
            };
            return decode(place.slot, data).map(Some);
        }
    }
}

fn decode(slot: Slot, data: &[u8]) -> Result<Item, Malformed> {
    Ok(match slot {
        Slot::Object => {
            let [a, b, c, d] = data else {
                return Err(Malformed::new(P, "object identifier is not 4 bytes"));
            };
            Item::Object(ObjectId::from_raw(u32::from_be_bytes([*a, *b, *c, *d])))
        }
        Slot::ObjectType => {
            let v = unsigned(data, "object type is not 1-4 bytes")?;
            if v > 1023 {
                return Err(Malformed::new(P, "object type above 1023"));
            }
            Item::ObjectType(ObjectType::from(v as u16))
        }
        Slot::Property => {
            let v = unsigned(data, "property identifier is not 1-4 bytes")?;
            if v > super::MAX_PROPERTY {
                return Err(Malformed::new(P, "property identifier above 4194303"));
            }
            Item::Property(PropertyId::from(v))
        }
        Slot::Value => Item::Value(unsigned(data, "enumerated value is not 1-4 bytes")?),
    })
}

/// Checks that `data` is a sequence of well-formed tags, properly nested.
pub(crate) fn check(data: &[u8]) -> Result<(), Malformed> {
    let mut walk = Walk::new(data, &[]);
    while walk.next_item()?.is_some() {}
    Ok(())
}

/// The error class and code of an Error PDU: the first two application-tagged
/// enumerated values at the top level or one level down (where the services with
/// constructed errors put them).
pub(crate) fn error_class_and_code(data: &[u8]) -> Option<(u32, u32)> {
    let mut r = Reader::new(P, data);
    let mut depth = 0usize;
    let mut found = [0u32; 2];
    let mut n = 0;
    while !r.is_empty() && n < 2 {
        let tag = next_tag(&mut r).ok()?;
        match tag.kind {
            Kind::Opening => depth += 1,
            Kind::Closing => depth = depth.saturating_sub(1),
            Kind::Data(d)
                if depth <= 1
                    && tag.class == Class::Application
                    && tag.number == APP_ENUMERATED =>
            {
                found[n] = unsigned(d, "").ok()?;
                n += 1;
            }
            _ => {}
        }
    }
    (n == 2).then_some((found[0], found[1]))
}

#[cfg(test)]
mod test {
    use super::*;

    fn tag(bytes: &[u8]) -> Result<Tag<'_>, Malformed> {
        next_tag(&mut Reader::new(P, bytes))
    }

    #[test]
    fn tag_forms() {
        // Clause 20.2.1 examples: context tag 0, length 4 (an object identifier).
        let t = tag(&[0x0c, 0x00, 0x00, 0x00, 0x05]).unwrap();
        assert_eq!((t.number, t.class), (0, Class::Context));
        assert_eq!(t.kind, Kind::Data(&[0, 0, 0, 5]));
        // Application unsigned 72 (20.2.4: X'21 48').
        let t = tag(&[0x21, 0x48]).unwrap();
        assert_eq!(
            (t.number, t.class, t.kind),
            (2, Class::Application, Kind::Data(&[0x48]))
        );
        // Application boolean TRUE (20.2.3: X'11').
        assert_eq!(tag(&[0x11]).unwrap().kind, Kind::Boolean(true));
        assert!(tag(&[0x12]).is_err());
        // Opening and closing context tag 3 (20.2.1.3.2: X'3E', X'3F').
        assert_eq!(tag(&[0x3e]).unwrap().kind, Kind::Opening);
        assert_eq!(tag(&[0x3f]).unwrap().kind, Kind::Closing);
        assert!(tag(&[0x36]).is_err(), "application opening tag");
        // Extended tag number 254 and extended lengths.
        let t = tag(&[0xf9, 0xfe, 0x01]).unwrap();
        assert_eq!((t.number, t.kind), (254, Kind::Data(&[1])));
        assert!(tag(&[0xf9, 0xff, 0x01]).is_err());
        let mut long = std::vec![0x65, 254, 0x01, 0x00];
        long.extend(std::iter::repeat_n(0x41, 256));
        let t = tag(&long).unwrap();
        assert!(matches!(t.kind, Kind::Data(d) if d.len() == 256));
        assert!(tag(&[0x65, 255, 0xff, 0xff, 0xff, 0xff, 0]).is_err());
        assert!(tag(&[0x65, 10, 1, 2]).is_err());
        assert!(tag(&[]).is_err());
    }

    #[test]
    fn nesting_is_checked() {
        assert!(check(&[0x1e, 0x09, 0x55, 0x1f]).is_ok());
        assert!(check(&[0x1e, 0x09, 0x55]).is_err(), "unclosed");
        assert!(check(&[0x1e, 0x2f]).is_err(), "mismatched");
        assert!(check(&[0x1f]).is_err(), "stray closing");
        let mut deep = std::vec![0x0e; MAX_DEPTH];
        deep.extend(std::iter::repeat_n(0x0f, MAX_DEPTH));
        assert!(check(&deep).is_ok());
        let mut deeper = std::vec![0x0e];
        deeper.extend_from_slice(&deep);
        deeper.push(0x0f);
        assert!(check(&deeper).is_err());
    }

    #[test]
    fn error_class_and_code_at_both_depths() {
        // error-class object (1), error-code unknown-object (31).
        assert_eq!(
            error_class_and_code(&[0x91, 0x01, 0x91, 0x1f]),
            Some((1, 31))
        );
        // WritePropertyMultiple-Error: [0] { class, code } [1] { … }.
        let wpm = [0x0e, 0x91, 0x02, 0x91, 0x28, 0x0f, 0x1e, 0x0f];
        assert_eq!(error_class_and_code(&wpm), Some((2, 40)));
        assert_eq!(error_class_and_code(&[0x91, 0x01]), None);
    }
}
