//! CoucheStor shared types and pure logic.
//!
//! Nothing in this crate performs I/O: the controller feeds it data and acts on its answers.

pub mod heat;
pub mod history;
pub mod layout;
pub mod matrix;
pub mod media;
pub mod migration;
pub mod plan;
pub mod room;
pub mod split;
pub mod storagepolicy;
pub mod tier;
pub mod window;

pub use storagepolicy::{StoragePolicy, StoragePolicySpec, StoragePolicyStatus};
pub use tier::Tier;
