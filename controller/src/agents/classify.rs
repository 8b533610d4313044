//! Tier labels for pools nobody labelled, from the media their node's agent reports.
//!
//! A pool that carries a `couchestor-tier` label keeps it: people know better than device
//! heuristics. Any other pool whose disks all resolve to devices of one media gets the label
//! value of that media (`nvme`, `sata`, `hdd`) in the controller's view only; nothing is
//! written to Mayastor.

use couchestor_common::layout::TIER_LABEL;
use couchestor_common::media::{Media, classify_pool};

use super::AgentsView;
use crate::mayastor::model::Pool;

/// Where a pool's tier label comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// The pool is labelled (the value).
    Label(String),
    /// The agent's devices: the media and the devices the pool's disks are on.
    Agent(Media, Vec<String>),
    /// Neither: why the media is unknown.
    Unknown(String),
}

/// How one pool was classified.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolMedia {
    /// Pool id.
    pub pool: String,
    /// Its node.
    pub node: String,
    /// Where its tier label comes from.
    pub source: Source,
}

impl PoolMedia {
    /// One line for `explain`.
    pub fn describe(&self) -> String {
        let what = match &self.source {
            Source::Label(v) => format!("labelled {TIER_LABEL}={v}"),
            Source::Agent(m, devices) => format!(
                "{m} (devices {} reported by the agent; treated as {TIER_LABEL}={})",
                devices.join(", "),
                m.tier_label_value().unwrap_or("?")
            ),
            Source::Unknown(why) => format!("media unknown: {why}"),
        };
        format!("pool {} on node {}: {what}", self.pool, self.node)
    }
}

/// Labels every unlabelled pool whose media the agents tell, and says how each pool was
/// classified.
pub fn label_pools(pools: &mut [Pool], agents: &AgentsView) -> Vec<PoolMedia> {
    pools
        .iter_mut()
        .filter_map(|p| {
            let spec = p.spec.as_mut()?;
            let source = match spec.labels.get(TIER_LABEL) {
                Some(v) => Source::Label(v.clone()),
                None => match infer(&spec.node, &spec.disks, agents) {
                    Ok((media, devices)) => {
                        if let Some(v) = media.tier_label_value() {
                            spec.labels.insert(TIER_LABEL.into(), v.into());
                        }
                        Source::Agent(media, devices)
                    }
                    Err(why) => Source::Unknown(why),
                },
            };
            Some(PoolMedia {
                pool: p.id.clone(),
                node: spec.node.clone(),
                source,
            })
        })
        .collect()
}

fn infer(
    node: &str,
    disks: &[String],
    agents: &AgentsView,
) -> Result<(Media, Vec<String>), String> {
    if !agents.configured {
        return Err(format!(
            "no {TIER_LABEL} label, and agents are not configured (--agent-tls-dir)"
        ));
    }
    let Some(agent) = agents.nodes.get(node) else {
        return Err(format!(
            "no {TIER_LABEL} label, and no running agent on the node"
        ));
    };
    let Some(devices) = &agent.devices else {
        let why = agent.error.as_deref().unwrap_or("no answer yet");
        return Err(format!("the agent has not answered ({why})"));
    };
    classify_pool(disks, devices).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use couchestor_common::media::NodeDevice;

    use super::*;
    use crate::agents::NodeAgent;

    fn pool(id: &str, node: &str, disk: &str, tier: Option<&str>) -> Pool {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "spec": {"id": id, "node": node, "disks": [disk],
                     "labels": tier.map(|t| serde_json::json!({TIER_LABEL: t})).unwrap_or_else(|| serde_json::json!({}))}
        }))
        .unwrap()
    }

    #[test]
    fn labels_win_and_unlabelled_pools_take_their_media() {
        let mut view = AgentsView {
            configured: true,
            polled: true,
            ..Default::default()
        };
        view.nodes.insert(
            "n1".into(),
            NodeAgent {
                devices: Some(vec![
                    NodeDevice {
                        name: "nvme0n1".into(),
                        media: Media::Nvme,
                        aliases: vec![],
                    },
                    NodeDevice {
                        name: "sda".into(),
                        media: Media::SataSsd,
                        aliases: vec![],
                    },
                ]),
                ..Default::default()
            },
        );
        view.nodes.insert(
            "n2".into(),
            NodeAgent {
                error: Some("connection refused".into()),
                ..Default::default()
            },
        );
        let mut pools = vec![
            pool("p-label", "n1", "/dev/sda", Some("nvme")),
            pool("p-nvme", "n1", "aio:///dev/nvme0n1?uuid=1", None),
            pool("p-sata", "n1", "/dev/sda", None),
            pool("p-down", "n2", "/dev/sda", None),
            pool("p-none", "n3", "/dev/sda", None),
        ];
        let got = label_pools(&mut pools, &view);
        let tier = |i: usize| {
            pools[i]
                .spec
                .as_ref()
                .unwrap()
                .labels
                .get(TIER_LABEL)
                .cloned()
        };
        assert_eq!(tier(0).as_deref(), Some("nvme"));
        assert_eq!(tier(1).as_deref(), Some("nvme"));
        assert_eq!(tier(2).as_deref(), Some("sata"));
        assert_eq!(tier(3), None);
        assert_eq!(tier(4), None);
        assert_eq!(got[0].source, Source::Label("nvme".into()));
        assert_eq!(
            got[1].source,
            Source::Agent(Media::Nvme, vec!["nvme0n1".into()])
        );
        assert_eq!(
            got[3].source,
            Source::Unknown("the agent has not answered (connection refused)".into())
        );
        assert!(
            got[4].describe().contains("no running agent on the node"),
            "{}",
            got[4].describe()
        );

        view.configured = false;
        let mut pools = vec![pool("p", "n1", "/dev/sda", None)];
        let got = label_pools(&mut pools, &view);
        assert!(matches!(&got[0].source, Source::Unknown(w) if w.contains("--agent-tls-dir")));
    }
}
