//! Agent-to-agent shard streaming: two real agents (the built binary, each with its own
//! server certificate and `--shard-store-dir`) on loopback, driven by the agent's
//! `ShardStoreClient` and by the raw generated client over mutual TLS.

mod harness;

use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use couchestor_agent::shardstore::{ClientError, ShardStoreClient, hex};
use couchestor_proto::agent::v1::put_shard_chunk::Chunk;
use couchestor_proto::agent::v1::shard_store_client::ShardStoreClient as RawClient;
use couchestor_proto::agent::v1::{
    GetShardRequest, PutShardChunk, ShardHeader, VerifyShardsRequest,
};
use couchestor_testsupport::pki::{CertPair, TestCa};
use harness::{Agent, Pki, client_tls, fixture, start_agent_with};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tempfile::TempDir;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

/// An agent serving a ShardStore from its own directory.
struct StoreAgent {
    agent: Agent,
    store: TempDir,
}

fn start_store_agent(pki: &Pki, index: usize) -> StoreAgent {
    let store = tempfile::tempdir().unwrap();
    let extra: [&OsStr; 2] = ["--shard-store-dir".as_ref(), store.path().as_os_str()];
    let agent = start_agent_with(pki, index, &fixture("nvme-host/t0"), &extra);
    StoreAgent { agent, store }
}

/// A client of `agent` presenting `identity` (the pushing agent's client certificate).
async fn store_client(pki: &Pki, agent: &Agent, identity: &CertPair) -> ShardStoreClient {
    let tls = client_tls(&pki.ca.cert_pem(), Some(identity), &agent.server_name);
    ShardStoreClient::connect(&agent.url(), tls).await.unwrap()
}

fn raw_client(pki: &Pki, agent: &Agent, identity: Option<&CertPair>) -> RawClient<Channel> {
    let tls = client_tls(&pki.ca.cert_pem(), identity, &agent.server_name);
    let channel = Endpoint::from_shared(agent.url())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_lazy();
    RawClient::new(channel)
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

fn sha256(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// Every file under `root`, relative, sorted.
fn listing(root: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            out.push(path.strip_prefix(base).unwrap().display().to_string());
            if path.is_dir() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn remote_code(err: &ClientError) -> Code {
    match err {
        ClientError::Remote { status, .. } => status.code(),
        other => panic!("expected a status from the remote agent, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_stream_between_two_agents_byte_exact() {
    let pki = Pki::new();
    let a = start_store_agent(&pki, 0);
    let b = start_store_agent(&pki, 1);
    // Each agent pushes with its own client certificate.
    let a_identity = pki.ca.client_cert("agent-0.test").unwrap();
    let b_identity = pki.ca.client_cert("agent-1.test").unwrap();

    // A shard of 3 MiB + 17 bytes: several 1 MiB chunks and a short last one.
    let data = random((3 << 20) + 17, 1);
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("shard-2.dat");
    fs::write(&src, &data).unwrap();

    // Agent 0 pushes to agent 1.
    let mut to_b = store_client(&pki, &b.agent, &a_identity).await;
    let written = to_b.put_file("vol-7", 2, &src).await.unwrap();
    assert_eq!(written, data.len() as u64);
    let stored = b.store.path().join("vol-7/shard-2.dat");
    assert!(fs::read(&stored).unwrap() == data, "stored shard differs");
    assert_eq!(
        listing(b.store.path()),
        ["vol-7", "vol-7/shard-2.dat", "vol-7/shard-2.dat.sha256"]
    );
    assert_eq!(
        fs::read_to_string(b.store.path().join("vol-7/shard-2.dat.sha256")).unwrap(),
        format!("{} {}\n", sha256(&data), data.len())
    );

    // Pulled back whole and by range, byte-exact.
    let back = local.path().join("back.dat");
    assert_eq!(
        to_b.get_file("vol-7", 2, &back).await.unwrap(),
        data.len() as u64
    );
    assert!(fs::read(&back).unwrap() == data, "pulled shard differs");
    let (offset, len) = ((1 << 20) - 5, 1_500_000);
    let range = to_b
        .get_range("vol-7", 2, offset as u64, len as u64)
        .await
        .unwrap();
    assert!(range == data[offset..offset + len], "range differs");
    let tail = to_b
        .get_range("vol-7", 2, (data.len() - 10) as u64, 0)
        .await
        .unwrap();
    assert!(tail == data[data.len() - 10..]);
    let err = to_b
        .get_range("vol-7", 2, data.len() as u64 - 5, 6)
        .await
        .unwrap_err();
    assert_eq!(remote_code(&err), Code::OutOfRange, "{err}");
    assert!(
        err.to_string().contains("beyond the end of shard 2"),
        "{err}"
    );

    // Agent 1 relays it to agent 0 (pull from 1, push to 0), and 0 verifies it.
    let mut to_a = store_client(&pki, &a.agent, &b_identity).await;
    let relay = local.path().join("relay.dat");
    to_b.get_file("vol-7", 2, &relay).await.unwrap();
    assert_eq!(
        to_a.put_file("vol-7", 2, &relay).await.unwrap(),
        data.len() as u64
    );
    assert!(fs::read(a.store.path().join("vol-7/shard-2.dat")).unwrap() == data);
    let states = to_a.verify("vol-7").await.unwrap();
    assert_eq!(states.len(), 1);
    assert!(states[0].present && states[0].checksum_ok, "{states:?}");
    assert_eq!(states[0].shard_index, 2);

    // The same shard again is accepted (identical) and writes nothing; a different
    // content for the same index is refused.
    assert_eq!(to_b.put_file("vol-7", 2, &src).await.unwrap(), 0);
    let other = local.path().join("other.dat");
    fs::write(&other, random(1000, 2)).unwrap();
    let err = to_b.put_file("vol-7", 2, &other).await.unwrap_err();
    assert_eq!(remote_code(&err), Code::AlreadyExists, "{err}");
    assert!(fs::read(&stored).unwrap() == data, "existing shard changed");

    // Silent corruption on disk is found by VerifyShards.
    let mut bad = data.clone();
    bad[12345] ^= 1;
    fs::write(&stored, &bad).unwrap();
    let states = to_b.verify("vol-7").await.unwrap();
    assert!(states[0].present && !states[0].checksum_ok, "{states:?}");
    assert!(states[0].detail.contains("recorded"), "{states:?}");
    b.agent
        .wait_for_log(
            "PutShard \"vol-7\"/2: 3145745 bytes stored",
            std::time::Duration::from_secs(5),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_puts_are_refused_with_clear_statuses_and_leave_nothing() {
    let pki = Pki::new();
    let b = start_store_agent(&pki, 1);
    let identity = pki.ca.client_cert("agent-0.test").unwrap();
    let mut client = store_client(&pki, &b.agent, &identity).await;
    let data = random(2 << 20, 3);

    // Wrong checksum: DATA_LOSS, and nothing visible afterwards.
    let wrong = sha256(b"something else");
    let err = client
        .put_reader(
            "vol",
            0,
            data.len() as u64,
            &wrong,
            std::io::Cursor::new(data.clone()),
        )
        .await
        .unwrap_err();
    assert_eq!(remote_code(&err), Code::DataLoss, "{err}");
    assert!(
        err.to_string().contains("SHA-256 of the received data is"),
        "{err}"
    );
    assert_eq!(listing(b.store.path()), Vec::<String>::new());

    // Shorter and longer than announced.
    let sha = sha256(&data);
    let err = client
        .put_reader(
            "vol",
            0,
            data.len() as u64 + 1,
            &sha,
            std::io::Cursor::new(data.clone()),
        )
        .await
        .unwrap_err();
    assert_eq!(remote_code(&err), Code::InvalidArgument, "{err}");
    assert!(
        err.to_string()
            .contains("ended after 2097152 of the announced 2097153 bytes"),
        "{err}"
    );
    let err = client
        .put_reader("vol", 0, 100, &sha, std::io::Cursor::new(data.clone()))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("more data than the announced length of 100 bytes"),
        "{err}"
    );
    assert_eq!(listing(b.store.path()), Vec::<String>::new());

    // Path traversal and malformed ids, bad indices and checksums: INVALID_ARGUMENT.
    for id in ["../escape", "a/b", "..", ".hidden", "", "/etc"] {
        let err = client
            .put_reader(
                id,
                0,
                4,
                &sha256(b"abcd"),
                std::io::Cursor::new(b"abcd".to_vec()),
            )
            .await
            .unwrap_err();
        assert_eq!(remote_code(&err), Code::InvalidArgument, "{id:?}: {err}");
        assert!(err.to_string().contains("archive id"), "{err}");
        let err = client.get_range(id, 0, 0, 0).await.unwrap_err();
        assert_eq!(remote_code(&err), Code::InvalidArgument, "{id:?}: {err}");
        let err = client.verify(id).await.unwrap_err();
        assert_eq!(remote_code(&err), Code::InvalidArgument, "{id:?}: {err}");
    }
    assert!(!b.store.path().parent().unwrap().join("escape").exists());
    let err = client
        .put_reader(
            "vol",
            32,
            4,
            &sha256(b"abcd"),
            std::io::Cursor::new(b"abcd".to_vec()),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("shard index 32 is out of range (0 to 31)"),
        "{err}"
    );
    let err = client
        .put_reader("vol", 0, 4, "ABCD", std::io::Cursor::new(b"abcd".to_vec()))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("is not 64 lowercase hex digits"),
        "{err}"
    );

    // Raw protocol misuse: data before the header, a second header, an oversized chunk.
    let mut raw = raw_client(&pki, &b.agent, Some(&identity));
    let header = |len| PutShardChunk {
        chunk: Some(Chunk::Header(ShardHeader {
            archive_id: "vol".into(),
            shard_index: 1,
            length: len,
            sha256: sha.clone(),
            ..Default::default()
        })),
    };
    let data_chunk = |d: Vec<u8>| PutShardChunk {
        chunk: Some(Chunk::Data(d)),
    };
    let cases = [
        (
            vec![data_chunk(vec![1, 2, 3])],
            "the first PutShard message must carry the header",
        ),
        (vec![header(10), header(10)], "second header"),
        (
            vec![header(2 << 20), data_chunk(data[..(1 << 20) + 1].to_vec())],
            "exceeds the 1048576-byte limit",
        ),
        (vec![], "PutShard stream is empty"),
    ];
    for (messages, needle) in cases {
        let err = raw
            .put_shard(tokio_stream::iter(messages))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains(needle), "{needle}: {err:?}");
    }
    assert_eq!(listing(b.store.path()), Vec::<String>::new());

    // Missing shards and archives: NOT_FOUND.
    let err = raw
        .get_shard(GetShardRequest {
            archive_id: "vol".into(),
            shard_index: 0,
            offset: 0,
            length: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(
        err.message()
            .contains("shard 0 of archive \"vol\" is not stored here"),
        "{err:?}"
    );
    let err = raw
        .verify_shards(VerifyShardsRequest {
            archive_id: "vol".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    // After all that, a good put still works.
    let written = client
        .put_reader(
            "vol",
            0,
            data.len() as u64,
            &sha,
            std::io::Cursor::new(data.clone()),
        )
        .await
        .unwrap();
    assert_eq!(written, data.len() as u64);
    assert!(client.get_range("vol", 0, 0, 0).await.unwrap() == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_store_refuses_clients_without_a_valid_certificate() {
    let pki = Pki::new();
    let b = start_store_agent(&pki, 1);
    let rogue = TestCa::new("rogue CA")
        .unwrap()
        .client_cert("agent-0.test")
        .unwrap();
    let data = b"not for you".to_vec();
    for identity in [None, Some(&rogue)] {
        let tls = client_tls(&pki.ca.cert_pem(), identity, &b.agent.server_name);
        // Either the connection or the first call fails, never a stored shard.
        let outcome = match ShardStoreClient::connect(&b.agent.url(), tls).await {
            Ok(mut client) => client
                .put_reader(
                    "vol",
                    0,
                    data.len() as u64,
                    &sha256(&data),
                    std::io::Cursor::new(data.clone()),
                )
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        assert!(
            outcome.is_err(),
            "a client without a valid certificate was served"
        );
    }
    b.agent
        .wait_for_log(
            "refused: peer sent no certificates",
            std::time::Duration::from_secs(10),
        )
        .await;
    b.agent
        .wait_for_log(
            "invalid peer certificate: UnknownIssuer",
            std::time::Duration::from_secs(10),
        )
        .await;
    assert_eq!(listing(b.store.path()), Vec::<String>::new());

    // An agent started without --shard-store-dir does not serve the API at all.
    let plain = harness::start_agent(&pki, 2, &fixture("nvme-host/t0"));
    let identity = pki.ca.client_cert("agent-0.test").unwrap();
    let err = raw_client(&pki, &plain, Some(&identity))
        .verify_shards(VerifyShardsRequest {
            archive_id: "vol".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
}
