//! Safety of `couchestor-agent ec` as a process: SIGKILL in the middle of an encode leaves no
//! complete archive and an untouched source, and a re-run works; a full disk gives a clear
//! "no space left on <dir>" and leaves nothing behind; CLI errors exit 1 with clear messages.

mod ec_common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use couchestor_agent::erasure;
use ec_common::{Area, BIN, complete_manifests, files_under, patterned_file, sha256_file};

fn agent(args: &[String]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run couchestor-agent")
}

/// `words` and the area's `--shard-dir`s; an encode gets `--allow-same-device` (the test
/// directories share one file system).
fn args(words: &[&str], area: &Area) -> Vec<String> {
    let mut v: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    if words.get(1) == Some(&"encode") {
        v.push("--allow-same-device".into());
    }
    v.extend(area.dir_args());
    v
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn sigkill_mid_encode_leaves_no_complete_archive_and_a_rerun_works() {
    let area = Area::new(6);
    let input = area.path("big.img");
    patterned_file(&input, 256 << 20, 11);
    let before = sha256_file(&input);
    let input_arg = input.display().to_string();
    // Small blocks make the encode take seconds, so it can be caught while writing.
    let cmd = args(
        &["ec", "encode", "--input", &input_arg, "--block-size", "16K"],
        &area,
    );
    let mut child = Command::new(BIN)
        .args(&cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start encode");
    let tmp_shard = area.dirs[0].join("big.img").join("shard-0.dat.tmp");
    let deadline = Instant::now() + Duration::from_secs(120);
    while fs::metadata(&tmp_shard).map_or(true, |m| m.len() < (4 << 20)) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "encode ended before it could be killed"
        );
        assert!(Instant::now() < deadline, "no shard tmp file appeared");
        thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();

    assert!(
        complete_manifests(area.tmp.path()).is_empty(),
        "a complete manifest survived"
    );
    let in_place: Vec<PathBuf> = files_under(area.tmp.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dat"))
        .collect();
    assert!(
        in_place.is_empty(),
        "shard files in place after the kill: {in_place:?}"
    );
    assert!(
        erasure::verify(&area.dirs).is_err(),
        "a killed encode must not be readable"
    );
    assert_eq!(sha256_file(&input), before, "the source changed");

    let out = agent(&cmd);
    assert!(out.status.success(), "re-run failed: {}", stderr(&out));
    let stale: Vec<PathBuf> = files_under(area.tmp.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(stale.is_empty(), "tmp files left: {stale:?}");
    assert_eq!(complete_manifests(area.tmp.path()).len(), 6);
    let restored = area.path("restored.img");
    erasure::restore(&area.dirs[2..], &restored, false).expect("restore");
    assert_eq!(sha256_file(&restored), before);
    assert_eq!(sha256_file(&input), before);
}

/// A tmpfs mounted for the test, unmounted on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        match Command::new("umount").arg(&self.0).status() {
            Ok(s) if s.success() => {}
            other => eprintln!("umount {} failed: {other:?}", self.0.display()),
        }
    }
}

/// Mounts a `fstype` file system (tmpfs, ramfs) with `options` on `dir`.
fn mount(fstype: &str, options: &str, dir: &Path) -> Result<Mount, String> {
    let out = Command::new("mount")
        .args(["-t", fstype, "-o", options, fstype])
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        Ok(Mount(dir.to_path_buf()))
    } else {
        Err(format!("mount -t {fstype} failed: {}", stderr(&out).trim()))
    }
}

/// Mounts, or explains why not: a failure fails the test under CI=true, else skips it.
fn mount_or_skip(fstype: &str, options: &str, dir: &Path, test: &str) -> Option<Mount> {
    match mount(fstype, options, dir) {
        Ok(m) => Some(m),
        Err(reason) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test} needs to mount a {fstype}: {reason}")
        }
        Err(reason) => {
            eprintln!("SKIPPED {test}: {reason}");
            None
        }
    }
}

#[test]
fn full_disk_names_the_directory_and_leaves_nothing_behind() {
    let area = Area::new(6);
    let test = "full_disk_names_the_directory_and_leaves_nothing_behind";
    let Some(_mount) = mount_or_skip("tmpfs", "size=16m", &area.dirs[2], test) else {
        return;
    };
    let input = area.path("vol.img");
    patterned_file(&input, 100 << 20, 12);
    let before = sha256_file(&input);
    let input_arg = input.display().to_string();
    let out = agent(&args(&["ec", "encode", "--input", &input_arg], &area));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let expected = format!("no space left on {}", area.dirs[2].display());
    assert!(stderr(&out).contains(&expected), "stderr: {}", stderr(&out));
    for dir in &area.dirs {
        let left = files_under(dir);
        assert!(
            left.is_empty(),
            "left behind in {}: {left:?}",
            dir.display()
        );
    }
    assert_eq!(sha256_file(&input), before);
}

#[test]
fn a_file_system_without_o_direct_falls_back_to_buffered_io() {
    let area = Area::new(6);
    let test = "a_file_system_without_o_direct_falls_back_to_buffered_io";
    // ramfs refuses O_DIRECT opens with EINVAL.
    let Some(_mount) = mount_or_skip("ramfs", "mode=755", &area.dirs[3], test) else {
        return;
    };
    let input = area.path("vol.img");
    patterned_file(&input, 5 << 20, 14);
    let input_arg = input.display().to_string();
    let out = Command::new(BIN)
        .args(args(&["ec", "encode", "--input", &input_arg], &area))
        .env("RUST_LOG", "info")
        .output()
        .expect("run couchestor-agent");
    assert!(out.status.success(), "{}", stderr(&out));
    let note = format!("O_DIRECT not supported in {}", area.dirs[3].display());
    assert!(stderr(&out).contains(&note), "{}", stderr(&out));
    let restored = area.path("out.img");
    erasure::restore(&area.dirs, &restored, false).expect("restore");
    assert_eq!(sha256_file(&restored), sha256_file(&input));
}

#[test]
fn cli_reports_and_errors() {
    let area = Area::new(6);
    let input = area.path("vol.img");
    patterned_file(&input, 3 << 20, 13);
    let input_arg = input.display().to_string();
    let out = agent(&args(
        &[
            "ec",
            "encode",
            "--input",
            &input_arg,
            "--block-size",
            "64K",
            "--output",
            "json",
        ],
        &area,
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("encode JSON");
    assert_eq!(
        (v["k"].as_u64(), v["m"].as_u64(), v["stripes"].as_u64()),
        (Some(4), Some(2), Some(12))
    );
    assert!(["simd", "pure-rust"].contains(&v["backend"].as_str().unwrap_or("")));

    let again = agent(&args(&["ec", "encode", "--input", &input_arg], &area));
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("already exists") && stderr(&again).contains("--force"));

    // Restore's target is --output (alias of --output-file); its report format is --format.
    let target = area.path("out.img").display().to_string();
    let restore = args(
        &["ec", "restore", "--output", &target, "--format", "json"],
        &area,
    );
    let out = agent(&restore);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("restore JSON");
    assert_eq!(r["bytes"].as_u64(), Some(3 << 20));
    assert_eq!(fs::read(&target).unwrap(), fs::read(&input).unwrap());
    let out = agent(&restore);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("{target} exists (pass --force")),
        "{}",
        stderr(&out)
    );

    // Damage: verify exits 1 but prints the report; scrub repairs and exits 0.
    for i in [1, 4, 5] {
        fs::remove_file(area.dirs[i].join("vol.img").join(format!("shard-{i}.dat"))).unwrap();
    }
    let out = agent(&args(&["ec", "verify"], &area));
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("shard 4  missing") && text.contains("UNRECOVERABLE"),
        "{text}"
    );
    let out = agent(&args(
        &["ec", "restore", "--output-file", &target, "--force"],
        &area,
    ));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("too few shards to reconstruct: 3 present, 4 needed"),
        "{}",
        stderr(&out)
    );

    let missing = area.path("gone").display().to_string();
    let out = agent(&[
        "ec".into(),
        "verify".into(),
        "--shard-dir".into(),
        missing.clone(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!("shard directory {missing} does not exist")));
    let out = agent(&args(
        &["ec", "encode", "--input", &input_arg, "--k", "31"],
        &area,
    ));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("k + m <= 32"), "{}", stderr(&out));
}

#[test]
fn scrub_and_json_reports_through_the_binary_and_same_device_refusal() {
    let area = Area::new(6);
    let input = area.path("vol.img");
    patterned_file(&input, 2 << 20, 15);
    let input_arg = input.display().to_string();

    // Without --allow-same-device, two directories of one file system are refused.
    let mut plain: Vec<String> = ["ec", "encode", "--input", &input_arg]
        .iter()
        .map(|s| s.to_string())
        .collect();
    plain.extend(area.dir_args());
    let out = agent(&plain);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("are on the same device")
            && stderr(&out).contains("--allow-same-device"),
        "{}",
        stderr(&out)
    );
    assert!(complete_manifests(area.tmp.path()).is_empty());

    let out = agent(&args(
        &["ec", "encode", "--input", &input_arg, "--block-size", "64K"],
        &area,
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = agent(&args(&["ec", "verify", "--output", "json"], &area));
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("verify JSON");
    assert_eq!(
        (v["healthy"].as_bool(), v["stripes"].as_u64()),
        (Some(true), Some(8))
    );

    // Corrupt one block of shard 2 and make shard 0 unreadable (a directory where its file
    // was): verify JSON names each, with the real read error.
    let shard = |i: usize| area.dirs[i].join("vol.img").join(format!("shard-{i}.dat"));
    let mut bytes = fs::read(shard(2)).unwrap();
    bytes[3 * 65536 + 7] ^= 0x40;
    fs::write(shard(2), &bytes).unwrap();
    fs::remove_file(shard(0)).unwrap();
    fs::create_dir(shard(0)).unwrap();
    let out = agent(&args(&["ec", "verify", "--output", "json"], &area));
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("verify JSON");
    assert_eq!(v["healthy"], false);
    assert_eq!(v["recoverable"], true);
    let s = &v["shards"];
    assert_eq!(s[2]["state"], "damaged");
    assert_eq!(s[2]["corrupt_blocks"], serde_json::json!([3]));
    assert_eq!(s[5]["state"], "ok");
    assert_eq!(s[0]["state"], "damaged", "{v:#}");
    let errors = s[0]["errors"].to_string();
    assert!(
        errors.contains("Is a directory"),
        "the real error is reported: {errors}"
    );

    // Scrub repairs both and reports JSON; a second verify is healthy.
    fs::remove_dir(shard(0)).unwrap();
    let out = agent(&args(&["ec", "scrub", "--output", "json"], &area));
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("scrub JSON");
    assert_eq!(v["healthy"], true);
    assert_eq!(v["repaired"], serde_json::json!([0, 2]));
    let out = agent(&args(&["ec", "verify"], &area));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let restored = area.path("out.img");
    erasure::restore(&area.dirs[..4], &restored, false).unwrap();
    assert_eq!(sha256_file(&restored), sha256_file(&input));
}
