//! Shards on other agents: three real agents on loopback, each serving two ShardStore
//! stores behind mutual TLS, hold the six shards of an archive (`ec encode --shard-dir
//! agent://HOST:PORT/STORE`). With one agent down (2 of 6 locations), a ColdTier `Restore`
//! on another agent and `ec restore` both rebuild the source byte for byte; `ec verify`
//! names the unreachable locations; each store directory is a valid shard directory.

mod coldtier_common;
mod ec_common;
mod harness;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use coldtier_common::{cold_tier, drain};
use couchestor_proto::coldtier::v1 as proto;
use ec_common::{BIN, patterned_file, sha256_file};
use harness::{Agent, Pki, fixture, start_agent_with};
use tempfile::TempDir;

struct StoreAgent {
    agent: Agent,
    stores: [PathBuf; 2],
    _dir: TempDir,
}

fn start(pki: &Pki, index: usize) -> StoreAgent {
    let dir = tempfile::tempdir().unwrap();
    let stores = [dir.path().join("s0"), dir.path().join("s1")];
    for s in &stores {
        std::fs::create_dir(s).unwrap();
    }
    let peer = pki.ca.client_cert(&format!("agent-{index}.test")).unwrap();
    let cert = pki.write(&format!("peer-{index}.crt"), &peer.cert_pem);
    let key = pki.write(&format!("peer-{index}.key"), &peer.key_pem);
    let mut extra: Vec<OsString> = Vec::new();
    for (name, s) in ["s0", "s1"].iter().zip(&stores) {
        extra.push("--shard-store".into());
        extra.push(format!("{name}={}", s.display()).into());
    }
    extra.extend([
        "--peer-cert".into(),
        cert.into(),
        "--peer-key".into(),
        key.into(),
    ]);
    let refs: Vec<&std::ffi::OsStr> = extra.iter().map(|s| s.as_os_str()).collect();
    let agent = start_agent_with(pki, index, &fixture("nvme-host/t0"), &refs);
    StoreAgent {
        agent,
        stores,
        _dir: dir,
    }
}

fn tls_args(pki: &Pki) -> Vec<String> {
    [
        ("--tls-ca", "ca.crt"),
        ("--tls-cert", "controller.crt"),
        ("--tls-key", "controller.key"),
    ]
    .iter()
    .flat_map(|(flag, file)| [flag.to_string(), pki.path(file).display().to_string()])
    .collect()
}

/// Runs `couchestor-agent ec WORDS... --shard-dir L...` with the controller's TLS files.
fn ec(pki: &Pki, words: &[&str], locations: &[String]) -> std::process::Output {
    let mut args: Vec<String> = std::iter::once("ec")
        .chain(words.iter().copied())
        .map(String::from)
        .collect();
    for l in locations {
        args.extend(["--shard-dir".into(), l.clone()]);
    }
    args.extend(tls_args(pki));
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run couchestor-agent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_shards_on_three_agents_restore_byte_exact_with_one_agent_down() {
    let pki = Pki::new();
    let agents: Vec<StoreAgent> = (0..3).map(|i| start(&pki, i)).collect();
    // Shard i on agent i % 3, store i / 3: each agent holds two shards, in two stores.
    let locations: Vec<String> = (0..6)
        .map(|i| format!("agent://{}/s{}", agents[i % 3].agent.grpc, i / 3))
        .collect();
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("vol.img");
    patterned_file(&input, (9 << 20) + 12345, 41);

    let input_arg = input.display().to_string();
    let encode = [
        "encode",
        "--input",
        &input_arg,
        "--block-size",
        "256K",
        "--output",
        "json",
    ];
    let out = ec(&pki, &encode, &locations);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["stripes"].as_u64(), Some(10));

    // Each store is a valid shard directory: manifest copy + shard file, nothing staged.
    for (i, loc) in locations.iter().enumerate() {
        let store = &agents[i % 3].stores[i / 3];
        let adir = store.join("vol.img");
        let mut names: Vec<String> = std::fs::read_dir(&adir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let expect = [
            "manifest.json".to_string(),
            format!("shard-{i}.dat"),
            format!("shard-{i}.dat.sha256"),
        ];
        assert_eq!(names, expect, "{loc}");
    }
    let dirs: Vec<PathBuf> = (0..6)
        .map(|i| agents[i % 3].stores[i / 3].clone())
        .collect();
    let local = work.path().join("from-dirs.img");
    couchestor_agent::erasure::restore(&dirs[..4], &local, false).unwrap();
    assert_eq!(sha256_file(&local), sha256_file(&input));

    // Agent 2 goes down: shards 2 and 5 are unreachable.
    let mut agents = agents;
    let down = agents.pop().unwrap();
    drop(down.agent);

    // ColdTier Restore on agent 0, reaching agent 1 and itself over mutual TLS.
    let mut ct = cold_tier(&pki, &agents[0].agent);
    let target = work.path().join("restored.img");
    let events = drain(
        ct.restore(proto::RestoreRequest {
            shard_locations: locations.clone(),
            archive_id: "vol.img".into(),
            target_path: target.display().to_string(),
            force: false,
        })
        .await,
    )
    .await
    .unwrap();
    let result = events.into_iter().find_map(|e| match e.event {
        Some(proto::restore_event::Event::Result(r)) => Some(r),
        _ => None,
    });
    let r = result.expect("a restore result");
    assert_eq!(
        r.missing_shards,
        [2, 5],
        "the shards of the agent that is down"
    );
    assert!(r.stripes_rebuilt > 0, "{r:?}");
    assert_eq!(sha256_file(&target), sha256_file(&input));

    // The CLI restores too, and verify names the locations that cannot be reached.
    let cli_target = work.path().join("cli.img");
    let cli_arg = cli_target.display().to_string();
    let out = ec(&pki, &["restore", "--output-file", &cli_arg], &locations);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sha256_file(&cli_target), sha256_file(&input));

    let out = ec(&pki, &["verify", "--output", "json"], &locations);
    assert_eq!(
        out.status.code(),
        Some(1),
        "not healthy with 2 shards unreachable"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["recoverable"], true);
    let states: Vec<&str> = report["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["ok", "ok", "missing", "ok", "ok", "missing"],
        "{report:#}"
    );
    let notes = report["notes"].to_string();
    assert!(notes.contains("cannot reach"), "{notes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_tier_archive_to_other_agents_and_repair_a_lost_remote_shard() {
    let pki = Pki::new();
    let agents: Vec<StoreAgent> = (0..3).map(|i| start(&pki, i)).collect();
    let locations: Vec<String> = (0..6)
        .map(|i| format!("agent://{}/s{}", agents[i % 3].agent.grpc, i / 3))
        .collect();
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("vol2.img");
    patterned_file(&input, 5 << 20, 42);
    let mut ct = cold_tier(&pki, &agents[1].agent);
    let events = drain(
        ct.archive(proto::ArchiveRequest {
            source_path: input.display().to_string(),
            shard_locations: locations.clone(),
            block_size: 128 << 10,
            ..Default::default()
        })
        .await,
    )
    .await
    .unwrap();
    let info = events.into_iter().find_map(|e| match e.event {
        Some(proto::archive_event::Event::Result(i)) => Some(i),
        _ => None,
    });
    let info = info.expect("an archive result");
    assert_eq!(info.shards[3].location, locations[3]);

    // Shard 3 (agent 0, store s1) is lost on disk; a repairing Verify through agent 1
    // rebuilds it into the same remote store.
    let lost = agents[0].stores[1].join("vol2.img/shard-3.dat");
    std::fs::remove_file(&lost).unwrap();
    let verify = |repair| proto::VerifyRequest {
        shard_locations: locations.clone(),
        archive_id: "vol2.img".into(),
        repair,
    };
    let events = drain(ct.verify(verify(true)).await).await.unwrap();
    let health = events.into_iter().find_map(|e| match e.event {
        Some(proto::verify_event::Event::Result(h)) => Some(h),
        _ => None,
    });
    let h = health.expect("a repair result");
    assert!(h.healthy, "{h:?}");
    assert_eq!(h.repaired, [3]);
    assert!(lost.is_file(), "shard 3 was not rewritten in its store");
    let dirs: Vec<PathBuf> = (0..6)
        .map(|i| agents[i % 3].stores[i / 3].clone())
        .collect();
    let restored = work.path().join("restored.img");
    couchestor_agent::erasure::restore(
        &[
            dirs[3].clone(),
            dirs[0].clone(),
            dirs[1].clone(),
            dirs[2].clone(),
        ],
        &restored,
        false,
    )
    .unwrap();
    assert_eq!(sha256_file(&restored), sha256_file(&input));
}
