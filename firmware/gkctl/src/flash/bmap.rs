//! The block map of an image (`disk.img.bmap`, the XML format of bmap-tools), parsed
//! strictly.
//!
//! ```xml
//! <bmap version="2.0">
//!     <ImageSize> 1048576 </ImageSize>
//!     <BlockSize> 4096 </BlockSize>
//!     <BlocksCount> 256 </BlocksCount>
//!     <MappedBlocksCount> 4 </MappedBlocksCount>
//!     <ChecksumType> sha256 </ChecksumType>
//!     <BmapFileChecksum> 1e8a…(64 hex) </BmapFileChecksum>
//!     <BlockMap>
//!         <Range chksum="b150…"> 3 </Range>
//!         <Range chksum="201b…"> 100-102 </Range>
//!     </BlockMap>
//! </bmap>
//! ```
//!
//! Why not the `bmap-parser` crate: it panics on a malformed range (`parse().unwrap()`),
//! does not check `BmapFileChecksum`, and brings an async runtime's worth of
//! dependencies. The XML itself is parsed by `roxmltree` (maintained, no dependencies);
//! this module only judges what it says.
//!
//! What is checked, so that nothing downstream can be surprised: the file's own
//! checksum (SHA-256 of the file with the checksum's digits replaced by zeros, as
//! bmaptool computes it); major version 1 or 2 with `ChecksumType` sha256 (1.3 and older
//! used SHA-1 and are refused); every count consistent with the image size; ranges in
//! ascending order, not overlapping, inside the image, each with a SHA-256; the mapped
//! count equal to the sum of the ranges.

use sha2::{Digest, Sha256};

/// The largest bmap file read (an image of many small fragments has a long map, but
/// not this long).
pub const MAX_BMAP_SIZE: usize = 64 << 20;

/// One mapped range of blocks, `first..=last`, and the SHA-256 of its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    pub first: u64,
    pub last: u64,
    pub sha256: [u8; 32],
    /// 1-based line of its `<Range>` element in the bmap file (for messages).
    pub line: u32,
}

/// A validated block map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bmap {
    pub version: String,
    pub image_size: u64,
    pub block_size: u64,
    pub blocks_count: u64,
    pub mapped_blocks: u64,
    pub ranges: Vec<Range>,
}

impl Bmap {
    /// Byte offset and length of `range` in the image (the last block of an image whose
    /// size is not a multiple of the block size is short, and so is its range).
    pub fn bytes(&self, range: &Range) -> (u64, u64) {
        let start = range.first * self.block_size;
        let end = ((range.last + 1) * self.block_size).min(self.image_size);
        (start, end - start)
    }

    /// Bytes of the image that are mapped (what is written).
    pub fn mapped_bytes(&self) -> u64 {
        self.ranges.iter().map(|r| self.bytes(r).1).sum()
    }
}

/// Parses and validates a bmap file. `Err` says what is wrong, with a line where there
/// is one.
pub fn parse(bytes: &[u8]) -> Result<Bmap, String> {
    if bytes.len() > MAX_BMAP_SIZE {
        return Err(format!(
            "{} bytes is too large for a bmap file (at most {MAX_BMAP_SIZE})",
            bytes.len()
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text: not a bmap file")?;
    let doc = roxmltree::Document::parse(text).map_err(|e| format!("not valid XML: {e}"))?;
    let line = |node: roxmltree::Node<'_, '_>| doc.text_pos_at(node.range().start).row;
    let root = doc.root_element();
    if root.tag_name().name() != "bmap" {
        return Err(format!(
            "line {}: the root element is <{}>, not <bmap>: not a bmap file",
            line(root),
            root.tag_name().name()
        ));
    }
    let version = root
        .attribute("version")
        .ok_or_else(|| format!("line {}: <bmap> has no version attribute", line(root)))?
        .trim()
        .to_string();
    let (major, minor) = version
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
        .ok_or_else(|| {
            format!(
                "line {}: version {version:?} is not MAJOR.MINOR",
                line(root)
            )
        })?;
    if !(major == 2 || (major == 1 && minor >= 4)) {
        return Err(format!(
            "bmap version {version} is not supported (1.4 to 2.x; older ones use SHA-1): \
             make a new one with `bmaptool create`"
        ));
    }

    let mut fields: Vec<(&str, roxmltree::Node<'_, '_>)> = Vec::new();
    for child in root.children().filter(|n| n.is_element()) {
        let name = child.tag_name().name();
        if let Some((_, first)) = fields.iter().find(|(n, _)| *n == name) {
            return Err(format!(
                "line {}: a second <{name}> (the first is on line {})",
                line(child),
                line(*first)
            ));
        }
        // Unknown elements are allowed: minor versions add backward-compatible ones.
        fields.push((name, child));
    }
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, node)| *node)
            .ok_or_else(|| format!("<{name}> is missing"))
    };
    let number = |name: &str| -> Result<u64, String> {
        let node = field(name)?;
        let value = node.text().unwrap_or("").trim();
        value
            .parse::<u64>()
            .map_err(|_| format!("line {}: <{name}> {value:?} is not a number", line(node)))
    };
    let image_size = number("ImageSize")?;
    let block_size = number("BlockSize")?;
    let blocks_count = number("BlocksCount")?;
    let mapped_blocks = number("MappedBlocksCount")?;
    let kind = field("ChecksumType")?;
    let kind_text = kind.text().unwrap_or("").trim();
    if kind_text != "sha256" {
        return Err(format!(
            "line {}: checksum type {kind_text:?} is not supported (only sha256)",
            line(kind)
        ));
    }
    if block_size == 0 || !block_size.is_power_of_two() || block_size < 512 {
        return Err(format!(
            "block size {block_size} is not a power of two of at least 512"
        ));
    }
    if image_size.div_ceil(block_size) != blocks_count {
        return Err(format!(
            "BlocksCount {blocks_count} does not fit ImageSize {image_size} with blocks of \
             {block_size} bytes (it should be {})",
            image_size.div_ceil(block_size)
        ));
    }

    // The file's own checksum: SHA-256 of the file with its digits zeroed.
    let sum = field("BmapFileChecksum")?;
    let sum_text = sum.text().unwrap_or("").trim();
    let expected = unhex(sum_text).ok_or_else(|| {
        format!(
            "line {}: BmapFileChecksum {sum_text:?} is not 64 hex digits",
            line(sum)
        )
    })?;
    let zeroed = text.replace(sum_text, &"0".repeat(sum_text.len()));
    let actual: [u8; 32] = Sha256::digest(zeroed.as_bytes()).into();
    if actual != expected {
        return Err(format!(
            "line {}: the bmap file's checksum does not match its contents: the file was \
             changed or damaged (a bmap is not to be edited; make a new one with `bmaptool \
             create`)",
            line(sum)
        ));
    }

    let map = field("BlockMap")?;
    let mut ranges: Vec<Range> = Vec::new();
    let mut counted = 0u64;
    for node in map.children().filter(|n| n.is_element()) {
        let at = line(node);
        if node.tag_name().name() != "Range" {
            return Err(format!(
                "line {at}: <{}> inside <BlockMap>; only <Range> belongs there",
                node.tag_name().name()
            ));
        }
        let spec = node.text().unwrap_or("").trim();
        let parse_block = |s: &str| {
            s.trim()
                .parse::<u64>()
                .map_err(|_| format!("line {at}: range {spec:?} is not N or N-M"))
        };
        let (first, last) = match spec.split_once('-') {
            Some((a, b)) => (parse_block(a)?, parse_block(b)?),
            None => {
                let n = parse_block(spec)?;
                (n, n)
            }
        };
        if first > last {
            return Err(format!("line {at}: range {spec:?} ends before it starts"));
        }
        if last >= blocks_count {
            return Err(format!(
                "line {at}: range {spec:?} goes past the image's {blocks_count} blocks"
            ));
        }
        if let Some(prev) = ranges.last() {
            if first <= prev.last {
                return Err(format!(
                    "line {at}: range {spec:?} overlaps or comes before the range on line {}",
                    prev.line
                ));
            }
        }
        let sum = node.attribute("chksum").ok_or_else(|| {
            format!("line {at}: range {spec:?} has no chksum: it could not be verified")
        })?;
        let sha256 = unhex(sum.trim())
            .ok_or_else(|| format!("line {at}: chksum {sum:?} is not a SHA-256 (64 hex digits)"))?;
        counted += last - first + 1;
        ranges.push(Range {
            first,
            last,
            sha256,
            line: at,
        });
    }
    if counted != mapped_blocks {
        return Err(format!(
            "MappedBlocksCount is {mapped_blocks}, but the ranges hold {counted} blocks"
        ));
    }
    Ok(Bmap {
        version,
        image_size,
        block_size,
        blocks_count,
        mapped_blocks,
        ranges,
    })
}

/// 64 hex digits (either case: bmaptool writes lowercase, people may not).
fn unhex(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// Writes a bmap for `image` (for the tests): every
/// run of blocks that is not all zeros is one range. The same format and checksum
/// bmaptool writes.
#[cfg(test)]
pub fn create(image: &[u8], block_size: u64) -> String {
    let bs = block_size as usize;
    let blocks = image.len().div_ceil(bs);
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for b in 0..blocks {
        let chunk = &image[b * bs..((b + 1) * bs).min(image.len())];
        if chunk.iter().all(|&x| x == 0) {
            continue;
        }
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == b => *last = b,
            _ => runs.push((b, b)),
        }
    }
    let mapped: usize = runs.iter().map(|(a, b)| b - a + 1).sum();
    let mut ranges = String::new();
    for (a, b) in &runs {
        let bytes = &image[a * bs..((b + 1) * bs).min(image.len())];
        let sum = hex(&Sha256::digest(bytes));
        let spec = if a == b {
            format!("{a}")
        } else {
            format!("{a}-{b}")
        };
        ranges.push_str(&format!(
            "        <Range chksum=\"{sum}\"> {spec} </Range>\n"
        ));
    }
    let with = |sum: &str| {
        format!(
            "<?xml version=\"1.0\" ?>\n<bmap version=\"2.0\">\n    <ImageSize> {} </ImageSize>\n    \
             <BlockSize> {block_size} </BlockSize>\n    <BlocksCount> {blocks} </BlocksCount>\n    \
             <MappedBlocksCount> {mapped} </MappedBlocksCount>\n    <ChecksumType> sha256 \
             </ChecksumType>\n    <BmapFileChecksum> {sum} </BmapFileChecksum>\n    \
             <BlockMap>\n{ranges}    </BlockMap>\n</bmap>\n",
            image.len()
        )
    };
    let zero = with(&"0".repeat(64));
    with(&hex(&Sha256::digest(zero.as_bytes())))
}

pub fn hex(bytes: &[u8]) -> String {
    gk_bundle::hex(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `bmaptool create` (3.6) wrote for a 1 MiB image with data in blocks 3 and
    /// 100-102 (comments shortened; the checksum is recomputed below).
    const BMAPTOOL: &str = r#"<?xml version="1.0" ?>
<!-- This file contains the block map for an image file. -->

<bmap version="2.0">
    <!-- Image size in bytes: 1.0 MiB -->
    <ImageSize> 1048576 </ImageSize>
    <BlockSize> 4096 </BlockSize>
    <BlocksCount> 256 </BlocksCount>
    <MappedBlocksCount> 4   </MappedBlocksCount>
    <ChecksumType> sha256 </ChecksumType>
    <BmapFileChecksum> SUM </BmapFileChecksum>
    <BlockMap>
        <Range chksum="b15056c9a8db77ab5708d19b7f330fe13d88eeae3d0ab271081d3438c0f46264"> 3 </Range>
        <Range chksum="201b3561ee7c8287df23b722f8b352655c9a3b065bbf3ec63c25121c27c4f40b"> 100-102 </Range>
    </BlockMap>
</bmap>
"#;

    /// `text` with SUM replaced by its correct file checksum.
    fn sealed(text: &str) -> String {
        let zero = text.replace("SUM", &"0".repeat(64));
        text.replace("SUM", &hex(&Sha256::digest(zero.as_bytes())))
    }

    #[test]
    fn parses_what_bmaptool_writes() {
        let b = parse(sealed(BMAPTOOL).as_bytes()).unwrap();
        assert_eq!(b.image_size, 1 << 20);
        assert_eq!(b.block_size, 4096);
        assert_eq!(b.blocks_count, 256);
        assert_eq!(b.mapped_blocks, 4);
        assert_eq!(b.ranges.len(), 2);
        assert_eq!((b.ranges[0].first, b.ranges[0].last), (3, 3));
        assert_eq!((b.ranges[1].first, b.ranges[1].last), (100, 102));
        assert_eq!(b.ranges[1].line, 14);
        assert_eq!(b.bytes(&b.ranges[1]), (409600, 3 * 4096));
        assert_eq!(b.mapped_bytes(), 4 * 4096);
    }

    #[test]
    fn create_round_trips_with_a_short_last_block() {
        let mut image = vec![0u8; 5 * 4096 + 100];
        image[10] = 1;
        image[3 * 4096] = 2;
        image[5 * 4096 + 99] = 3;
        let b = parse(create(&image, 4096).as_bytes()).unwrap();
        let spans: Vec<(u64, u64)> = b.ranges.iter().map(|r| (r.first, r.last)).collect();
        assert_eq!(spans, vec![(0, 0), (3, 3), (5, 5)]);
        assert_eq!(b.bytes(&b.ranges[2]), (5 * 4096, 100));
        assert_eq!(
            b.ranges[2].sha256,
            <[u8; 32]>::from(Sha256::digest(&image[5 * 4096..]))
        );
        assert_eq!(b.blocks_count, 6);
    }

    #[test]
    fn refuses_what_it_cannot_trust() {
        let good = sealed(BMAPTOOL);
        let cases: Vec<(String, &str)> = vec![
            (
                good.replace("100-102", "100-103"),
                "checksum does not match",
            ),
            (
                sealed(&BMAPTOOL.replace("100-102", "100-103")),
                "ranges hold 5 blocks",
            ),
            (
                sealed(&BMAPTOOL.replace("100-102", "102-100")),
                "ends before it starts",
            ),
            (
                sealed(&BMAPTOOL.replace("100-102", "1-3")),
                "overlaps or comes before",
            ),
            (sealed(&BMAPTOOL.replace("100-102", "254-256")), "goes past"),
            (sealed(&BMAPTOOL.replace("100-102", "1x")), "not N or N-M"),
            (
                sealed(&BMAPTOOL.replace("version=\"2.0\"", "version=\"1.3\"")),
                "SHA-1",
            ),
            (
                sealed(&BMAPTOOL.replace("version=\"2.0\"", "version=\"3.0\"")),
                "not supported",
            ),
            (
                sealed(&BMAPTOOL.replace("> sha256 <", "> md5 <")),
                "only sha256",
            ),
            (
                sealed(&BMAPTOOL.replace("> 256 <", "> 255 <")),
                "should be 256",
            ),
            (
                sealed(&BMAPTOOL.replace("> 4096 <", "> 4095 <")),
                "power of two",
            ),
            (
                sealed(&BMAPTOOL.replace(
                    " chksum=\"b15056c9a8db77ab5708d19b7f330fe13d88eeae3d0ab271081d3438c0f46264\"",
                    "",
                )),
                "has no chksum",
            ),
            (
                sealed(&BMAPTOOL.replace("<ImageSize> 1048576 </ImageSize>", "")),
                "<ImageSize> is missing",
            ),
            (
                sealed(&BMAPTOOL.replace("<BlockSize>", "<BlockSize>4096</BlockSize><BlockSize>")),
                "a second <BlockSize>",
            ),
            (
                sealed(
                    &BMAPTOOL
                        .replace("<bmap ", "<bmop ")
                        .replace("</bmap>", "</bmop>"),
                ),
                "not <bmap>",
            ),
            (BMAPTOOL.to_string(), "not 64 hex digits"),
            ("<bmap".into(), "not valid XML"),
            ("\u{0}\u{ff}".into(), "not valid XML"),
        ];
        for (text, expect) in cases {
            let e = parse(text.as_bytes()).unwrap_err();
            assert!(e.contains(expect), "{expect}: {e}");
        }
        assert!(parse(&[0xff, 0xfe]).unwrap_err().contains("UTF-8"));
        // Uppercase checksums (hand-made files) are fine; unknown elements too.
        let upper = sealed(
            &BMAPTOOL
                .replace("b15056c9a8db", "B15056C9A8DB")
                .replace("<BlockMap>", "<Comment>future</Comment>\n    <BlockMap>"),
        );
        assert!(parse(upper.as_bytes()).is_ok());
    }
}
