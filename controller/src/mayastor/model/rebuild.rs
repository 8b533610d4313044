//! `GET /volumes/{volume_id}/rebuild-history`: `RebuildHistory` and `RebuildRecord`.

use serde::{Deserialize, Serialize};

use super::RebuildJobState;

/// `RebuildHistory`: finished rebuilds of a volume's target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RebuildHistory {
    /// Nexus UUID.
    #[serde(rename = "targetUuid")]
    pub target_uuid: String,
    /// Records, oldest first.
    #[serde(default)]
    pub records: Vec<RebuildRecord>,
}

/// `RebuildRecord`: one rebuild job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RebuildRecord {
    /// URI of the rebuilt child.
    pub child_uri: String,
    /// URI of the source child.
    #[serde(default)]
    pub src_uri: String,
    /// Job state (the spec's own example calls it `state`; accepted too).
    #[serde(alias = "state")]
    pub rebuild_job_state: RebuildJobState,
    /// Blocks to rebuild.
    #[serde(default)]
    pub blocks_total: u64,
    /// Blocks processed.
    #[serde(default)]
    pub blocks_recovered: u64,
    /// Blocks transferred.
    #[serde(default)]
    pub blocks_transferred: u64,
    /// Blocks remaining.
    #[serde(default)]
    pub blocks_remaining: u64,
    /// Block size in bytes.
    #[serde(default)]
    pub block_size: u64,
    /// Partial (true) or full (false) rebuild.
    #[serde(default)]
    pub is_partial: bool,
    /// Start (RFC 3339, UTC).
    #[serde(default)]
    pub start_time: Option<String>,
    /// End (RFC 3339, UTC).
    #[serde(default)]
    pub end_time: Option<String>,
}
