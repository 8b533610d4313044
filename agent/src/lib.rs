//! CoucheStor node agent library: device telemetry read from sysfs, and the rates derived
//! from it. The `couchestor-agent` binary and (later) its gRPC service build on this.

pub mod aliases;
pub mod cache;
pub mod coldtier;
pub mod erasure;
pub mod health;
pub mod metrics;
pub mod nbd;
pub mod rates;
pub mod report;
pub mod server;
pub mod shardstore;
pub mod sysfs;
pub mod tls;
