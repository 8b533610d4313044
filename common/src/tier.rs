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

impl std::str::FromStr for Tier {
    type Err = String;

    /// The name [`Tier::as_str`] gives (`hot`, `warm`, `cold`), as annotations carry it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Tier::Hot, Tier::Warm, Tier::Cold]
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a tier (hot, warm or cold)"))
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for t in [Tier::Hot, Tier::Warm, Tier::Cold] {
            assert_eq!(t.as_str().parse::<Tier>(), Ok(t));
        }
        assert_eq!(
            "Hot".parse::<Tier>(),
            Err("\"Hot\" is not a tier (hot, warm or cold)".into())
        );
    }
}
