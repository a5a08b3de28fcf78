//! `enum_with_unknown!`: wire codes as enums that decode totally.

/// Declares a `Copy` enum over a wire integer with an extra `Unknown(raw)` variant, plus
/// `From` conversions both ways. Decoding never fails: a code this crate has no name for is
/// data (`Unknown(raw)`), and it re-encodes to the same integer.
///
/// Construct values with `From`; `Unknown(n)` for an `n` that has a name compares unequal to
/// the named variant.
macro_rules! enum_with_unknown {
    (
        $( #[$enum_attr:meta] )*
        pub enum $name:ident($ty:ty) {
            $(
                $( #[$variant_attr:meta] )*
                $variant:ident = $value:expr
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
    };
}

pub(crate) use enum_with_unknown;

#[cfg(test)]
mod test {
    enum_with_unknown! {
        /// Test enum.
        pub enum Code(u8) {
            A = 1,
            B = 0x20,
        }
    }

    #[test]
    fn total_both_ways() {
        for raw in 0..=u8::MAX {
            let code = Code::from(raw);
            assert_eq!(u8::from(code), raw);
            match raw {
                1 => assert_eq!(code, Code::A),
                0x20 => assert_eq!(code, Code::B),
                _ => assert_eq!(code, Code::Unknown(raw)),
            }
        }
    }
}
