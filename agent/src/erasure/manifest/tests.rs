//! Parsing, validation and round trips of manifests.

use super::*;

fn sample() -> Manifest {
    Manifest {
        format: FORMAT_NAME.into(),
        format_version: FORMAT_VERSION,
        archive_id: "vol".into(),
        shard_index: 0,
        state: State::Complete,
        created: "2025-01-01T00:00:00Z".into(),
        source_size: 4 * 4096 + 1,
        k: 4,
        m: 2,
        block_size: 4096,
        stripes: 2,
        codec: CODEC_NAME.into(),
        checksum: CHECKSUM_NAME.into(),
        source_sha256: "ab".repeat(32),
        block_crc32c: vec![vec![0xdead_beef, 7]; 6],
    }
}

#[test]
fn round_trips() {
    let m = sample();
    let text = m.to_json();
    assert!(text.contains("\"deadbeef00000007\""), "{text}");
    assert_eq!(Manifest::parse(&text), Ok(m));
}

#[test]
fn bad_json_is_a_clear_error() {
    let err = Manifest::parse("{\"format\": ").unwrap_err();
    assert!(matches!(err, ManifestError::Json(_)));
    assert!(err.to_string().starts_with("not valid JSON"), "{err}");
}

#[test]
fn unknown_version_is_a_clear_error() {
    let text = sample()
        .to_json()
        .replace("\"format_version\": 1", "\"format_version\": 7");
    let err = Manifest::parse(&text).unwrap_err();
    assert_eq!(err, ManifestError::UnsupportedVersion { found: 7 });
    assert_eq!(
        err.to_string(),
        "unsupported format version 7 (this agent reads version 1)"
    );
}

#[test]
fn foreign_json_and_inconsistent_fields_are_rejected() {
    assert_eq!(
        Manifest::parse("{\"a\": 1}"),
        Err(ManifestError::NotAManifest)
    );
    let mut m = sample();
    m.stripes = 3;
    assert!(matches!(
        Manifest::parse(&m.to_json()),
        Err(ManifestError::Invalid(_))
    ));
    let mut m = sample();
    m.block_crc32c.pop();
    assert!(matches!(
        Manifest::parse(&m.to_json()),
        Err(ManifestError::Invalid(_))
    ));
    let text = sample()
        .to_json()
        .replace("deadbeef00000007", "deadbeef0000007");
    assert!(matches!(
        Manifest::parse(&text),
        Err(ManifestError::Invalid(_))
    ));
    let text = sample()
        .to_json()
        .replace("\"k\": 4", "\"k\": 4, \"extra\": 1");
    assert!(matches!(
        Manifest::parse(&text),
        Err(ManifestError::Invalid(_))
    ));
}

#[test]
fn differences_name_the_field() {
    let a = sample();
    let mut b = sample();
    b.k = 3;
    let (x, y) = a.difference(&b).unwrap();
    assert_eq!((x.as_str(), y.as_str()), ("k/m k=4 m=2", "k/m k=3 m=2"));
    assert_eq!(a.difference(&a.for_shard(3, State::Writing)), None);
}
