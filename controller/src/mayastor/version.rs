//! The Mayastor release behind the client, as the io-engine nodes report it.
//!
//! The v0 API has no version endpoint, but every `Node` carries the io-engine version in
//! `spec.version` / `state.version` (e.g. `v2.9.0`). During a rolling upgrade nodes differ;
//! [`MayastorClient::engine_version`] answers the **lowest** one, since behaviour that only
//! newer releases have cannot be relied on until every node has it.

use std::{fmt, str::FromStr};

use super::{Error, MayastorClient, model::Node};

/// A Mayastor release, `major.minor.patch` (pre-release and build suffixes are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MayastorVersion {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch (0 when not given).
    pub patch: u32,
}

impl MayastorVersion {
    /// `major.minor.patch`.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Same major and minor release (patch releases behave alike).
    pub fn same_release(self, other: Self) -> bool {
        (self.major, self.minor) == (other.major, other.minor)
    }
}

impl fmt::Display for MayastorVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Why a version string is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a Mayastor version such as 2.9.0 or v2.10.1")]
pub struct VersionParseError {
    /// The rejected text.
    pub input: String,
}

impl FromStr for MayastorVersion {
    type Err = VersionParseError;

    /// Accepts `2.9`, `2.9.0`, `v2.10.1`, `2.10.0-rc.1`, `v2.7.1+abc`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || VersionParseError {
            input: s.to_owned(),
        };
        let core = s
            .trim()
            .trim_start_matches('v')
            .split(['-', '+'])
            .next()
            .unwrap_or_default();
        let mut parts = core.split('.');
        let mut number = |required: bool| -> Result<u32, VersionParseError> {
            match parts.next() {
                Some(p) => p.parse().map_err(|_| err()),
                None if required => Err(err()),
                None => Ok(0),
            }
        };
        let version = Self::new(number(true)?, number(true)?, number(false)?);
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(version)
    }
}

/// The io-engine versions the nodes report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeVersions {
    /// The lowest parsed version, if any node reports one.
    pub lowest: Option<MayastorVersion>,
    /// Every distinct version reported, as given (sorted), for messages.
    pub reported: Vec<String>,
    /// Nodes whose version is missing or not understood.
    pub unknown: Vec<String>,
}

impl NodeVersions {
    /// Summarises `nodes`.
    pub fn of(nodes: &[Node]) -> Self {
        let mut out = Self::default();
        for node in nodes {
            match node.version().map(|v| (v, v.parse::<MayastorVersion>())) {
                Some((raw, Ok(v))) => {
                    out.lowest = Some(out.lowest.map_or(v, |l| l.min(v)));
                    if !out.reported.iter().any(|r| r == raw) {
                        out.reported.push(raw.to_owned());
                    }
                }
                _ => out.unknown.push(node.id.clone()),
            }
        }
        out.reported.sort();
        out
    }
}

impl MayastorClient {
    /// The io-engine versions of every node (`GET /nodes`); see the module docs.
    pub async fn engine_versions(&self) -> Result<NodeVersions, Error> {
        Ok(NodeVersions::of(&self.list_nodes().await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_release_strings() {
        for (s, v) in [
            ("2.9", MayastorVersion::new(2, 9, 0)),
            ("2.9.0", MayastorVersion::new(2, 9, 0)),
            ("v2.10.1", MayastorVersion::new(2, 10, 1)),
            (" 2.10.0-rc.1 ", MayastorVersion::new(2, 10, 0)),
            ("v2.7.1+abc", MayastorVersion::new(2, 7, 1)),
        ] {
            assert_eq!(s.parse::<MayastorVersion>(), Ok(v), "{s}");
        }
        for bad in ["", "junk", "2", "2.x", "2.9.0.1", "v"] {
            let e = bad.parse::<MayastorVersion>().unwrap_err();
            assert!(e.to_string().contains("is not a Mayastor version"), "{e}");
        }
        assert!(MayastorVersion::new(2, 10, 0) > MayastorVersion::new(2, 9, 9));
        assert!(MayastorVersion::new(2, 9, 0).same_release(MayastorVersion::new(2, 9, 3)));
    }

    #[test]
    fn lowest_node_version_wins_and_unknown_nodes_are_named() {
        let node = |id: &str, version: Option<&str>| -> Node {
            serde_json::from_value(serde_json::json!({
                "id": id,
                "state": {"id": id, "grpcEndpoint": "x:1", "status": "Online", "version": version},
            }))
            .unwrap()
        };
        let v = NodeVersions::of(&[
            node("a", Some("v2.10.0")),
            node("b", Some("v2.9.0")),
            node("c", None),
            node("d", Some("v2.10.0")),
            node("e", Some("garbage")),
        ]);
        assert_eq!(v.lowest, Some(MayastorVersion::new(2, 9, 0)));
        assert_eq!(v.reported, ["v2.10.0", "v2.9.0"]);
        assert_eq!(v.unknown, ["c", "e"]);
        assert_eq!(NodeVersions::of(&[]).lowest, None);
    }
}
