use couchestor_proto::coldtier::v1 as proto;
use proto::cold_tier_server::ColdTier;
use tonic::{Code, Request};

use super::ColdTierService;

fn service() -> (tempfile::TempDir, ColdTierService) {
    let tmp = tempfile::tempdir().unwrap();
    let service = ColdTierService::new(&[tmp.path().to_path_buf()], None).unwrap();
    (tmp, service)
}

#[tokio::test]
async fn a_repairing_verify_needs_an_archive_id() {
    let (_tmp, ct) = service();
    let req = proto::VerifyRequest {
        shard_locations: vec![],
        archive_id: String::new(),
        repair: true,
    };
    let err = ct.verify(Request::new(req)).await.err().expect("refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("archive_id"), "{err:?}");
}

#[tokio::test]
async fn restore_and_verify_refuse_a_malformed_archive_id() {
    let (tmp, ct) = service();
    for repair in [false, true] {
        let req = proto::VerifyRequest {
            shard_locations: vec![],
            archive_id: "../etc".into(),
            repair,
        };
        let err = ct.verify(Request::new(req)).await.err().expect("refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    }
    let req = proto::RestoreRequest {
        shard_locations: vec![],
        archive_id: "a/b".into(),
        target_path: tmp.path().join("out").display().to_string(),
        force: false,
    };
    let err = ct.restore(Request::new(req)).await.err().expect("refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
}
