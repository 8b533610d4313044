//! `manifest.json`: the versioned description of an archive, one copy per shard directory.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{check_archive_id, check_params, stripe_count};

/// The on-disk format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Value of the manifest's `format` field.
pub const FORMAT_NAME: &str = "couchestor-ec-archive";
/// Value of the `codec` field: reed-solomon-erasure 6, GF(2^8), its systematic Vandermonde
/// matrix (parity is byte-identical to klauspost/reedsolomon's default).
pub const CODEC_NAME: &str = "reed-solomon-gf256";
/// Value of the `checksum` field.
pub const CHECKSUM_NAME: &str = "crc32c";

/// Whether an archive's shards are all in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// An encode is committing (or was interrupted while committing): never read.
    Writing,
    /// Every shard file was written, fsynced and renamed into place before this manifest.
    Complete,
}

/// Contents of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// Always [`FORMAT_VERSION`] for manifests this build reads.
    pub format_version: u32,
    /// Name of the archive (and of its directory inside each shard directory).
    pub archive_id: String,
    /// Index of the shard stored next to this copy (`shard-<i>.dat`).
    pub shard_index: usize,
    /// `writing` or `complete`.
    pub state: State,
    /// Creation time, RFC 3339 UTC.
    pub created: String,
    /// Size of the source in bytes.
    pub source_size: u64,
    /// Data shards per stripe.
    pub k: usize,
    /// Parity shards per stripe.
    pub m: usize,
    /// Bytes per shard block.
    pub block_size: usize,
    /// Stripes: `ceil(source_size / (k * block_size))`.
    pub stripes: u64,
    /// Always [`CODEC_NAME`].
    pub codec: String,
    /// Always [`CHECKSUM_NAME`].
    pub checksum: String,
    /// SHA-256 of the whole source, lowercase hex.
    pub source_sha256: String,
    /// CRC-32C of every block, `[shard][stripe]`; stored as one hex string per shard.
    #[serde(serialize_with = "crcs_to_hex", deserialize_with = "crcs_from_hex")]
    pub block_crc32c: Vec<Vec<u32>>,
}

/// Why a manifest cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON at all.
    #[error("not valid JSON: {0}")]
    Json(String),
    /// JSON, but not an archive manifest.
    #[error("not a CoucheStor erasure-coding manifest (\"format\" is not {FORMAT_NAME:?})")]
    NotAManifest,
    /// Written by a newer (or unknown) format.
    #[error("unsupported format version {found} (this agent reads version {FORMAT_VERSION})")]
    UnsupportedVersion {
        /// The version found.
        found: u64,
    },
    /// Fields missing, malformed or inconsistent.
    #[error("invalid: {0}")]
    Invalid(String),
}

impl Manifest {
    /// Parses and validates a manifest.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ManifestError::Json(e.to_string()))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT_NAME) {
            return Err(ManifestError::NotAManifest);
        }
        let version = value.get("format_version").and_then(|v| v.as_u64());
        match version {
            None => {
                return Err(ManifestError::Invalid(
                    "\"format_version\" is missing".into(),
                ));
            }
            Some(v) if v != u64::from(FORMAT_VERSION) => {
                return Err(ManifestError::UnsupportedVersion { found: v });
            }
            Some(_) => {}
        }
        let manifest: Manifest =
            serde_json::from_value(value).map_err(|e| ManifestError::Invalid(e.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// The manifest as pretty-printed JSON (with a final newline).
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The copy of this manifest for shard directory `index`.
    pub fn for_shard(&self, index: usize, state: State) -> Manifest {
        Manifest {
            shard_index: index,
            state,
            ..self.clone()
        }
    }

    /// The first field in which `other` describes a different archive (ignoring
    /// `shard_index` and `state`), as ("ours", "theirs").
    pub fn difference(&self, other: &Manifest) -> Option<(String, String)> {
        let fields = [
            (
                "archive_id",
                self.archive_id.clone(),
                other.archive_id.clone(),
            ),
            ("k/m", km(self), km(other)),
            (
                "block_size",
                self.block_size.to_string(),
                other.block_size.to_string(),
            ),
            (
                "source_size",
                self.source_size.to_string(),
                other.source_size.to_string(),
            ),
            ("created", self.created.clone(), other.created.clone()),
            (
                "source_sha256",
                self.source_sha256.clone(),
                other.source_sha256.clone(),
            ),
        ];
        for (name, a, b) in fields {
            if a != b {
                return Some((format!("{name} {a}"), format!("{name} {b}")));
            }
        }
        (self.block_crc32c != other.block_crc32c)
            .then(|| ("one set of block checksums".into(), "another".into()))
    }

    fn validate(&self) -> Result<(), ManifestError> {
        let invalid = |e: super::EcError| ManifestError::Invalid(e.to_string());
        check_params(self.k, self.m, self.block_size).map_err(invalid)?;
        check_archive_id(&self.archive_id).map_err(invalid)?;
        let n = self.k + self.m;
        let fail = |msg: String| Err(ManifestError::Invalid(msg));
        if self.codec != CODEC_NAME || self.checksum != CHECKSUM_NAME {
            return fail(format!(
                "unknown codec {:?} or checksum {:?}",
                self.codec, self.checksum
            ));
        }
        if self.stripes != stripe_count(self.source_size, self.k, self.block_size) {
            return fail(format!("stripes {} does not match the size", self.stripes));
        }
        if self.shard_index >= n {
            return fail(format!(
                "shard_index {} is not below k + m = {n}",
                self.shard_index
            ));
        }
        let sha_ok = self.source_sha256.len() == 64
            && self
                .source_sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !sha_ok {
            return fail("source_sha256 is not 64 lowercase hex digits".into());
        }
        let rows_ok = self.block_crc32c.len() == n
            && self
                .block_crc32c
                .iter()
                .all(|r| r.len() as u64 == self.stripes);
        if !rows_ok {
            return fail(format!(
                "block_crc32c must hold {n} shards of {} blocks",
                self.stripes
            ));
        }
        Ok(())
    }
}

fn km(m: &Manifest) -> String {
    format!("k={} m={}", m.k, m.m)
}

fn crcs_to_hex<S: Serializer>(rows: &[Vec<u32>], s: S) -> Result<S::Ok, S::Error> {
    let hex: Vec<String> = rows
        .iter()
        .map(|row| {
            let mut text = String::with_capacity(row.len() * 8);
            for crc in row {
                text.push_str(&format!("{crc:08x}"));
            }
            text
        })
        .collect();
    hex.serialize(s)
}

fn crcs_from_hex<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u32>>, D::Error> {
    let rows = Vec::<String>::deserialize(d)?;
    rows.iter()
        .map(|row| {
            if row.len() % 8 != 0 || !row.is_ascii() {
                return Err(serde::de::Error::custom(
                    "a CRC string is not 8 hex digits per block",
                ));
            }
            (0..row.len())
                .step_by(8)
                .map(|i| u32::from_str_radix(&row[i..i + 8], 16).map_err(serde::de::Error::custom))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests;
