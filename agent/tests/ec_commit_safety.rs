//! A forced re-encode that fails while committing keeps the previous archive (or says
//! clearly what was lost); an interrupted commit does not excuse overwriting a complete
//! archive; a scrub never puts a rebuilt block that fails its checksum in place.

mod ec_common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Mutex;

use couchestor_agent::erasure::{self, EcError, EncodeParams, Progress, restore, scrub, verify};
use ec_common::{Area, random_file};

/// Not a multiple of the stripe (4 MiB at the default 4+2, 1 MiB blocks): 3 stripes.
const SIZE: usize = 9 * (1 << 20) + 4_321;

/// A [`Progress`] that runs `action` once, at the end of the encode's data phase (after the
/// staged shards are written and before the commit starts).
struct AtCommit(Mutex<Option<Box<dyn FnOnce() + Send>>>);

impl AtCommit {
    fn new(action: impl FnOnce() + Send + 'static) -> Self {
        AtCommit(Mutex::new(Some(Box::new(action))))
    }
}

impl Progress for AtCommit {
    fn end(&self) {
        if let Some(action) = self.0.lock().unwrap().take() {
            action();
        }
    }
}

fn forced() -> EncodeParams {
    EncodeParams {
        force: true,
        ..EncodeParams::default()
    }
}

/// An area holding archive `vol.img` of seeded data; returns the data.
fn old_archive(area: &Area, seed: u64) -> Vec<u8> {
    let data = random_file(&area.path("vol.img"), SIZE, seed);
    erasure::encode(&area.path("vol.img"), &area.dirs, &EncodeParams::default()).unwrap();
    data
}

fn archive_file(area: &Area, i: usize, name: &str) -> PathBuf {
    area.dirs[i].join("vol.img").join(name)
}

fn restored(area: &Area) -> Result<Vec<u8>, EcError> {
    let target = area.path("out");
    if target.exists() {
        fs::remove_file(&target).unwrap();
    }
    restore(&area.dirs, &target, false).map(|_| fs::read(&target).unwrap())
}

#[test]
fn a_failed_commit_of_a_forced_re_encode_keeps_the_previous_archive() {
    let area = Area::new(6);
    let old = old_archive(&area, 1);
    random_file(&area.path("vol.img"), SIZE, 2);

    // Phase 2 fails at shard location 2 (its manifest cannot be replaced): nothing of the
    // old archive was replaced, so it is kept whole.
    let blocker = archive_file(&area, 2, "manifest.json.tmp");
    let b = blocker.clone();
    let progress = AtCommit::new(move || fs::create_dir(&b).unwrap());
    let err =
        erasure::encode_with_progress(&area.path("vol.img"), &area.dirs, &forced(), &progress)
            .unwrap_err();
    fs::remove_dir(&blocker).unwrap();
    assert!(
        restored(&area).unwrap() == old,
        "the old archive must read back"
    );
    assert!(matches!(err, EcError::CommitFailed { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("\"vol.img\"") && text.contains("kept"),
        "{text}"
    );
    assert!(verify(&area.dirs).unwrap().healthy);

    // Phase 3 fails at shard location 1 (its staged shard vanished): only shard 0 of the
    // old archive was replaced; the old archive stays readable and is repairable.
    let staged = archive_file(&area, 1, "shard-1.dat.tmp");
    let progress = AtCommit::new(move || fs::remove_file(&staged).unwrap());
    let err =
        erasure::encode_with_progress(&area.path("vol.img"), &area.dirs, &forced(), &progress)
            .unwrap_err();
    assert!(
        restored(&area).unwrap() == old,
        "the old archive must read back"
    );
    let text = err.to_string();
    assert!(
        text.contains("\"vol.img\"") && text.contains("[0]"),
        "{text}"
    );
    let report = scrub(&area.dirs).unwrap();
    assert!(report.healthy && report.repaired == [0], "{report:?}");
    for i in 0..6 {
        assert!(!archive_file(&area, i, &format!("shard-{i}.dat.tmp")).exists());
    }

    // Phase 3 fails at shard location 4: four old shards were replaced, more than m. The
    // result is an error naming the archive, never a mix read as complete.
    let staged = archive_file(&area, 4, "shard-4.dat.tmp");
    let progress = AtCommit::new(move || fs::remove_file(&staged).unwrap());
    let err =
        erasure::encode_with_progress(&area.path("vol.img"), &area.dirs, &forced(), &progress)
            .unwrap_err();
    assert!(err.to_string().contains("\"vol.img\""), "{err}");
    let err = restored(&area).unwrap_err();
    assert!(matches!(err, EcError::TooFewShards { .. }), "{err}");

    // The re-run succeeds and reads back the new data.
    let new = random_file(&area.path("vol.img"), SIZE, 3);
    erasure::encode(&area.path("vol.img"), &area.dirs, &forced()).unwrap();
    assert!(restored(&area).unwrap() == new);
}

#[test]
fn a_stale_writing_copy_does_not_let_an_encode_overwrite_a_complete_archive() {
    let area = Area::new(6);
    let old = old_archive(&area, 4);
    // A leftover `writing` copy of another encode (another creation time) at location 0.
    let path = archive_file(&area, 0, "manifest.json");
    let text = fs::read_to_string(&path).unwrap();
    let created = text.lines().find(|l| l.contains("\"created\"")).unwrap();
    let stale = text
        .replace("\"state\": \"complete\"", "\"state\": \"writing\"")
        .replace(created, "  \"created\": \"2001-01-01T00:00:00Z\",");
    fs::write(&path, stale).unwrap();
    random_file(&area.path("vol.img"), SIZE, 5);
    let err =
        erasure::encode(&area.path("vol.img"), &area.dirs, &EncodeParams::default()).unwrap_err();
    assert!(matches!(err, EcError::ArchiveExists { .. }), "{err}");
    // Nothing was touched: with the stale copy put back, the old archive reads.
    fs::write(&path, text).unwrap();
    assert!(restored(&area).unwrap() == old);
}

#[test]
fn a_rebuilt_block_that_fails_its_checksum_is_never_put_in_place() {
    let area = Area::new(6);
    old_archive(&area, 6);
    let block = 1usize << 20;
    // Shard 3 is damaged in stripe 1.
    let shard3 = archive_file(&area, 3, "shard-3.dat");
    let mut bytes = fs::read(&shard3).unwrap();
    bytes[block + 10] ^= 0xff;
    fs::write(&shard3, &bytes).unwrap();
    let before = (fs::metadata(&shard3).unwrap().ino(), bytes);
    // Shard 0's block 1 is silently wrong (its recorded CRC was changed to match), so the
    // rebuild of shard 3's block 1 from it yields wrong bytes.
    let shard0 = archive_file(&area, 0, "shard-0.dat");
    let mut data0 = fs::read(&shard0).unwrap();
    data0[block + 7] ^= 0x5a;
    fs::write(&shard0, &data0).unwrap();
    let (good, bad) = (
        crc32c::crc32c(&{
            let mut d = data0[block..2 * block].to_vec();
            d[7] ^= 0x5a;
            d
        }),
        crc32c::crc32c(&data0[block..2 * block]),
    );
    for i in 0..6 {
        let path = archive_file(&area, i, "manifest.json");
        let text = fs::read_to_string(&path).unwrap();
        let (g, b) = (format!("{good:08x}"), format!("{bad:08x}"));
        assert!(text.contains(&g));
        fs::write(&path, text.replacen(&g, &b, 1)).unwrap();
    }
    let err = scrub(&area.dirs).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            EcError::RebuiltBlockMismatch {
                shard: 3,
                block: 1,
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("\"vol.img\"") && text.contains("shard 3") && text.contains("block 1"),
        "{text}"
    );
    let after = fs::metadata(&shard3).unwrap().ino();
    assert_eq!(after, before.0, "the damaged shard must not be replaced");
    assert!(fs::read(&shard3).unwrap() == before.1);
    assert!(!archive_file(&area, 3, "shard-3.dat.tmp").exists());
}
