//! CoucheStor gRPC contracts, generated from `proto/` at build time.

/// `couchestor.agent.v1`: controller <-> node agent.
pub mod agent {
    /// Version 1 of the agent protocol.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("couchestor.agent.v1");
    }
}

/// `couchestor.coldtier.v1`: controller -> node agent, the erasure-coded cold tier.
pub mod coldtier {
    /// Version 1 of the cold-tier protocol.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("couchestor.coldtier.v1");
    }
}

pub mod errors;

/// Highest agent protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
