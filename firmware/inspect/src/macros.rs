//! `codes!`: wire codes as enums that decode totally and carry their policy names.

/// Declares a `Copy` enum over a wire integer with an extra `Unknown(raw)` variant, `From`
/// conversions both ways, and the kebab-case name of every known code (the vocabulary
/// of the policy file and of events). Decoding never fails: a code without a name is
/// data (`Unknown(raw)`) and re-encodes to the same integer.
macro_rules! codes {
    (
        $( #[$enum_attr:meta] )*
        pub enum $name:ident($ty:ty) {
            $(
                $( #[$variant_attr:meta] )*
                $variant:ident = $value:expr => $text:literal
            ),+ $(,)?
        }
    ) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $( #[$enum_attr] )*
        pub enum $name {
            $(
                $( #[$variant_attr] )*
                $variant,
            )+
            /// A value without a name here, kept as it was on the wire.
            Unknown($ty),
        }

        impl ::core::convert::From<$ty> for $name {
            fn from(value: $ty) -> Self {
                match value {
                    $( v if v == $value => $name::$variant, )+
                    other => $name::Unknown(other),
                }
            }
        }

        impl ::core::convert::From<$name> for $ty {
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value, )+
                    $name::Unknown(other) => other,
                }
            }
        }

        impl $name {
            /// Every named code as (name, value), in declaration order.
            pub const NAMES: &'static [(&'static str, $ty)] = &[ $( ($text, $value) ),+ ];

            /// The kebab-case name; `None` for a code without one.
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $( $name::$variant => Some($text), )+
                    $name::Unknown(_) => None,
                }
            }

            /// The code with this exact name.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::NAMES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|&(_, v)| Self::from(v))
            }
        }

        impl ::core::fmt::Display for $name {
            /// The name, or the number for a code without one.
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}", <$ty>::from(*self)),
                }
            }
        }
    };
}

pub(crate) use codes;

#[cfg(test)]
mod test {
    codes! {
        /// Test enum.
        pub enum Code(u8) {
            A = 1 => "alpha",
            B = 0x20 => "bravo",
        }
    }

    #[test]
    fn total_both_ways_with_names() {
        for raw in 0..=u8::MAX {
            let code = Code::from(raw);
            assert_eq!(u8::from(code), raw);
            match raw {
                1 => assert_eq!(code.name(), Some("alpha")),
                0x20 => assert_eq!(code, Code::B),
                _ => assert_eq!(code, Code::Unknown(raw)),
            }
        }
        assert_eq!(Code::from_name("bravo"), Some(Code::B));
        assert_eq!(Code::from_name("charlie"), None);
        assert_eq!(std::format!("{} {}", Code::A, Code::from(7)), "alpha 7");
    }
}
