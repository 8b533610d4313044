//! Clear refusals of the archive engine: too few shards, shard directories of different
//! archives or parameters, existing archives and targets without `--force`, missing
//! directories, and archives whose commit was interrupted.

mod ec_common;

use std::fs;
use std::path::PathBuf;

use couchestor_agent::erasure::{self, EcError, EncodeParams, read_range, restore, scrub, verify};
use ec_common::{Area, random_file};

const SIZE: usize = 3 * (1 << 20) + 4321;

fn encoded(seed: u64) -> (Area, Vec<u8>) {
    let area = Area::new(6);
    let data = random_file(&area.path("vol.img"), SIZE, seed);
    erasure::encode(&area.path("vol.img"), &area.dirs, &EncodeParams::default()).expect("encode");
    (area, data)
}

fn shard_file(area: &Area, i: usize) -> PathBuf {
    area.dirs[i].join("vol.img").join(format!("shard-{i}.dat"))
}

#[test]
fn too_few_shards_say_how_many_are_present_and_needed() {
    let (area, _) = encoded(5);
    for i in [0, 3, 4] {
        fs::remove_file(shard_file(&area, i)).unwrap();
    }
    let err = restore(&area.dirs, &area.path("out"), false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "too few shards to reconstruct: 3 present, 4 needed"
    );
    assert!(!area.path("out").exists());
    let err = read_range(&area.dirs[..2], 0, 10).unwrap_err();
    assert!(
        matches!(
            err,
            EcError::TooFewShards {
                present: 1,
                needed: 4,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn mismatched_archives_and_parameters_are_refused() {
    let (a, _) = encoded(6);
    // Same archive id, other parameters (3+3).
    let b = Area::new(6);
    random_file(&b.path("vol.img"), 100_000, 7);
    let params = EncodeParams {
        k: 3,
        m: 3,
        ..EncodeParams::default()
    };
    erasure::encode(&b.path("vol.img"), &b.dirs, &params).unwrap();
    let mixed = vec![
        a.dirs[0].clone(),
        a.dirs[1].clone(),
        b.dirs[2].clone(),
        a.dirs[3].clone(),
    ];
    let err = restore(&mixed, &a.path("out"), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("mismatched parameters:") && err.contains("k=4 m=2"),
        "{err}"
    );
    assert!(
        err.contains("k=3 m=3") && err.contains(&*b.dirs[2].to_string_lossy()),
        "{err}"
    );
    // Different archive ids.
    let c = Area::new(6);
    random_file(&c.path("other.img"), 50_000, 8);
    erasure::encode(&c.path("other.img"), &c.dirs, &EncodeParams::default()).unwrap();
    let mixed = vec![a.dirs[0].clone(), c.dirs[1].clone()];
    let err = verify(&mixed).unwrap_err();
    assert!(matches!(err, EcError::DifferentArchives { .. }), "{err}");
}

#[test]
fn existing_archives_targets_and_missing_dirs_are_reported() {
    let (area, data) = encoded(9);
    let src = area.path("vol.img");
    let err = erasure::encode(&src, &area.dirs, &EncodeParams::default()).unwrap_err();
    assert!(matches!(err, EcError::ArchiveExists { .. }) && err.to_string().contains("--force"));
    let forced = EncodeParams {
        force: true,
        ..EncodeParams::default()
    };
    erasure::encode(&src, &area.dirs, &forced).expect("--force overwrites");
    fs::write(area.path("out"), b"keep me").unwrap();
    let err = restore(&area.dirs, &area.path("out"), false).unwrap_err();
    assert!(matches!(err, EcError::TargetExists(_)), "{err}");
    assert_eq!(fs::read(area.path("out")).unwrap(), b"keep me");
    restore(&area.dirs, &area.path("out"), true).unwrap();
    assert!(fs::read(area.path("out")).unwrap() == data);
    let mut dirs = area.dirs.clone();
    dirs[2] = area.path("no-such-dir");
    let err = erasure::encode(&src, &dirs, &forced).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "shard directory {} does not exist or is not a directory",
            dirs[2].display()
        )
    );
}

#[test]
fn an_interrupted_commit_is_incomplete_until_the_encode_is_rerun() {
    let (area, data) = encoded(10);
    // As if the encode died between writing manifest 0 in state writing and completing it.
    let path = area.dirs[0].join("vol.img").join("manifest.json");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(
        &path,
        text.replace("\"state\": \"complete\"", "\"state\": \"writing\""),
    )
    .unwrap();
    let err = restore(&area.dirs, &area.path("out"), false).unwrap_err();
    assert!(matches!(err, EcError::Incomplete { .. }), "{err}");
    assert!(err.to_string().contains("run the encode again"), "{err}");
    assert!(matches!(scrub(&area.dirs), Err(EcError::Incomplete { .. })));
    // The re-run needs no --force: the archive was never complete.
    erasure::encode(&area.path("vol.img"), &area.dirs, &EncodeParams::default()).unwrap();
    restore(&area.dirs, &area.path("out"), false).unwrap();
    assert!(fs::read(area.path("out")).unwrap() == data);
}

#[test]
fn manifests_of_an_unknown_format_version_are_refused_clearly() {
    let (area, _) = encoded(11);
    for dir in &area.dirs {
        let path = dir.join("vol.img").join("manifest.json");
        let text = fs::read_to_string(&path).unwrap();
        fs::write(
            &path,
            text.replace("\"format_version\": 1", "\"format_version\": 2"),
        )
        .unwrap();
    }
    let err = verify(&area.dirs).unwrap_err().to_string();
    assert!(err.starts_with("manifest "), "{err}");
    assert!(
        err.ends_with("unsupported format version 2 (this agent reads version 1)"),
        "{err}"
    );
    // One corrupt copy among good ones only costs that shard.
    let path = area.dirs[0].join("vol.img").join("manifest.json");
    fs::write(&path, "{ not json").unwrap();
    for dir in &area.dirs[1..] {
        let path = dir.join("vol.img").join("manifest.json");
        let text = fs::read_to_string(&path).unwrap();
        fs::write(
            &path,
            text.replace("\"format_version\": 2", "\"format_version\": 1"),
        )
        .unwrap();
    }
    let report = verify(&area.dirs).unwrap();
    assert!(report.recoverable && !report.healthy);
    assert!(
        report.notes[0].contains("not valid JSON"),
        "{:?}",
        report.notes
    );
    assert!(scrub(&area.dirs).unwrap().healthy);
}
