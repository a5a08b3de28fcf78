//! The part of gk-init that others share: the runtime board description
//! (`/etc/gatekeeper/board.toml`) that the image builder writes and both stages read,
//! so that `gk-image`'s tests check what it writes with the reader that will read it.

pub mod board;
