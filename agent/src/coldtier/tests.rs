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

/// A ColdTier Restore that rebuilds data from parity is counted in the `serve` registry's
/// `couchestor_agent_ec_degraded_reads_total` (the alert CoucheStorColdTierDegradedReads).
#[tokio::test]
async fn a_degraded_restore_counts_in_the_serve_metrics() {
    use futures::StreamExt;

    use crate::erasure::{self, EncodeParams};
    use crate::metrics::AgentMetrics;

    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = (0..3).map(|i| tmp.path().join(format!("d{i}"))).collect();
    for d in &dirs {
        std::fs::create_dir(d).unwrap();
    }
    let source = tmp.path().join("vol");
    let data: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&source, &data).unwrap();
    let params = EncodeParams {
        k: 2,
        m: 1,
        block_size: 4096,
        archive_id: Some("vol".into()),
        force: false,
    };
    let manifest = erasure::encode(&source, &dirs, &params).unwrap();
    // Data shard 0 is lost: every stripe of the restore rebuilds it.
    let shard0 = dirs
        .iter()
        .map(|d| d.join("vol/shard-0.dat"))
        .find(|p| p.exists())
        .unwrap();
    std::fs::remove_file(shard0).unwrap();

    let ct = ColdTierService::new(&dirs, None).unwrap();
    let metrics = AgentMetrics::new().unwrap();
    let before = erasure::process_degraded_reads();
    let req = proto::RestoreRequest {
        shard_locations: vec![],
        archive_id: "vol".into(),
        target_path: tmp.path().join("out").display().to_string(),
        force: false,
    };
    let mut events = ct.restore(Request::new(req)).await.unwrap().into_inner();
    let mut result = None;
    while let Some(ev) = events.next().await {
        if let Some(proto::restore_event::Event::Result(r)) = ev.unwrap().event {
            result = Some(r);
        }
    }
    assert!(result.is_some(), "no restore result");
    assert_eq!(std::fs::read(tmp.path().join("out")).unwrap(), data);
    // Other tests of this process may read degraded stripes too: at least ours.
    let after = erasure::process_degraded_reads();
    assert!(
        after - before >= manifest.stripes,
        "{before} -> {after}, {} stripes",
        manifest.stripes
    );
    let text = metrics.render().unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("couchestor_agent_ec_degraded_reads_total "))
        .unwrap_or_else(|| panic!("no degraded-reads counter in the serve metrics:\n{text}"));
    let value: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(value >= after, "{line} (total {after})");
}
