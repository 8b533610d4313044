//! String enums of the v0 API that tolerate values this client does not know.
//!
//! Every enum keeps the raw text of an unknown value in `Other(String)`, so a newer Mayastor
//! that adds a state (for example a `Suspected` pool status) never breaks deserialisation.

/// Declares a string enum with a catch-all `Other(String)` variant and serde support.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this client does not know (e.g. from a newer Mayastor), kept verbatim.
            Other(String),
        }

        impl $name {
            /// The value as it appears on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $text, )+
                    Self::Other(raw) => raw,
                }
            }
        }

        impl From<&str> for $name {
            fn from(raw: &str) -> Self {
                match raw {
                    $( $text => Self::$variant, )+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = <String as serde::Deserialize>::deserialize(deserializer)?;
                Ok(Self::from(raw.as_str()))
            }
        }
    };
}

string_enum! {
    /// `SpecStatus`: lifecycle of a spec object.
    SpecStatus {
        /// Being created.
        Creating => "Creating",
        /// Created.
        Created => "Created",
        /// Being deleted.
        Deleting => "Deleting",
        /// Deleted.
        Deleted => "Deleted",
    }
}

string_enum! {
    /// `VolumeStatus`: runtime status of a volume.
    VolumeStatus {
        /// Status not known.
        Unknown => "Unknown",
        /// All replicas healthy.
        Online => "Online",
        /// Serving I/O with fewer healthy replicas than wanted (or while rebuilding).
        Degraded => "Degraded",
        /// No healthy replica.
        Faulted => "Faulted",
        /// The target was shut down.
        Shutdown => "Shutdown",
    }
}

string_enum! {
    /// `ReplicaState`: state of a replica.
    ReplicaState {
        /// State not known (e.g. its node is unreachable).
        Unknown => "Unknown",
        /// Healthy.
        Online => "Online",
        /// Degraded.
        Degraded => "Degraded",
        /// Failed.
        Faulted => "Faulted",
    }
}

string_enum! {
    /// `ChildState`: state of a nexus child (a replica as seen by the volume target).
    ChildState {
        /// State not known.
        Unknown => "Unknown",
        /// In sync.
        Online => "Online",
        /// Out of sync, typically rebuilding.
        Degraded => "Degraded",
        /// Failed.
        Faulted => "Faulted",
    }
}

string_enum! {
    /// `ChildStateReason`: why a child is in its state.
    ChildStateReason {
        /// The child's pool ran out of space.
        OutOfSpace => "OutOfSpace",
    }
}

string_enum! {
    /// `NexusState`: state of a volume target.
    NexusState {
        /// State not known.
        Unknown => "Unknown",
        /// All children healthy.
        Online => "Online",
        /// Some children not healthy.
        Degraded => "Degraded",
        /// No healthy child.
        Faulted => "Faulted",
        /// Shutting down.
        ShuttingDown => "ShuttingDown",
        /// Shut down.
        Shutdown => "Shutdown",
    }
}

string_enum! {
    /// `PoolStatus`: runtime status of a pool.
    PoolStatus {
        /// Status not known.
        Unknown => "Unknown",
        /// Healthy.
        Online => "Online",
        /// Degraded but usable.
        Degraded => "Degraded",
        /// Failed; not usable for placement.
        Faulted => "Faulted",
    }
}

string_enum! {
    /// `NodeStatus`: deemed state of an io-engine node.
    NodeStatus {
        /// Status not known.
        Unknown => "Unknown",
        /// Reachable.
        Online => "Online",
        /// Not reachable.
        Offline => "Offline",
    }
}

string_enum! {
    /// `RebuildJobState`: state of a (finished or running) rebuild job.
    RebuildJobState {
        /// Created, not started.
        Init => "Init",
        /// Running.
        Rebuilding => "Rebuilding",
        /// Stopped.
        Stopped => "Stopped",
        /// Paused.
        Paused => "Paused",
        /// Failed.
        Failed => "Failed",
        /// Finished successfully.
        Completed => "Completed",
    }
}

string_enum! {
    /// `Protocol` / `VolumeShareProtocol`: how a target or replica is shared.
    Protocol {
        /// Not shared.
        None => "none",
        /// NVMe over Fabrics.
        Nvmf => "nvmf",
        /// iSCSI.
        Iscsi => "iscsi",
        /// NBD.
        Nbd => "nbd",
    }
}

string_enum! {
    /// `RestJsonError.kind`: the error class of a failed REST call.
    ///
    /// Upstream maps its finer internal kinds onto these: `ReplicaChangeCount`, `LastReplica`,
    /// `ReplicaIncrease` and `ReplicaCountAchieved` all arrive as `FailedPrecondition` (HTTP 412),
    /// with the internal name in `message` (e.g. `SvcError :: LastReplica`).
    ErrorKind {
        /// Timed out.
        Timeout => "Timeout",
        /// The request could not be deserialised.
        Deserialize => "Deserialize",
        /// Internal server error.
        Internal => "Internal",
        /// Invalid argument.
        InvalidArgument => "InvalidArgument",
        /// Deadline exceeded.
        DeadlineExceeded => "DeadlineExceeded",
        /// Resource not found.
        NotFound => "NotFound",
        /// Resource already exists.
        AlreadyExists => "AlreadyExists",
        /// Permission denied.
        PermissionDenied => "PermissionDenied",
        /// Not enough resources (e.g. no pool qualifies for a new replica).
        ResourceExhausted => "ResourceExhausted",
        /// A precondition failed (replica-count rules and many others).
        FailedPrecondition => "FailedPrecondition",
        /// Not shared.
        NotShared => "NotShared",
        /// Not published.
        NotPublished => "NotPublished",
        /// Already published.
        AlreadyPublished => "AlreadyPublished",
        /// Already shared.
        AlreadyShared => "AlreadyShared",
        /// Aborted.
        Aborted => "Aborted",
        /// Out of range.
        OutOfRange => "OutOfRange",
        /// Not implemented.
        Unimplemented => "Unimplemented",
        /// Service unavailable.
        Unavailable => "Unavailable",
        /// Not authenticated.
        Unauthenticated => "Unauthenticated",
        /// Not authorised.
        Unauthorized => "Unauthorized",
        /// Conflicts with another operation; retry.
        Conflict => "Conflict",
        /// Persisting to the store failed.
        FailedPersist => "FailedPersist",
        /// Resource is being deleted.
        Deleting => "Deleting",
        /// Resource is in use.
        InUse => "InUse",
        /// Capacity limit exceeded.
        CapacityLimitExceeded => "CapacityLimitExceeded",
        /// Not acceptable.
        NotAcceptable => "NotAcceptable",
    }
}
