//! L2 records: the unit appended to a segment file.
//!
//! ```text
//! offset size  field (little-endian)
//!      0    4  magic "CSBK"
//!      4    2  record version (1)
//!      6    2  codec: 0 = stored raw, 1 = zstd frame (with its content checksum)
//!      8   44  key: archive digest (32), cache block size (u32), block index (u64)
//!     52    4  raw_len: bytes of the block once decoded
//!     56    4  stored_len: bytes of payload that follow the header
//!     60    4  crc32c of header bytes 0..60 followed by the payload
//!     64    …  payload
//! ```
//!
//! A record is accepted only when its magic, version and codec are known, its lengths are
//! plausible, its CRC-32C matches, and (when read) its payload decodes to exactly `raw_len`
//! bytes — zstd also checks its own frame checksum.

use std::fs::File;
use std::io::{self, Read};

use super::key::{BlockKey, KEY_LEN};

/// Bytes of a record header.
pub const HEADER_LEN: usize = 64;
/// Record magic.
pub const MAGIC: [u8; 4] = *b"CSBK";
/// Record version.
pub const VERSION: u16 = 1;
/// Largest block a record may hold (checked before trusting a length from disk).
pub const MAX_RAW_LEN: u32 = 16 << 20;

/// How a payload is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// The block as is (it did not compress).
    Raw,
    /// A zstd frame.
    Zstd,
}

/// A parsed, plausible record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// How the payload is stored.
    pub codec: Codec,
    /// Which block.
    pub key: BlockKey,
    /// Decoded length.
    pub raw_len: u32,
    /// Payload length.
    pub stored_len: u32,
    /// Stored checksum.
    pub crc: u32,
}

impl Header {
    /// Parses a header; `None` when it is not a plausible record header.
    pub fn parse(b: &[u8; HEADER_LEN]) -> Option<Header> {
        if b[..4] != MAGIC || u16::from_le_bytes([b[4], b[5]]) != VERSION {
            return None;
        }
        let codec = match u16::from_le_bytes([b[6], b[7]]) {
            0 => Codec::Raw,
            1 => Codec::Zstd,
            _ => return None,
        };
        let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(&b[8..8 + KEY_LEN]);
        let (raw_len, stored_len) = (word(52), word(56));
        let plausible = raw_len <= MAX_RAW_LEN
            && match codec {
                Codec::Raw => stored_len == raw_len,
                // zstd's bound for incompressible input is a little over raw_len.
                Codec::Zstd => stored_len <= raw_len + raw_len / 64 + 1024,
            };
        plausible.then(|| Header {
            codec,
            key: BlockKey::decode(&key),
            raw_len,
            stored_len,
            crc: word(60),
        })
    }

    /// Bytes of the whole record.
    pub fn record_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.stored_len)
    }
}

/// Builds the record for `raw` under `key`: zstd at `level` when that saves space, else raw.
pub fn encode(key: &BlockKey, raw: &[u8], level: i32) -> io::Result<Vec<u8>> {
    let mut compressor = zstd::bulk::Compressor::new(level)?;
    compressor.include_checksum(true)?;
    let compressed = compressor.compress(raw)?;
    let (codec, payload): (u16, &[u8]) = if compressed.len() < raw.len() {
        (1, &compressed)
    } else {
        (0, raw)
    };
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&codec.to_le_bytes());
    out.extend_from_slice(&key.encode());
    out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out), payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Whether the checksum of a record (header bytes and payload) matches.
pub fn crc_ok(header: &[u8], payload: &[u8], crc: u32) -> bool {
    crc32c::crc32c_append(crc32c::crc32c(&header[..HEADER_LEN - 4]), payload) == crc
}

/// Checks a whole record read back from disk and returns its decoded block, or `None` when
/// anything is off (header, key, checksum, decoding, length).
pub fn decode(record: &[u8], want: &BlockKey) -> Option<Vec<u8>> {
    let head: &[u8; HEADER_LEN] = record.get(..HEADER_LEN)?.try_into().ok()?;
    let h = Header::parse(head)?;
    let payload = record.get(HEADER_LEN..)?;
    if h.key != *want || payload.len() != h.stored_len as usize || !crc_ok(head, payload, h.crc) {
        return None;
    }
    let raw = match h.codec {
        Codec::Raw => payload.to_vec(),
        Codec::Zstd => zstd::bulk::decompress(payload, h.raw_len as usize).ok()?,
    };
    (raw.len() == h.raw_len as usize).then_some(raw)
}

/// A record found by [`scan`].
#[derive(Debug, Clone, Copy)]
pub struct Found {
    /// Its header.
    pub header: Header,
    /// Offset of the record in the segment.
    pub offset: u64,
}

/// What a scan of a segment found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Records whose checksum matches, in file order.
    pub records: Vec<Found>,
    /// Records skipped because their checksum did not match.
    pub corrupt: u64,
    /// Bytes of the segment that are intact records (or skipped corrupt ones).
    pub valid_end: u64,
    /// Bytes after `valid_end`: a torn or unparseable tail.
    pub torn_bytes: u64,
}

/// Reads a segment from the start and checks every record. Stops at the first header that
/// is not plausible or at a record that runs past the end of the file: everything from
/// there is the torn tail.
pub fn scan(file: &File, file_len: u64) -> io::Result<Scan> {
    let mut reader = io::BufReader::with_capacity(1 << 20, file);
    let mut scan = Scan::default();
    let mut payload = Vec::new();
    let mut pos = 0u64;
    while file_len - pos >= HEADER_LEN as u64 {
        let mut head = [0u8; HEADER_LEN];
        reader.read_exact(&mut head)?;
        let Some(header) = Header::parse(&head) else {
            break;
        };
        if pos + header.record_len() > file_len {
            break;
        }
        payload.resize(header.stored_len as usize, 0);
        reader.read_exact(&mut payload)?;
        if crc_ok(&head, &payload, header.crc) {
            scan.records.push(Found {
                header,
                offset: pos,
            });
        } else {
            scan.corrupt += 1;
        }
        pos += header.record_len();
    }
    scan.valid_end = pos;
    scan.torn_bytes = file_len - pos;
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::key::ArchiveDigest;

    fn key(index: u64) -> BlockKey {
        BlockKey {
            archive: ArchiveDigest([3; 32]),
            block_size: 4096,
            index,
        }
    }

    #[test]
    fn records_round_trip_compressed_and_raw() {
        let text = b"hello cache ".repeat(300);
        let rec = encode(&key(1), &text, 3).unwrap();
        assert!(rec.len() < text.len(), "text compresses");
        assert_eq!(decode(&rec, &key(1)).unwrap(), text);
        assert!(decode(&rec, &key(2)).is_none(), "another key is a miss");

        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let rec = encode(&key(1), &noise, 3).unwrap();
        assert_eq!(decode(&rec, &key(1)).unwrap(), noise);
    }

    #[test]
    fn any_flipped_byte_is_refused() {
        let text = b"0123456789abcdef".repeat(64);
        let rec = encode(&key(5), &text, 3).unwrap();
        for i in 0..rec.len() {
            let mut bad = rec.clone();
            bad[i] ^= 0x10;
            assert!(decode(&bad, &key(5)).is_none(), "flip at {i} accepted");
        }
        assert!(decode(&rec[..rec.len() - 1], &key(5)).is_none());
    }
}
