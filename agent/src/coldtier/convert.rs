//! Engine results and errors as ColdTier messages and gRPC statuses.

use couchestor_proto::coldtier::v1 as proto;
use tonic::{Code, Status};

use crate::erasure::{EcError, Manifest, Report, RestoreReport, ShardState};

/// The gRPC status for an engine error (the message is the error's text, naming the file,
/// directory or location involved).
pub fn status(e: &EcError) -> Status {
    let code = match e {
        EcError::Params(_)
        | EcError::DuplicateShardDir(_)
        | EcError::UnsupportedSource(_)
        | EcError::Range { .. } => Code::InvalidArgument,
        EcError::MissingShardDir(_) | EcError::NoArchive { .. } => Code::NotFound,
        EcError::NoSpace { .. } => Code::ResourceExhausted,
        EcError::TooFewShards { .. }
        | EcError::DifferentArchives { .. }
        | EcError::Mismatch { .. }
        | EcError::ArchiveExists { .. }
        | EcError::Incomplete { .. }
        | EcError::TargetExists(_)
        | EcError::Manifest { .. }
        | EcError::SourceChanged { .. }
        | EcError::NoPeerIdentity(_) => Code::FailedPrecondition,
        EcError::Integrity(_) | EcError::RebuiltBlockMismatch { .. } => Code::DataLoss,
        EcError::CommitFailed { cause, .. } => status(cause).code(),
        EcError::Unreachable { .. } => Code::Unavailable,
        EcError::Remote { code, .. } => *code,
        EcError::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound => Code::NotFound,
            std::io::ErrorKind::PermissionDenied => Code::PermissionDenied,
            _ => Code::Internal,
        },
        EcError::Codec(_) => Code::Internal,
    };
    Status::new(code, e.to_string())
}

/// An archive's description.
pub fn info(m: &Manifest, locations: &[String]) -> proto::ArchiveInfo {
    proto::ArchiveInfo {
        archive_id: m.archive_id.clone(),
        source_size: m.source_size,
        k: m.k as u32,
        m: m.m as u32,
        block_size: m.block_size as u32,
        stripes: m.stripes,
        source_sha256: m.source_sha256.clone(),
        created: m.created.clone(),
        shards: locations
            .iter()
            .enumerate()
            .map(|(i, l)| proto::ShardLocation {
                index: i as u32,
                location: l.clone(),
            })
            .collect(),
    }
}

/// A restore's result.
pub fn restored(r: &RestoreReport) -> proto::RestoreResult {
    proto::RestoreResult {
        archive_id: r.archive_id.clone(),
        target_path: r.target.display().to_string(),
        bytes: r.bytes,
        sha256: r.sha256.clone(),
        stripes_rebuilt: r.stripes_rebuilt,
        missing_shards: r.missing_shards.iter().map(|&i| i as u32).collect(),
    }
}

/// A verify or scrub report.
pub fn health(r: &Report) -> proto::ArchiveHealth {
    proto::ArchiveHealth {
        archive_id: r.archive_id.clone(),
        healthy: r.healthy,
        recoverable: r.recoverable,
        unrecoverable_stripes: r.unrecoverable_stripes.clone(),
        shards: r
            .shards
            .iter()
            .map(|s| proto::ShardHealth {
                index: s.index as u32,
                location: s
                    .dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
                state: shard_state(s.state) as i32,
                reason: s.reason.clone().unwrap_or_default(),
                corrupt_blocks: s.corrupt_blocks.clone(),
                missing_blocks: s.missing_blocks.clone(),
                errors: s.errors.clone(),
            })
            .collect(),
        repaired: r.repaired.iter().map(|&i| i as u32).collect(),
        notes: r.notes.clone(),
        k: r.k as u32,
        m: r.m as u32,
    }
}

fn shard_state(s: ShardState) -> proto::ShardHealthState {
    match s {
        ShardState::Ok => proto::ShardHealthState::Ok,
        ShardState::Damaged => proto::ShardHealthState::Damaged,
        ShardState::Missing => proto::ShardHealthState::Missing,
    }
}
