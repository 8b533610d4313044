//! The tier layout a policy describes: which pools form which tier, and the watermarks
//! between adjacent tiers.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};

use crate::plan::{Boundary, DensityBand};
use crate::storagepolicy::StoragePolicySpec;
use crate::tier::Tier;

/// Pool label that marks a pool's tier when a policy gives no selector.
pub const TIER_LABEL: &str = "couchestor-tier";

/// A policy's tiers, hottest first, with one boundary between each adjacent pair.
#[derive(Clone, Debug)]
pub struct TierLayout {
    /// `(tier, pool selector)`, hottest first.
    pub tiers: Vec<(Tier, Selector)>,
    /// `boundaries[i]` separates `tiers[i]` from `tiers[i + 1]`.
    pub boundaries: Vec<Boundary>,
}

/// Density watermarks from a spec's optional pair (both or neither, as the API server
/// enforces).
fn density(high: Option<u32>, low: Option<u32>) -> Option<DensityBand> {
    Some(DensityBand {
        promote_above: f64::from(high?),
        demote_below: f64::from(low?),
    })
}

/// Why a policy's layout cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LayoutError {
    /// A selector has an invalid expression.
    #[error("invalid pool selector for tier {tier}: {message}")]
    Selector {
        /// The tier.
        tier: Tier,
        /// The parser's message.
        message: String,
    },
    /// A tier other than the first lacks its watermarks.
    #[error(
        "tier {0} needs highWatermarkIOPS and lowWatermarkIOPS (only the first tier inherits the policy's)"
    )]
    MissingWatermarks(Tier),
    /// Watermarks of a colder boundary are not below those of the hotter one.
    #[error(
        "watermarks must decrease from hot to cold: boundary below {0} promotes above {1} IOPS, which is not below the boundary above it"
    )]
    NotDescending(Tier, u32),
}

impl TierLayout {
    /// Builds the layout of a policy spec.
    pub fn from_spec(spec: &StoragePolicySpec) -> Result<Self, LayoutError> {
        let top = Boundary {
            density: density(
                spec.high_watermark_iops_per_tib,
                spec.low_watermark_iops_per_tib,
            ),
            ..Boundary::iops(
                f64::from(spec.high_watermark_iops),
                f64::from(spec.low_watermark_iops),
            )
        };
        let Some(tiers) = spec.tiers.as_ref().filter(|t| t.len() >= 2) else {
            return Ok(Self {
                tiers: vec![
                    (
                        Tier::Hot,
                        selector(Tier::Hot, spec.nvme_pool_selector.as_ref(), "nvme")?,
                    ),
                    (
                        Tier::Cold,
                        selector(Tier::Cold, spec.sata_pool_selector.as_ref(), "sata")?,
                    ),
                ],
                boundaries: vec![top],
            });
        };
        let mut out = Self {
            tiers: Vec::new(),
            boundaries: Vec::new(),
        };
        for (i, t) in tiers.iter().enumerate() {
            out.tiers
                .push((t.name, selector(t.name, Some(&t.pool_selector), "")?));
            if i + 1 == tiers.len() {
                break;
            }
            let iops = match (t.high_watermark_iops, t.low_watermark_iops) {
                (Some(h), Some(l)) => Boundary::iops(f64::from(h), f64::from(l)),
                _ if i == 0 => top,
                _ => return Err(LayoutError::MissingWatermarks(t.name)),
            };
            let own = density(t.high_watermark_iops_per_tib, t.low_watermark_iops_per_tib);
            let b = Boundary {
                density: own.or(if i == 0 { top.density } else { None }),
                ..iops
            };
            if let Some(prev) = out.boundaries.last()
                && b.promote_above >= prev.demote_below
            {
                return Err(LayoutError::NotDescending(t.name, b.promote_above as u32));
            }
            out.boundaries.push(b);
        }
        Ok(out)
    }

    /// The tier whose selector matches these pool labels first, if any.
    pub fn classify(&self, pool_labels: &BTreeMap<String, String>) -> Option<Tier> {
        self.tiers
            .iter()
            .find(|(_, s)| s.matches(pool_labels))
            .map(|(t, _)| *t)
    }

    /// The tier a volume is on: the one holding all of its replicas' pools, or `None` when a
    /// pool is unclassified or the replicas span several tiers (a move in progress, or a
    /// placement CoucheStor did not make).
    pub fn volume_tier<'a>(
        &self,
        replica_pool_labels: impl IntoIterator<Item = &'a BTreeMap<String, String>>,
    ) -> Option<Tier> {
        common_tier(replica_pool_labels.into_iter().map(|l| self.classify(l)))
    }
}

/// The one tier of all of `replica_tiers`, or `None` when there are none, one is unknown, or
/// they differ.
pub fn common_tier(replica_tiers: impl IntoIterator<Item = Option<Tier>>) -> Option<Tier> {
    let mut tier = None;
    for t in replica_tiers {
        let t = t?;
        if tier.is_some_and(|x| x != t) {
            return None;
        }
        tier = Some(t);
    }
    tier
}

fn selector(
    tier: Tier,
    s: Option<&LabelSelector>,
    default_value: &str,
) -> Result<Selector, LayoutError> {
    let s = match s {
        Some(s) => s.clone(),
        None => LabelSelector {
            match_labels: Some(BTreeMap::from([(
                TIER_LABEL.to_string(),
                default_value.to_string(),
            )])),
            match_expressions: None,
        },
    };
    Selector::try_from(s).map_err(|e| LayoutError::Selector {
        tier,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn spec(extra: serde_json::Value) -> StoragePolicySpec {
        let mut base = serde_json::json!({
            "storageClassName": "sc", "highWatermarkIOPS": 1000, "lowWatermarkIOPS": 100
        });
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn two_tier_defaults_use_the_tier_label() {
        let l = TierLayout::from_spec(&spec(serde_json::json!({}))).unwrap();
        assert_eq!(
            l.classify(&labels(&[(TIER_LABEL, "nvme")])),
            Some(Tier::Hot)
        );
        assert_eq!(
            l.classify(&labels(&[(TIER_LABEL, "sata")])),
            Some(Tier::Cold)
        );
        assert_eq!(l.classify(&labels(&[("other", "x")])), None);
        assert_eq!(l.boundaries, vec![Boundary::iops(1000.0, 100.0)]);
    }

    #[test]
    fn density_watermarks_reach_the_boundaries_they_belong_to() {
        let two = TierLayout::from_spec(&spec(serde_json::json!({
            "highWatermarkIOPSPerTiB": 2048, "lowWatermarkIOPSPerTiB": 256
        })))
        .unwrap();
        assert_eq!(
            two.boundaries[0].density,
            Some(DensityBand {
                promote_above: 2048.0,
                demote_below: 256.0
            })
        );
        // Three tiers: the first inherits the policy's pair, the second has its own, and a
        // tier without a pair gates on heat alone.
        let three = TierLayout::from_spec(&spec(serde_json::json!({
            "highWatermarkIOPSPerTiB": 2048, "lowWatermarkIOPSPerTiB": 256,
            "tiers": [
                {"name": "hot", "poolSelector": {}},
                {"name": "warm", "poolSelector": {}, "highWatermarkIOPS": 50, "lowWatermarkIOPS": 5,
                 "highWatermarkIOPSPerTiB": 100, "lowWatermarkIOPSPerTiB": 10},
                {"name": "cold", "poolSelector": {}}
            ]
        })))
        .unwrap();
        assert_eq!(three.boundaries[0].density, two.boundaries[0].density);
        assert_eq!(
            three.boundaries[1].density,
            Some(DensityBand {
                promote_above: 100.0,
                demote_below: 10.0
            })
        );
        let plain = TierLayout::from_spec(&spec(serde_json::json!({}))).unwrap();
        assert_eq!(plain.boundaries[0].density, None);
    }

    #[test]
    fn volume_tier_needs_every_replica_on_one_tier() {
        let l = TierLayout::from_spec(&spec(serde_json::json!({
            "nvmePoolSelector": {"matchExpressions": [{"key": "media", "operator": "In", "values": ["nvme", "optane"]}]},
            "sataPoolSelector": {"matchLabels": {"media": "sata"}}
        })))
        .unwrap();
        let (n1, n2, s) = (
            labels(&[("media", "nvme")]),
            labels(&[("media", "optane")]),
            labels(&[("media", "sata")]),
        );
        assert_eq!(l.volume_tier([&n1, &n2]), Some(Tier::Hot));
        assert_eq!(l.volume_tier([&n1, &s]), None);
        assert_eq!(l.volume_tier([&s]), Some(Tier::Cold));
        assert_eq!(l.volume_tier([&labels(&[])]), None);
    }

    #[test]
    fn three_tiers_take_their_own_watermarks() {
        let l = TierLayout::from_spec(&spec(serde_json::json!({"tiers": [
            {"name": "hot", "poolSelector": {"matchLabels": {"t": "nvme"}}},
            {"name": "warm", "poolSelector": {"matchLabels": {"t": "ssd"}}, "highWatermarkIOPS": 50, "lowWatermarkIOPS": 5},
            {"name": "cold", "poolSelector": {"matchLabels": {"t": "hdd"}}}
        ]})))
        .unwrap();
        assert_eq!(
            l.tiers.iter().map(|t| t.0).collect::<Vec<_>>(),
            vec![Tier::Hot, Tier::Warm, Tier::Cold]
        );
        assert_eq!(l.boundaries[1], Boundary::iops(50.0, 5.0));

        let missing = spec(serde_json::json!({"tiers": [
            {"name": "hot", "poolSelector": {}}, {"name": "warm", "poolSelector": {}}, {"name": "cold", "poolSelector": {}}
        ]}));
        assert_eq!(
            TierLayout::from_spec(&missing).unwrap_err(),
            LayoutError::MissingWatermarks(Tier::Warm)
        );

        let inverted = spec(serde_json::json!({"tiers": [
            {"name": "hot", "poolSelector": {}},
            {"name": "warm", "poolSelector": {}, "highWatermarkIOPS": 500, "lowWatermarkIOPS": 5},
            {"name": "cold", "poolSelector": {}}
        ]}));
        assert!(matches!(
            TierLayout::from_spec(&inverted),
            Err(LayoutError::NotDescending(Tier::Warm, 500))
        ));
    }
}
