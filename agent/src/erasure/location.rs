//! Where a shard lives: a local shard directory, or a `ShardStore` of another agent.
//!
//! Text form (the `--shard-dir` values of `ec` and the `shard_locations` of the ColdTier
//! API): `agent://HOST:PORT/STORE` names the store `STORE` of the agent serving gRPC on
//! `HOST:PORT` (reached over mutual TLS); anything else is a directory path.

use std::fmt;
use std::path::PathBuf;

use super::EcError;

/// Prefix of a remote location.
pub const AGENT_SCHEME: &str = "agent://";

/// A shard location.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// A local shard directory.
    Dir(PathBuf),
    /// A store of another agent.
    Agent(AgentStore),
}

/// A `ShardStore` store of another agent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentStore {
    /// `HOST:PORT` of the agent's gRPC server.
    pub authority: String,
    /// The store's name on that agent.
    pub store: String,
}

impl AgentStore {
    /// `https://HOST:PORT`.
    pub fn endpoint(&self) -> String {
        format!("https://{}", self.authority)
    }

    /// The host part (the name its server certificate must carry).
    pub fn host(&self) -> &str {
        let host = match self.authority.rsplit_once(':') {
            Some((host, _)) => host,
            None => &self.authority,
        };
        host.trim_start_matches('[').trim_end_matches(']')
    }
}

impl Location {
    /// Parses a location (see the module documentation).
    pub fn parse(text: &str) -> Result<Location, EcError> {
        let Some(rest) = text.strip_prefix(AGENT_SCHEME) else {
            if text.is_empty() {
                return Err(EcError::Params("an empty shard location".into()));
            }
            return Ok(Location::Dir(PathBuf::from(text)));
        };
        let bad = |why: &str| {
            EcError::Params(format!(
                "shard location {text:?}: {why} (expected agent://HOST:PORT/STORE)"
            ))
        };
        let (authority, store) = rest.split_once('/').ok_or_else(|| bad("no store name"))?;
        let port = authority.rsplit_once(':').map(|(_, p)| p);
        if authority.is_empty() || port.is_none_or(|p| p.parse::<u16>().is_err()) {
            return Err(bad("no HOST:PORT"));
        }
        check_store_name(store).map_err(|e| bad(&e))?;
        Ok(Location::Agent(AgentStore {
            authority: authority.to_string(),
            store: store.to_string(),
        }))
    }

    /// The local directory, if this is one.
    pub fn dir(&self) -> Option<&PathBuf> {
        match self {
            Location::Dir(dir) => Some(dir),
            Location::Agent(_) => None,
        }
    }

    /// The location as a path-like value for reports (a directory, or the `agent://` text).
    pub fn as_path(&self) -> PathBuf {
        match self {
            Location::Dir(dir) => dir.clone(),
            Location::Agent(_) => PathBuf::from(self.to_string()),
        }
    }
}

/// Checks a store name: 1 to 64 of `[A-Za-z0-9._-]`, not starting with a dot.
pub fn check_store_name(name: &str) -> Result<(), String> {
    super::check_name("store name", name, 64)
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Dir(dir) => write!(f, "{}", dir.display()),
            Location::Agent(a) => write!(f, "{AGENT_SCHEME}{}/{}", a.authority, a.store),
        }
    }
}

/// Parses every location of a list.
pub fn parse_all<S: AsRef<str>>(texts: &[S]) -> Result<Vec<Location>, EcError> {
    texts.iter().map(|t| Location::parse(t.as_ref())).collect()
}

/// Local directories as locations.
pub fn dirs(dirs: &[PathBuf]) -> Vec<Location> {
    dirs.iter().cloned().map(Location::Dir).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(
            Location::parse("/mnt/d0").unwrap(),
            Location::Dir("/mnt/d0".into())
        );
        let a = Location::parse("agent://10.0.0.5:9443/ssd-1").unwrap();
        let Location::Agent(store) = &a else { panic!() };
        assert_eq!(store.endpoint(), "https://10.0.0.5:9443");
        assert_eq!(store.host(), "10.0.0.5");
        assert_eq!(store.store, "ssd-1");
        assert_eq!(a.to_string(), "agent://10.0.0.5:9443/ssd-1");
        assert!(Location::parse("agent://host/ssd").is_err());
        assert!(Location::parse("agent://host:9443/").is_err());
        assert!(Location::parse("agent://host:9443/../x").is_err());
        assert!(Location::parse("agent://host:99999/s").is_err());
        assert!(Location::parse("").is_err());
    }
}
