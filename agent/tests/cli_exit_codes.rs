//! Exit statuses and error messages of the `couchestor-agent` binary: 0 on success, 2 on
//! bad usage, 1 on a runtime error whose message names the path involved.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_couchestor-agent");

fn agent(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run couchestor-agent")
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        &["devices", "--interval", "0.05"][..],
        &["devices", "--interval", "3601"],
        &["devices", "--interval", "soon"],
        &["devices", "--output", "xml"],
        &["devices", "--count", "2"],
        &["devices", "--watch", "--second-root", "/tmp"],
        &["frobnicate"],
    ] {
        let out = agent(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn runtime_errors_exit_1_naming_the_path() {
    let out = agent(&[
        "devices",
        "--sysfs-root",
        "/nonexistent/sysfs",
        "--interval",
        "0.1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot list block devices in /nonexistent/sysfs/block"),
        "{err}"
    );

    let t0 = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nvme-host/t0");
    let out = agent(&[
        "devices",
        "--sysfs-root",
        t0.to_str().unwrap(),
        "--device",
        "sdz",
        "--interval",
        "0.1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no block device named \"sdz\" in ") && err.contains("nvme-host/t0/block"),
        "{err}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("block/sdq");
    std::fs::create_dir_all(disk.join("queue")).unwrap();
    std::fs::write(disk.join("stat"), "12 0 96 4 garbage 0 0 0 0 4 4\n").unwrap();
    std::fs::write(disk.join("size"), "8\n").unwrap();
    std::fs::write(disk.join("queue/rotational"), "0\n").unwrap();
    let out = agent(&[
        "devices",
        "--sysfs-root",
        tmp.path().to_str().unwrap(),
        "--interval",
        "0.1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "couchestor-agent: error: {}: unexpected content \"12 0 96 4 garbage 0 0 0 0 4 4\": \
         field 5 (write I/Os) is not an unsigned integer: \"garbage\"",
        disk.join("stat").display()
    );
    assert_eq!(err.trim_end(), expected);
}

#[test]
fn version_still_works() {
    let out = agent(&["version"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.trim(),
        format!(
            "couchestor-agent {} (agent protocol v1)",
            env!("CARGO_PKG_VERSION")
        )
    );
}
