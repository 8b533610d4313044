//! Identifiers and time helpers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Where a world's new UUIDs (replicas, nexuses, pools, admin-created volumes) come from.
///
/// UUIDs order the replica maps and break ties in the removal order, so a run that must be
/// reproducible (e.g. `couchestor-controller simulate --backend mayastor`) seeds them.
#[derive(Debug, Clone, Default)]
pub enum IdSource {
    /// The thread-local random generator: every run differs (the binary's default).
    #[default]
    Random,
    /// A ChaCha stream seeded by the embedder (or `--id-seed`): the same seed and the same
    /// sequence of operations give the same UUIDs.
    Seeded(Box<ChaCha8Rng>),
}

impl IdSource {
    /// A deterministic source.
    pub fn seeded(seed: u64) -> Self {
        Self::Seeded(Box::new(ChaCha8Rng::seed_from_u64(seed)))
    }

    /// The next version-4 UUID.
    pub fn next_uuid(&mut self) -> String {
        let bytes: [u8; 16] = match self {
            Self::Random => rand::rng().random(),
            Self::Seeded(rng) => rng.random(),
        };
        uuid_from_bytes(bytes)
    }
}

/// A random version-4 UUID in canonical lower-case form.
pub fn new_uuid() -> String {
    IdSource::Random.next_uuid()
}

/// The version-4 UUID made of `bytes` (version and variant bits set), lower-case.
pub fn uuid_from_bytes(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// True if `s` is a UUID in the 8-4-4-4-12 hex form.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// RFC 3339 UTC timestamp of `ms` since the epoch (the `date-time` format of the spec).
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_valid_and_distinct() {
        let a = new_uuid();
        assert!(is_uuid(&a), "{a}");
        assert_eq!(&a[14..15], "4");
        assert_ne!(a, new_uuid());
        assert!(!is_uuid("not-a-uuid"));
    }

    #[test]
    fn seeded_uuids_repeat_for_a_seed_and_differ_across_seeds() {
        let draw = |seed| {
            let mut ids = IdSource::seeded(seed);
            [ids.next_uuid(), ids.next_uuid()]
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert_ne!(a[0], a[1]);
        assert_ne!(a, draw(8));
        assert!(a.iter().all(|u| is_uuid(u) && &u[14..15] == "4"), "{a:?}");
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(1_500), "1970-01-01T00:00:01.500Z");
    }
}
