//! Whatever the bytes and however they are cut into segments, no protocol's stream or
//! datagram path panics.

use gk_inspect::{fuzzing, Protocol};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(p in 0..Protocol::ALL.len(), data in proptest::collection::vec(any::<u8>(), 0..3000)) {
        fuzzing::exercise(Protocol::ALL[p], &data);
    }
}
