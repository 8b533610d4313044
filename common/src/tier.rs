//! Storage tiers, hottest first.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A storage tier. The order of the variants is the order of speed: `Hot < Warm < Cold`.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Fast media (NVMe pools).
    Hot,
    /// Capacity media (SATA/SAS pools) in a three-tier setup.
    Warm,
    /// The coldest tier: SATA pools, or the erasure-coded cold tier.
    Cold,
}

impl Tier {
    /// Lower-case name as used in the API and in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Hot => "hot",
            Tier::Warm => "warm",
            Tier::Cold => "cold",
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
