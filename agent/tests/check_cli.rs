//! `couchestor-agent check` on the sysfs fixtures, real directories and real certificates:
//! exit 0 when every check passes, 1 when any fails, 3 when some only warn.

mod harness;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use harness::{BIN, Pki, fixture};
use serde_json::Value;

const DAY: Duration = Duration::from_secs(86_400);

fn check(args: &[&Path]) -> Output {
    Command::new(BIN).arg("check").args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes a client certificate valid from `now - before` to `now + after` (or `now - after`
/// when `expired`), returning its certificate and key paths.
fn cert_valid(
    pki: &Pki,
    name: &str,
    before: Duration,
    after: Duration,
    expired: bool,
) -> [std::path::PathBuf; 2] {
    let now = SystemTime::now();
    let not_after = if expired { now - after } else { now + after };
    let pair = pki
        .ca
        .client_cert_valid_between(name, now - before, not_after)
        .unwrap();
    [
        pki.write(&format!("{name}.crt"), &pair.cert_pem),
        pki.write(&format!("{name}.key"), &pair.key_pem),
    ]
}

#[test]
fn every_check_passes_on_a_good_node() {
    let pki = Pki::new();
    let tmp = tempfile::tempdir().unwrap();
    let (cache, shard1, shard2) = (
        tmp.path().join("cache"),
        tmp.path().join("s1"),
        tmp.path().join("s2"),
    );
    for dir in [&cache, &shard1, &shard2] {
        std::fs::create_dir(dir).unwrap();
    }
    let [cert, key] = cert_valid(&pki, "agent", DAY, 365 * DAY, false);
    let sysfs = fixture("nvme-host/t0");
    let f = |s: &'static str| Path::new(s);
    let mut args = vec![f("--sysfs-root"), &sysfs, f("--cache-dir"), &cache];
    args.extend([f("--shard-dir"), &shard1, f("--shard-dir"), &shard2]);
    let ca = pki.path("ca.crt");
    args.extend([
        f("--tls-cert"),
        &cert,
        f("--tls-key"),
        &key,
        f("--client-ca"),
        &ca,
    ]);

    let out = check(&[&args[..], &[f("--output"), f("json")]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "OK");
    let checks = report["checks"].as_array().unwrap();
    let names: Vec<_> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "io_uring",
            "block_devices",
            "cache_dir",
            "shard_dir",
            "shard_dir",
            "tls_cert",
            "tls_key",
            "client_ca"
        ]
    );
    assert!(checks.iter().all(|c| c["status"] == "OK"), "{report:#}");
    let block = format!(
        "3 block devices readable in {}: loop0, nvme0n1, nvme1n1",
        sysfs.join("block").display()
    );
    assert_eq!(checks[1]["detail"], block);
    assert_eq!(
        checks[4]["detail"],
        format!("{} is writable", shard2.display())
    );
    assert!(
        checks[5]["detail"]
            .as_str()
            .unwrap()
            .contains("CN=agent, expires")
    );
    assert_eq!(
        checks[6]["detail"],
        format!("{} fits {}", key.display(), cert.display())
    );
    // The probe files are gone.
    for dir in [&cache, &shard1, &shard2] {
        assert_eq!(
            std::fs::read_dir(dir).unwrap().count(),
            0,
            "{}",
            dir.display()
        );
    }

    // The same as a table.
    let out = check(&args);
    assert_eq!(out.status.code(), Some(0));
    let table = stdout(&out);
    assert!(
        table.starts_with("CHECK          STATUS  DETAIL\n"),
        "{table}"
    );
    assert!(table.contains(&format!(
        "\ncache_dir      OK      {} is writable\n",
        cache.display()
    )));
}

#[test]
fn a_missing_shard_dir_fails_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-shards");
    let sysfs = fixture("sata-host/t0");
    let (flag_root, flag_shard) = (Path::new("--sysfs-root"), Path::new("--shard-dir"));
    let out = check(&[
        flag_root,
        &sysfs,
        flag_shard,
        tmp.path(),
        flag_shard,
        &missing,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let table = stdout(&out);
    let want = format!(
        "shard_dir      FAIL    {} does not exist\n",
        missing.display()
    );
    assert!(table.contains(&want), "{table}");
    assert!(table.contains(&format!(
        "shard_dir      OK      {} is writable",
        tmp.path().display()
    )));
    assert!(
        table.contains("block_devices  OK      4 block devices readable"),
        "{table}"
    );
}

#[test]
fn an_unreadable_sysfs_tree_fails() {
    let out = check(&[Path::new("--sysfs-root"), Path::new("/nonexistent/sysfs")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(
            "block_devices  FAIL    cannot list block devices in /nonexistent/sysfs/block"
        )
    );
}

#[test]
fn an_expired_certificate_fails_naming_it() {
    let pki = Pki::new();
    let [cert, key] = cert_valid(&pki, "expired", 400 * DAY, 30 * DAY, true);
    let ca = pki.path("ca.crt");
    let sysfs = fixture("nvme-host/t0");
    let f = Path::new;
    let out = check(&[
        f("--sysfs-root"),
        &sysfs,
        f("--tls-cert"),
        &cert,
        f("--tls-key"),
        &key,
        f("--client-ca"),
        &ca,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let table = stdout(&out);
    let want = format!(
        "tls_cert       FAIL    {}: CN=expired, EXPIRED on ",
        cert.display()
    );
    assert!(table.contains(&want), "{table}");
    assert!(table.contains("tls_key        OK"), "{table}");
    assert!(table.contains("client_ca      OK"), "{table}");
}

#[test]
fn a_certificate_expiring_within_30_days_only_warns() {
    let pki = Pki::new();
    let [cert, key] = cert_valid(&pki, "soon", DAY, 10 * DAY + DAY / 2, false);
    let ca = pki.path("ca.crt");
    let sysfs = fixture("nvme-host/t0");
    let f = Path::new;
    let out = check(&[
        f("--sysfs-root"),
        &sysfs,
        f("--tls-cert"),
        &cert,
        f("--tls-key"),
        &key,
        f("--client-ca"),
        &ca,
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    let table = stdout(&out);
    let want = format!(
        "tls_cert       WARN    {}: CN=soon, expires ",
        cert.display()
    );
    assert!(table.contains(&want), "{table}");
    assert!(
        table.contains("(in 10 days) (less than 30 days left)"),
        "{table}"
    );
}

#[test]
fn a_key_that_does_not_fit_the_certificate_fails() {
    let pki = Pki::new();
    let [cert, _] = cert_valid(&pki, "a", DAY, 365 * DAY, false);
    let [_, other_key] = cert_valid(&pki, "b", DAY, 365 * DAY, false);
    let ca = pki.path("ca.crt");
    let sysfs = fixture("nvme-host/t0");
    let f = Path::new;
    let out = check(&[
        f("--sysfs-root"),
        &sysfs,
        f("--tls-cert"),
        &cert,
        f("--tls-key"),
        &other_key,
        f("--client-ca"),
        &ca,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let want = format!(
        "tls_key        FAIL    {}: does not fit {}",
        other_key.display(),
        cert.display()
    );
    assert!(stdout(&out).contains(&want), "{}", stdout(&out));
}
