//! The Mayastor release whose behaviour the simulator emulates.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An emulated Mayastor release. Differences (see `shared/notes/mayastor.md` §2, §5):
///
/// | profile | pool cordon routes | scale-down prefers (after health, child state, progress) |
/// |---|---|---|
/// | 2.7  | absent (404)  | remote before nexus-local |
/// | 2.9  | absent (404)  | pool-label mismatch, cordoned node, then remote before local |
/// | 2.10 | present       | pool-label mismatch, cordoned pool, cordoned node, then remote before local |
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Profile {
    /// Mayastor 2.7.x (OpenEBS 4.1).
    V2_7,
    /// Mayastor 2.9.x (OpenEBS 4.3).
    V2_9,
    /// Mayastor 2.10.x (OpenEBS 4.4).
    V2_10,
}

impl Profile {
    /// The profile name as used on the command line and in `/sim/profile`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2_7 => "2.7",
            Self::V2_9 => "2.9",
            Self::V2_10 => "2.10",
        }
    }

    /// io-engine version string reported in node specs and states.
    pub fn engine_version(self) -> &'static str {
        match self {
            Self::V2_7 => "v2.7.1",
            Self::V2_9 => "v2.9.0",
            Self::V2_10 => "v2.10.0",
        }
    }

    /// `PUT`/`DELETE /pools/{id}/cordon` exist and cordoned pools get no new replicas.
    pub fn has_pool_cordon(self) -> bool {
        self >= Self::V2_10
    }

    /// Scale-down prefers replicas whose pool no longer matches the volume's inclusion labels
    /// (upstream ≥ 2.8, PR #906/#916) and replicas on cordoned nodes (2.9, PR #968).
    pub fn topology_aware_removal(self) -> bool {
        self >= Self::V2_9
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().trim_start_matches('v') {
            "2.7" => Ok(Self::V2_7),
            "2.9" => Ok(Self::V2_9),
            "2.10" => Ok(Self::V2_10),
            other => Err(format!(
                "unknown profile {other:?}: expected 2.7, 2.9 or 2.10"
            )),
        }
    }
}

impl Serialize for Profile {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Profile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::Profile;

    #[test]
    fn parses_and_orders_profiles() {
        assert_eq!("2.10".parse::<Profile>(), Ok(Profile::V2_10));
        assert_eq!("v2.7".parse::<Profile>(), Ok(Profile::V2_7));
        assert!("2.8".parse::<Profile>().is_err());
        assert!(Profile::V2_10.has_pool_cordon() && !Profile::V2_9.has_pool_cordon());
        assert!(Profile::V2_9.topology_aware_removal() && !Profile::V2_7.topology_aware_removal());
    }
}
