//! Cache keys: which bytes of which archive a cached block holds.
//!
//! An archive id can be encoded again with other contents, so a key never names an archive
//! by id alone: [`ArchiveDigest`] is the SHA-256 of the archive's committed manifest (id,
//! creation time, size, SHA-256 of the source, k/m, block size and every block's CRC-32C).
//! Any re-encode yields another digest, hence other keys: old blocks can linger until
//! evicted but are never found.

use ring::digest;

use crate::erasure::{Manifest, State};

/// Domain separation for the digest (changing it invalidates every cached block).
const DIGEST_DOMAIN: &[u8] = b"couchestor-block-cache-key-v1\n";

/// Content identity of one archive: SHA-256 of its canonical committed manifest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArchiveDigest(pub [u8; 32]);

impl ArchiveDigest {
    /// The digest of the archive `manifest` describes (the copy's `shard_index` and `state`
    /// are normalised: every complete copy of one archive gives the same digest).
    pub fn of(manifest: &Manifest) -> Self {
        let canonical = manifest.for_shard(0, State::Complete).to_json();
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(DIGEST_DOMAIN);
        ctx.update(canonical.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        ArchiveDigest(out)
    }

    /// The first 8 bytes in hex (for logs).
    pub fn short(&self) -> String {
        self.0[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for ArchiveDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ArchiveDigest({})", self.short())
    }
}

/// One cached block: block `index` (of `block_size` bytes, aligned to source offsets) of
/// the archive whose content identity is `archive`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockKey {
    /// Content identity of the archive.
    pub archive: ArchiveDigest,
    /// Cache block size the block was cut with.
    pub block_size: u32,
    /// Block number: the block covers source bytes `index * block_size ..`.
    pub index: u64,
}

/// Bytes of an encoded [`BlockKey`].
pub const KEY_LEN: usize = 44;

impl BlockKey {
    /// The key as stored in an L2 record: digest, block size (LE), index (LE).
    pub fn encode(&self) -> [u8; KEY_LEN] {
        let mut out = [0u8; KEY_LEN];
        out[..32].copy_from_slice(&self.archive.0);
        out[32..36].copy_from_slice(&self.block_size.to_le_bytes());
        out[36..].copy_from_slice(&self.index.to_le_bytes());
        out
    }

    /// Inverse of [`BlockKey::encode`].
    pub fn decode(bytes: &[u8; KEY_LEN]) -> Self {
        let mut archive = [0u8; 32];
        archive.copy_from_slice(&bytes[..32]);
        let mut bs = [0u8; 4];
        bs.copy_from_slice(&bytes[32..36]);
        let mut index = [0u8; 8];
        index.copy_from_slice(&bytes[36..]);
        BlockKey {
            archive: ArchiveDigest(archive),
            block_size: u32::from_le_bytes(bs),
            index: u64::from_le_bytes(index),
        }
    }
}

/// Length of block `index` of a source of `size` bytes cut in `block_size` blocks (the last
/// block is short; blocks past the end are empty).
pub fn block_len(size: u64, block_size: u32, index: u64) -> usize {
    let start = index.saturating_mul(u64::from(block_size));
    size.saturating_sub(start).min(u64::from(block_size)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let key = BlockKey {
            archive: ArchiveDigest([7; 32]),
            block_size: 65536,
            index: 0x0102_0304_0506,
        };
        assert_eq!(BlockKey::decode(&key.encode()), key);
    }

    #[test]
    fn last_block_is_short() {
        assert_eq!(block_len(100_000, 65536, 0), 65536);
        assert_eq!(block_len(100_000, 65536, 1), 100_000 - 65536);
        assert_eq!(block_len(100_000, 65536, 2), 0);
    }
}
