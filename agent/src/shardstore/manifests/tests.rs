use std::fs;
use std::path::Path;

use tonic::Code;

use super::commit;
use crate::shardstore::{checksum_file, hex, shard_file, staged_file};

/// A checksum file's text for `data`.
fn sum(data: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    format!("{} {}\n", hex(digest.as_ref()), data.len())
}

/// A store holding committed shard 0 of `vol` ("old") and a staged copy ("new").
fn store(root: &Path, staged_sum: bool) {
    fs::create_dir(root.join("vol")).unwrap();
    let (shard, staged) = (shard_file(root, "vol", 0), staged_file(root, "vol", 0));
    fs::write(&shard, b"old").unwrap();
    fs::write(checksum_file(&shard), sum(b"old")).unwrap();
    fs::write(&staged, b"new").unwrap();
    if staged_sum {
        fs::write(checksum_file(&staged), sum(b"new")).unwrap();
    }
}

fn pair(root: &Path) -> (String, String) {
    let shard = shard_file(root, "vol", 0);
    (
        fs::read_to_string(&shard).unwrap(),
        fs::read_to_string(checksum_file(&shard)).unwrap(),
    )
}

#[test]
fn a_commit_without_a_staged_checksum_is_refused_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    store(root.path(), false);
    let err = commit(root.path(), "vol", 0).unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("checksum"), "{err:?}");
    assert_eq!(pair(root.path()), ("old".into(), sum(b"old")));
    assert!(staged_file(root.path(), "vol", 0).exists());
}

#[test]
fn a_commit_moves_data_and_checksum_as_a_pair() {
    let root = tempfile::tempdir().unwrap();
    store(root.path(), true);
    commit(root.path(), "vol", 0).unwrap();
    assert_eq!(pair(root.path()), ("new".into(), sum(b"new")));
    let staged = staged_file(root.path(), "vol", 0);
    assert!(!staged.exists() && !checksum_file(&staged).exists());
}

#[test]
fn a_commit_interrupted_after_the_data_rename_is_finished_by_a_retry() {
    // As if a commit died after removing the old checksum and renaming the data: the new
    // data has no checksum beside it (detectably incomplete) and the staged one is left.
    let root = tempfile::tempdir().unwrap();
    store(root.path(), true);
    let (shard, staged) = (
        shard_file(root.path(), "vol", 0),
        staged_file(root.path(), "vol", 0),
    );
    fs::remove_file(checksum_file(&shard)).unwrap();
    fs::rename(&staged, &shard).unwrap();
    commit(root.path(), "vol", 0).unwrap();
    assert_eq!(pair(root.path()), ("new".into(), sum(b"new")));
}
