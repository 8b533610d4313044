//! The ColdTier API over real mutual TLS: a real `couchestor-agent serve` with six shard
//! directories archives, lists, restores (with shards deleted), verifies and repairs an
//! archive, reports clear statuses for bad requests, and exports the archive's shard health
//! on /metrics (a deleted shard shows up there).

mod coldtier_common;
mod ec_common;
mod harness;

use std::ffi::OsString;
use std::fs;
use std::time::{Duration, Instant};

use coldtier_common::{cold_tier, drain};
use couchestor_proto::coldtier::v1 as proto;
use ec_common::{Area, patterned_file, sha256_file};
use harness::{Agent, Pki, fixture, http_get, start_agent_with};
use tonic::Code;

fn locations(area: &Area) -> Vec<String> {
    area.dirs.iter().map(|d| d.display().to_string()).collect()
}

async fn metric_value(agent: &Agent, line_start: &str) -> Option<String> {
    let (_, body) = http_get(agent.metrics, "/metrics").await;
    body.lines()
        .find(|l| l.starts_with(line_start))
        .map(|l| l[line_start.len()..].trim().to_string())
}

async fn wait_metric(agent: &Agent, line_start: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = metric_value(agent, line_start).await;
        if got.as_deref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{line_start} is {got:?}, not {want}; log:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_restore_verify_repair_over_mutual_tls_and_shard_health_on_metrics() {
    let pki = Pki::new();
    let area = Area::new(6);
    let mut extra: Vec<OsString> = Vec::new();
    for d in &area.dirs {
        extra.push("--shard-dir".into());
        extra.push(d.into());
    }
    extra.extend(["--ec-check-interval".into(), "0.2".into()]);
    let extra_refs: Vec<&std::ffi::OsStr> = extra.iter().map(|s| s.as_os_str()).collect();
    let agent = start_agent_with(&pki, 0, &fixture("nvme-host/t0"), &extra_refs);
    let mut ct = cold_tier(&pki, &agent);

    let input = area.path("vol.img");
    patterned_file(&input, 12 << 20, 31);
    let request = proto::ArchiveRequest {
        source_path: input.display().to_string(),
        shard_locations: locations(&area),
        block_size: 64 << 10,
        ..Default::default()
    };
    let events = drain(ct.archive(request.clone()).await).await.unwrap();
    let (last, progress) = events.split_last().unwrap();
    let Some(proto::archive_event::Event::Result(info)) = &last.event else {
        panic!("the last event is not the result: {last:?}");
    };
    assert!(!progress.is_empty(), "no progress before the result");
    let proto::archive_event::Event::Progress(p) = progress.last().unwrap().event.clone().unwrap()
    else {
        panic!("not a progress event")
    };
    assert_eq!(
        (p.phase.as_str(), p.done_bytes, p.total_bytes),
        ("encode", 12 << 20, 12 << 20)
    );
    assert_eq!(
        (info.archive_id.as_str(), info.k, info.m, info.stripes),
        ("vol.img", 4, 2, 48)
    );
    assert_eq!(info.source_sha256, sha256_file(&input));
    assert_eq!(info.shards.len(), 6);

    // The same archive again: FAILED_PRECONDITION, naming --force.
    let err = drain(ct.archive(request.clone()).await).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("already exists"), "{err:?}");

    // Listed, every shard present; and healthy on /metrics.
    let list = ct
        .list_archives(proto::ListArchivesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.archives.len(), 1, "{list:?}");
    assert_eq!(list.archives[0].present_shards, [0, 1, 2, 3, 4, 5]);
    assert_eq!(list.archives[0].state, "complete");
    wait_metric(
        &agent,
        "couchestor_agent_ec_shards_missing{archive=\"vol.img\"}",
        "0",
    )
    .await;
    wait_metric(
        &agent,
        "couchestor_agent_ec_shards_present{archive=\"vol.img\"}",
        "6",
    )
    .await;

    // Two shards deleted: the metric counts them, GetArchive names them.
    for i in [1, 4] {
        fs::remove_file(area.dirs[i].join("vol.img").join(format!("shard-{i}.dat"))).unwrap();
    }
    wait_metric(
        &agent,
        "couchestor_agent_ec_shards_missing{archive=\"vol.img\"}",
        "2",
    )
    .await;
    let status = ct
        .get_archive(proto::GetArchiveRequest {
            archive_id: "vol.img".into(),
            shard_locations: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.present_shards, [0, 2, 3, 5]);
    let missing: Vec<u32> = status.missing.iter().map(|m| m.index).collect();
    assert_eq!(missing, [1, 4], "{status:?}");
    assert!(
        status.missing[0].reason.contains("is missing"),
        "{status:?}"
    );

    // Restore byte-exact from the four left, with progress.
    let target = area.path("restored.img");
    let restore = proto::RestoreRequest {
        shard_locations: locations(&area),
        archive_id: "vol.img".into(),
        target_path: target.display().to_string(),
        force: false,
    };
    let events = drain(ct.restore(restore.clone()).await).await.unwrap();
    let Some(proto::restore_event::Event::Result(r)) = &events.last().unwrap().event else {
        panic!("no restore result: {events:?}");
    };
    assert_eq!(r.bytes, 12 << 20);
    assert_eq!(r.missing_shards, [1, 4]);
    assert!(r.stripes_rebuilt > 0);
    assert_eq!(sha256_file(&target), sha256_file(&input));
    // Again without force: the target exists.
    let err = drain(ct.restore(restore).await).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("exists (pass --force"), "{err:?}");

    // Verify reports the damage; a repairing verify rewrites both shards.
    let verify = |repair| proto::VerifyRequest {
        shard_locations: vec![],
        archive_id: "vol.img".into(),
        repair,
    };
    let events = drain(ct.verify(verify(false)).await).await.unwrap();
    let Some(proto::verify_event::Event::Result(h)) = &events.last().unwrap().event else {
        panic!("no verify result");
    };
    assert!(!h.healthy && h.recoverable, "{h:?}");
    let states: Vec<i32> = h.shards.iter().map(|s| s.state).collect();
    let (ok, missing) = (
        proto::ShardHealthState::Ok as i32,
        proto::ShardHealthState::Missing as i32,
    );
    assert_eq!(states, [ok, missing, ok, ok, missing, ok], "{h:?}");
    let events = drain(ct.verify(verify(true)).await).await.unwrap();
    let Some(proto::verify_event::Event::Result(h)) = &events.last().unwrap().event else {
        panic!("no repair result");
    };
    assert!(h.healthy, "{h:?}");
    assert_eq!(h.repaired, [1, 4]);
    wait_metric(
        &agent,
        "couchestor_agent_ec_shards_missing{archive=\"vol.img\"}",
        "0",
    )
    .await;

    // A corrupt manifest copy counts as a missing shard too.
    fs::write(area.dirs[3].join("vol.img/manifest.json"), "{ not json").unwrap();
    wait_metric(
        &agent,
        "couchestor_agent_ec_shards_missing{archive=\"vol.img\"}",
        "1",
    )
    .await;
    // A copy that vanishes entirely (its disk replaced by an empty one) still counts, since
    // the agent saw it and other copies remain; a repair brings the count back to 0.
    fs::remove_dir_all(area.dirs[3].join("vol.img")).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    wait_metric(
        &agent,
        "couchestor_agent_ec_shards_missing{archive=\"vol.img\"}",
        "1",
    )
    .await;
    let events = drain(ct.verify(verify(true)).await).await.unwrap();
    let Some(proto::verify_event::Event::Result(h)) = &events.last().unwrap().event else {
        panic!("no repair result");
    };
    assert!(h.healthy && h.repaired == [3], "{h:?}");
    wait_metric(
        &agent,
        "couchestor_agent_ec_shards_missing{archive=\"vol.img\"}",
        "0",
    )
    .await;

    // Bad requests.
    let cases = [
        (
            proto::ArchiveRequest {
                shard_locations: vec!["/etc".into(); 6],
                ..request.clone()
            },
            Code::InvalidArgument,
            "/etc is not a shard directory of this agent",
        ),
        (
            proto::ArchiveRequest {
                source_path: area.path("nope.img").display().to_string(),
                archive_id: "other".into(),
                ..request.clone()
            },
            Code::NotFound,
            "nope.img",
        ),
        (
            proto::ArchiveRequest {
                k: 3,
                archive_id: "other".into(),
                ..request.clone()
            },
            Code::InvalidArgument,
            "needs exactly 5 shard locations",
        ),
    ];
    for (bad, code, text) in cases {
        let err = drain(ct.archive(bad).await).await.unwrap_err();
        assert_eq!(err.code(), code, "{err:?}");
        assert!(err.message().contains(text), "{err:?}");
    }
    let err = ct
        .get_archive(proto::GetArchiveRequest {
            archive_id: "unknown".into(),
            shard_locations: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let mut remote = locations(&area);
    remote[5] = "agent://127.0.0.1:1/s0".into();
    let err = drain(
        ct.archive(proto::ArchiveRequest {
            shard_locations: remote,
            archive_id: "other".into(),
            ..request.clone()
        })
        .await,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("--peer-cert"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_resource_exhausted_and_names_the_directory() {
    let test = "a_full_disk_is_resource_exhausted_and_names_the_directory";
    let pki = Pki::new();
    let area = Area::new(6);
    let mount = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&area.dirs[2])
        .output();
    match mount {
        Ok(o) if o.status.success() => {}
        other => {
            couchestor_testsupport::unavailable::<()>(
                &format!("{test}: a tmpfs"),
                format!("{other:?}"),
            );
            return;
        }
    }
    struct Umount(std::path::PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            if let Err(e) = std::process::Command::new("umount").arg(&self.0).status() {
                eprintln!("umount: {e}");
            }
        }
    }
    let _umount = Umount(area.dirs[2].clone());
    let mut extra: Vec<OsString> = Vec::new();
    for d in &area.dirs {
        extra.push("--shard-dir".into());
        extra.push(d.into());
    }
    let extra_refs: Vec<&std::ffi::OsStr> = extra.iter().map(|s| s.as_os_str()).collect();
    let agent = start_agent_with(&pki, 0, &fixture("nvme-host/t0"), &extra_refs);
    let input = area.path("big.img");
    patterned_file(&input, 64 << 20, 32);
    let err = drain(
        cold_tier(&pki, &agent)
            .archive(proto::ArchiveRequest {
                source_path: input.display().to_string(),
                shard_locations: locations(&area),
                ..Default::default()
            })
            .await,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message()
            .contains(&format!("no space left on {}", area.dirs[2].display())),
        "{err:?}"
    );
    for dir in &area.dirs {
        assert!(
            ec_common::files_under(dir).is_empty(),
            "left in {}",
            dir.display()
        );
    }
}
