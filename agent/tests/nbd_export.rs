//! `couchestor-agent nbd serve` driven by real NBD clients: qemu-img, qemu-io, nbdinfo and
//! nbdcopy (Debian `qemu-utils`, `libnbd-bin`; `tests/setup.sh` installs them), plus raw
//! TCP clients for what those tools never send (garbage handshakes, protocol-level writes,
//! reads past the end). Every byte read back is compared with the source.
//!
//! A missing tool prints SKIPPED, or fails the test under `CI=true`.

mod ec_common;

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use couchestor_agent::erasure::{self, EncodeParams};
use couchestor_testsupport::process::ChildProcess;
use couchestor_testsupport::unavailable;
use ec_common::{Area, BIN, random_file};

/// Source size: 5 MiB + 12345 bytes, not a multiple of the 64 KiB block nor of 512.
const SIZE: usize = 5 * 1024 * 1024 + 12345;
const BLOCK: usize = 64 * 1024;
/// A region of the source filled with 0xa5, for qemu-io's pattern reads.
const PATTERN_AT: usize = 1024 * 1024 + 4096;
const PATTERN_LEN: usize = 200 * 1024;

/// Returns false (after `unavailable`) unless every tool runs.
fn tools(names: &[&str]) -> bool {
    for name in names {
        let ok = Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            let why = format!(
                "{name} is not installed (tests/setup.sh installs qemu-utils and libnbd-bin)"
            );
            return unavailable::<()>(name, why).is_some();
        }
    }
    true
}

/// A 4+2 archive of random data (with one patterned region) named `vol`.
struct Archive {
    area: Area,
    data: Vec<u8>,
}

fn archive() -> Archive {
    let area = Area::new(6);
    let src = area.path("source.img");
    let mut data = random_file(&src, SIZE, 7);
    data[PATTERN_AT..PATTERN_AT + PATTERN_LEN].fill(0xa5);
    fs::write(&src, &data).unwrap();
    let params = EncodeParams {
        k: 4,
        m: 2,
        block_size: BLOCK,
        archive_id: Some("vol".into()),
        force: false,
    };
    let manifest = erasure::encode(&src, &area.dirs, &params).unwrap();
    assert_eq!(manifest.source_size, SIZE as u64);
    Archive { area, data }
}

/// A running `nbd serve`.
struct Server {
    _child: ChildProcess,
    addr: SocketAddr,
    metrics: SocketAddr,
    log: PathBuf,
}

impl Server {
    fn start(dirs: &[PathBuf], log: &Path, extra: &[&str]) -> Server {
        let mut child = spawn(dirs, log, extra);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = fs::read_to_string(log).unwrap_or_default();
            let addr = after(&text, "listening on ");
            let metrics = after(&text, "metrics listening on http://");
            if let (Some(addr), Some(metrics)) = (addr, metrics) {
                return Server {
                    _child: child,
                    addr,
                    metrics,
                    log: log.to_path_buf(),
                };
            }
            child.check_alive().expect("nbd serve is running");
            assert!(Instant::now() < deadline, "nbd serve not ready:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn uri(&self, name: &str) -> String {
        format!("nbd://{}/{name}", self.addr)
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn metrics(&self) -> String {
        let mut tcp = TcpStream::connect(self.metrics).unwrap();
        let request = format!("GET /metrics HTTP/1.0\r\nHost: {}\r\n\r\n", self.metrics);
        tcp.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        tcp.read_to_string(&mut response).unwrap();
        assert!(
            response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
            "{response}"
        );
        response
    }
}

fn spawn(dirs: &[PathBuf], log: &Path, extra: &[&str]) -> ChildProcess {
    let mut args = vec!["nbd".to_string(), "serve".into()];
    for d in dirs {
        args.push("--shard-dir".into());
        args.push(d.display().to_string());
    }
    args.extend(["--listen", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    let env = [
        ("RUST_LOG", std::ffi::OsStr::new("info")),
        ("NO_COLOR", "1".as_ref()),
    ];
    ChildProcess::spawn_with_env("nbd serve", Path::new(BIN), &args, log, &env).unwrap()
}

/// The socket address that follows `marker` in `text`.
fn after(text: &str, marker: &str) -> Option<SocketAddr> {
    text.lines()
        .filter_map(|l| l.split(marker).nth(1))
        .filter_map(|rest| rest.split(['/', ' ']).next())
        .find_map(|a| a.parse().ok())
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap()
}

fn run_ok(program: &str, args: &[&str]) -> Output {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `qemu-img convert` of the export at `uri` into `out`, checked against `data`.
fn qemu_img_copy(uri: &str, out: &Path, data: &[u8]) {
    let out_str = out.to_str().unwrap();
    run_ok(
        "qemu-img",
        &["convert", "-f", "raw", "-O", "raw", uri, out_str],
    );
    assert_qemu_copy(out, data);
}

/// Checks a file written by `qemu-img convert`: qemu sizes images in 512-byte sectors, so
/// the copy is the source followed by zeros up to the next multiple of 512.
fn assert_qemu_copy(out: &Path, data: &[u8]) {
    let copy = fs::read(out).unwrap();
    assert_eq!(
        copy.len(),
        data.len().next_multiple_of(512),
        "{}",
        out.display()
    );
    assert!(
        copy[..data.len()] == *data,
        "{} differs from the source",
        out.display()
    );
    assert!(
        copy[data.len()..].iter().all(|&b| b == 0),
        "{}: padding",
        out.display()
    );
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// Bytes of a qemu-io `read -v` hex dump.
fn hexdump_bytes(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((addr, rest)) = line.split_once(":  ") else {
            continue;
        };
        if addr.len() != 8 || !addr.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        // 16 hex bytes, then two spaces and the ASCII column.
        for tok in rest.split(' ').take_while(|t| !t.is_empty()) {
            out.push(u8::from_str_radix(tok, 16).unwrap());
        }
    }
    out
}

#[test]
fn qemu_img_convert_and_compare_are_byte_exact_with_concurrent_clients() {
    if !tools(&["qemu-img"]) {
        return;
    }
    let a = archive();
    let server = Server::start(
        &a.area.dirs,
        &a.area.path("serve.log"),
        &["--export-name", "vol"],
    );
    // Three clients at once, each copying the whole export.
    let parallel: Vec<_> = (0..3)
        .map(|i| {
            let uri = server.uri("vol");
            let out = a.area.path(&format!("par{i}.raw"));
            std::thread::spawn(move || {
                let o = Command::new("qemu-img")
                    .args(["convert", "-f", "raw", "-O", "raw", &uri])
                    .arg(&out)
                    .output()
                    .unwrap();
                (o, out)
            })
        })
        .collect();
    for handle in parallel {
        let (o, out) = handle.join().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_qemu_copy(&out, &a.data);
    }
    // qemu-img's own comparison, straight against the export.
    let src = a.area.path("source.img");
    let out = run_ok(
        "qemu-img",
        &[
            "compare",
            "-f",
            "raw",
            "-F",
            "raw",
            src.to_str().unwrap(),
            &server.uri("vol"),
        ],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Images are identical"));
    // The empty (default) export name selects the export too.
    let default = a.area.path("default.raw");
    qemu_img_copy(&format!("nbd://{}", server.addr), &default, &a.data);

    let log = server.wait_for_log("NBD connection from 127.0.0.1:");
    assert!(log.contains("opened export \"vol\""), "{log}");
    let m = server.metrics();
    assert!(
        metric(&m, "couchestor_agent_nbd_read_bytes_total") >= 5.0 * SIZE as f64,
        "{m}"
    );
    assert!(
        metric(&m, "couchestor_agent_nbd_connections_total") >= 5.0,
        "{m}"
    );
    assert_eq!(metric(&m, "couchestor_agent_ec_degraded_reads_total"), 0.0);
    assert!(
        m.contains("couchestor_agent_ec_shards_missing{archive=\"vol\"} 0"),
        "{m}"
    );
}

#[test]
fn qemu_io_reads_ranges_and_patterns_byte_exact() {
    if !tools(&["qemu-io"]) {
        return;
    }
    let a = archive();
    let server = Server::start(&a.area.dirs, &a.area.path("serve.log"), &[]);
    // The export name defaults to the archive id.
    let uri = server.uri("vol");
    let pattern = format!("read -P 0xa5 {PATTERN_AT} {PATTERN_LEN}");
    let out = run_ok("qemu-io", &["-r", "-f", "raw", "-c", &pattern, &uri]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "read {PATTERN_LEN}/{PATTERN_LEN} bytes at offset {PATTERN_AT}"
        )),
        "{text}"
    );
    assert!(!text.contains("Pattern verification failed"), "{text}");
    // The same pattern over random data must fail: the check is real.
    let wrong = format!("read -P 0xa5 0 {PATTERN_LEN}");
    let out = run("qemu-io", &["-r", "-f", "raw", "-c", &wrong, &uri]);
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("Pattern verification failed"), "{text}");

    // Unaligned ranges across blocks and stripes, and the last bytes of the export.
    let ranges = [
        (0, 4096),
        (BLOCK - 7, 300),
        (4 * BLOCK - 100, 9000),
        (SIZE - 777, 777),
        (3_000_001, 4097),
    ];
    for (offset, len) in ranges {
        let cmd = format!("read -v {offset} {len}");
        let out = run_ok("qemu-io", &["-r", "-f", "raw", "-c", &cmd, &uri]);
        let got = hexdump_bytes(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(got.len(), len, "{offset}+{len}");
        assert!(
            got == a.data[offset..offset + len],
            "{offset}+{len} differs"
        );
    }
    // Past the end: qemu refuses before asking; the raw client below checks EINVAL.
    let cmd = format!("read {} 4096", SIZE - 100);
    let out = run("qemu-io", &["-r", "-f", "raw", "-c", &cmd, &uri]);
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("read failed")
            || text.contains("out of range")
            || text.contains("Input/output")
            || text.contains("Invalid argument"),
        "{text}"
    );
}

#[test]
fn nbdinfo_and_nbdcopy_see_a_read_only_export_of_the_right_size() {
    if !tools(&["nbdinfo", "nbdcopy"]) {
        return;
    }
    let a = archive();
    let server = Server::start(
        &a.area.dirs,
        &a.area.path("serve.log"),
        &["--export-name", "cold/vol"],
    );
    let out = run_ok("nbdinfo", &["--json", &server.uri("cold/vol")]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let export = &info["exports"][0];
    assert_eq!(export["export-name"], "cold/vol", "{info:#}");
    assert_eq!(export["export-size"], SIZE as u64, "{info:#}");
    assert_eq!(export["is_read_only"], true, "{info:#}");
    assert_eq!(export["can_flush"], true, "{info:#}");
    assert_eq!(export["can_multi_conn"], true, "{info:#}");
    assert_eq!(export["block_size_maximum"], 32u64 << 20, "{info:#}");
    assert!(
        export["description"]
            .as_str()
            .unwrap()
            .contains("6 of 6 shards present"),
        "{info:#}"
    );

    let out = run_ok("nbdinfo", &["--size", &server.uri("cold/vol")]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        SIZE.to_string()
    );

    let uri = format!("nbd://{}", server.addr);
    let out = run_ok("nbdinfo", &["--list", "--json", &uri]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = list["exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["export-name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cold/vol"], "{list:#}");

    // An unknown name is refused (NBD_REP_ERR_UNKNOWN, which libnbd reports as ENOENT).
    let out = run("nbdinfo", &[&server.uri("nosuch")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("No such file or directory for export: nosuch"),
        "{err}"
    );

    // nbdcopy, also with several connections and requests in flight.
    for (i, extra) in [&[][..], &["--connections=4", "--requests=16"]]
        .iter()
        .enumerate()
    {
        let dest = a.area.path(&format!("copy{i}.raw"));
        fs::File::create(&dest).unwrap();
        let mut args = extra.to_vec();
        let src = server.uri("cold/vol");
        args.extend([src.as_str(), dest.to_str().unwrap()]);
        run_ok("nbdcopy", &args);
        assert!(
            fs::read(&dest).unwrap() == a.data,
            "nbdcopy {extra:?} differs"
        );
    }

    // A write attempt by a real client is refused: nbdcopy into the export.
    let junk = a.area.path("junk.raw");
    fs::write(&junk, vec![0x55u8; SIZE]).unwrap();
    let out = run(
        "nbdcopy",
        &[junk.to_str().unwrap(), &server.uri("cold/vol")],
    );
    assert!(
        !out.status.success(),
        "nbdcopy into a read-only export succeeded"
    );
    let again = a.area.path("again.raw");
    fs::File::create(&again).unwrap();
    run_ok(
        "nbdcopy",
        &[&server.uri("cold/vol"), again.to_str().unwrap()],
    );
    assert!(
        fs::read(&again).unwrap() == a.data,
        "data changed after a refused write"
    );
}

#[test]
fn two_lost_shard_directories_still_read_byte_exact_and_three_are_refused() {
    if !tools(&["qemu-img", "nbdcopy"]) {
        return;
    }
    let a = archive();
    // Lose shards 1 (data) and 4 (parity) entirely: the directories are gone.
    for i in [1, 4] {
        fs::remove_dir_all(&a.area.dirs[i]).unwrap();
    }
    let left: Vec<PathBuf> = [0, 2, 3, 5]
        .iter()
        .map(|&i| a.area.dirs[i].clone())
        .collect();
    let server = Server::start(&left, &a.area.path("serve.log"), &[]);
    qemu_img_copy(&server.uri("vol"), &a.area.path("degraded.raw"), &a.data);
    let copy = a.area.path("degraded-copy.raw");
    fs::File::create(&copy).unwrap();
    run_ok(
        "nbdcopy",
        &[
            "--connections=2",
            &server.uri("vol"),
            copy.to_str().unwrap(),
        ],
    );
    assert!(
        fs::read(&copy).unwrap() == a.data,
        "degraded nbdcopy differs"
    );
    let m = server.metrics();
    assert!(
        m.contains("couchestor_agent_ec_shards_missing{archive=\"vol\"} 2"),
        "{m}"
    );
    assert!(
        metric(&m, "couchestor_agent_ec_degraded_reads_total") > 0.0,
        "{m}"
    );
    drop(server);

    // Shard 0 gone as well: 3 of 6 left, fewer than k = 4. The server refuses to start.
    fs::remove_dir_all(&a.area.dirs[0]).unwrap();
    let left: Vec<PathBuf> = [2, 3, 5].iter().map(|&i| a.area.dirs[i].clone()).collect();
    let log = a.area.path("refused.log");
    let mut child = spawn(&left, &log, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.check_alive().is_ok() {
        assert!(
            Instant::now() < deadline,
            "nbd serve kept running with 3 of 6 shards"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("too few shards to reconstruct: 3 present, 4 needed"),
        "{text}"
    );
}

// ---- raw protocol clients ----

const IHAVEOPT: u64 = 0x4948_4156_454f_5054;

fn read_n(tcp: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tcp.read_exact(&mut buf).unwrap();
    buf
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes(b[i..i + 4].try_into().unwrap())
}

/// Connects and reads the server's greeting.
fn greet(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let hello = read_n(&mut tcp, 18);
    assert_eq!(&hello[..16], b"NBDMAGICIHAVEOPT");
    assert_eq!(
        u16::from_be_bytes([hello[16], hello[17]]) & 1,
        1,
        "fixed newstyle"
    );
    tcp
}

fn send_option(tcp: &mut TcpStream, option: u32, data: &[u8]) {
    let mut b = IHAVEOPT.to_be_bytes().to_vec();
    b.extend_from_slice(&option.to_be_bytes());
    b.extend_from_slice(&(data.len() as u32).to_be_bytes());
    b.extend_from_slice(data);
    tcp.write_all(&b).unwrap();
}

/// Reads one option reply: (option, type, data).
fn option_reply(tcp: &mut TcpStream) -> (u32, u32, Vec<u8>) {
    let head = read_n(tcp, 20);
    assert_eq!(&head[..8], &0x0003_e889_0455_65a9u64.to_be_bytes());
    let len = u32_at(&head, 16) as usize;
    (u32_at(&head, 8), u32_at(&head, 12), read_n(tcp, len))
}

/// Negotiates with NBD_OPT_GO (and structured replies if asked); returns the connection
/// in transmission and the export size.
fn go(addr: SocketAddr, name: &str, structured: bool) -> (TcpStream, u64) {
    let mut tcp = greet(addr);
    tcp.write_all(&3u32.to_be_bytes()).unwrap(); // FIXED_NEWSTYLE | NO_ZEROES
    // Options the server does not support are refused with NBD_REP_ERR_UNSUP.
    for option in [5, 99] {
        send_option(&mut tcp, option, &[]); // NBD_OPT_STARTTLS, unknown
        let (opt, kind, msg) = option_reply(&mut tcp);
        assert_eq!(
            (opt, kind),
            (option, 0x8000_0001),
            "{}",
            String::from_utf8_lossy(&msg)
        );
        assert!(String::from_utf8_lossy(&msg).contains("is not supported"));
    }
    if structured {
        send_option(&mut tcp, 8, &[]); // NBD_OPT_STRUCTURED_REPLY
        assert_eq!(option_reply(&mut tcp).1, 1);
    }
    let mut data = (name.len() as u32).to_be_bytes().to_vec();
    data.extend_from_slice(name.as_bytes());
    data.extend_from_slice(&0u16.to_be_bytes());
    send_option(&mut tcp, 7, &data);
    let mut size = None;
    loop {
        let (opt, kind, data) = option_reply(&mut tcp);
        assert_eq!(opt, 7);
        match kind {
            3 if data[..2] == [0, 0] => {
                size = Some(u64::from_be_bytes(data[2..10].try_into().unwrap()));
                let flags = u16::from_be_bytes([data[10], data[11]]);
                assert_eq!(flags & 0b11, 0b11, "HAS_FLAGS | READ_ONLY");
            }
            3 => {}
            1 => break,
            other => panic!("reply {other:#x}: {}", String::from_utf8_lossy(&data)),
        }
    }
    (tcp, size.expect("NBD_INFO_EXPORT"))
}

fn request(tcp: &mut TcpStream, kind: u16, cookie: u64, offset: u64, len: u32) {
    let mut b = 0x2560_9513u32.to_be_bytes().to_vec();
    b.extend_from_slice(&0u16.to_be_bytes());
    b.extend_from_slice(&kind.to_be_bytes());
    b.extend_from_slice(&cookie.to_be_bytes());
    b.extend_from_slice(&offset.to_be_bytes());
    b.extend_from_slice(&len.to_be_bytes());
    tcp.write_all(&b).unwrap();
}

/// Reads one structured reply chunk: (flags, type, cookie, payload).
fn chunk(tcp: &mut TcpStream) -> (u16, u16, u64, Vec<u8>) {
    let b = read_n(tcp, 20);
    assert_eq!(u32_at(&b, 0), 0x668e_33ef, "structured reply magic");
    let flags = u16::from_be_bytes([b[4], b[5]]);
    let kind = u16::from_be_bytes([b[6], b[7]]);
    let cookie = u64::from_be_bytes(b[8..16].try_into().unwrap());
    let len = u32_at(&b, 16) as usize;
    (flags, kind, cookie, read_n(tcp, len))
}

/// Reads a simple reply: (error, cookie).
fn reply(tcp: &mut TcpStream) -> (u32, u64) {
    let b = read_n(tcp, 16);
    assert_eq!(u32_at(&b, 0), 0x6744_6698);
    (
        u32_at(&b, 4),
        u64::from_be_bytes(b[8..16].try_into().unwrap()),
    )
}

/// True once the server has closed `tcp` (EOF; a reset counts too).
fn closed_by_server(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(e) => panic!("server neither answered nor closed: {e}"),
        }
    }
}

#[test]
fn protocol_writes_are_refused_reads_past_the_end_fail_and_the_stream_stays_in_step() {
    let a = archive();
    let server = Server::start(&a.area.dirs, &a.area.path("serve.log"), &[]);
    let (mut tcp, size) = go(server.addr, "vol", false);
    assert_eq!(size, SIZE as u64);

    // WRITE with its payload: EPERM; TRIM and WRITE_ZEROES: EPERM.
    request(&mut tcp, 1, 11, 0, 4096);
    tcp.write_all(&[0x55u8; 4096]).unwrap();
    assert_eq!(reply(&mut tcp), (1, 11));
    request(&mut tcp, 4, 12, 0, 4096);
    assert_eq!(reply(&mut tcp), (1, 12));
    request(&mut tcp, 6, 13, 0, 4096);
    assert_eq!(reply(&mut tcp), (1, 13));
    // Past the end, and overflowing offsets: EINVAL.
    request(&mut tcp, 0, 14, SIZE as u64 - 10, 11);
    assert_eq!(reply(&mut tcp), (22, 14));
    request(&mut tcp, 0, 15, u64::MAX - 5, 100);
    assert_eq!(reply(&mut tcp), (22, 15));
    // Larger than the 32 MiB maximum: EINVAL.
    request(&mut tcp, 0, 16, 0, (32 << 20) + 1);
    assert_eq!(reply(&mut tcp), (22, 16));
    // Unknown command: EINVAL.
    request(&mut tcp, 42, 17, 0, 0);
    assert_eq!(reply(&mut tcp), (22, 17));
    // FLUSH succeeds.
    request(&mut tcp, 3, 18, 0, 0);
    assert_eq!(reply(&mut tcp), (0, 18));

    // Reads still answer with the source's bytes: the refused write changed nothing, and
    // the stream is in step. Several in flight at once; replies matched by cookie.
    let ranges = [
        (0usize, 4096usize),
        (SIZE - 1, 1),
        (BLOCK * 3 + 5, BLOCK * 2),
        (123_457, 1 << 20),
    ];
    for (i, (offset, len)) in ranges.iter().enumerate() {
        request(&mut tcp, 0, 100 + i as u64, *offset as u64, *len as u32);
    }
    let mut seen = Vec::new();
    for _ in ranges {
        let (error, cookie) = reply(&mut tcp);
        assert_eq!(error, 0);
        let (offset, len) = ranges[(cookie - 100) as usize];
        let data = read_n(&mut tcp, len);
        assert!(
            data == a.data[offset..offset + len],
            "read {offset}+{len} differs"
        );
        seen.push(cookie);
    }
    seen.sort();
    assert_eq!(seen, [100, 101, 102, 103]);

    // DISC: the server closes the connection.
    request(&mut tcp, 2, 19, 0, 0);
    assert!(closed_by_server(&mut tcp));
    server.wait_for_log("NBD write 0+4096 refused: the export is read-only");
    server.wait_for_log("disconnected");

    // With structured replies: a read is one OFFSET_DATA chunk (flag DONE), a write an
    // ERROR chunk carrying EPERM, a flush a NONE chunk; the tail read ends at the size.
    let (mut tcp, _) = go(server.addr, "vol", true);
    request(&mut tcp, 0, 21, (SIZE - 1000) as u64, 1000);
    let (flags, kind, cookie, payload) = chunk(&mut tcp);
    assert_eq!((flags, kind, cookie), (1, 1, 21));
    assert_eq!(
        u64::from_be_bytes(payload[..8].try_into().unwrap()),
        (SIZE - 1000) as u64
    );
    assert!(payload[8..] == a.data[SIZE - 1000..]);
    request(&mut tcp, 1, 22, 0, 512);
    tcp.write_all(&[0u8; 512]).unwrap();
    let (flags, kind, cookie, payload) = chunk(&mut tcp);
    assert_eq!(
        (flags, kind, cookie, u32_at(&payload, 0)),
        (1, 0x8001, 22, 1)
    );
    request(&mut tcp, 0, 23, SIZE as u64, 1);
    let (_, kind, _, payload) = chunk(&mut tcp);
    assert_eq!((kind, u32_at(&payload, 0)), (0x8001, 22));
    request(&mut tcp, 3, 24, 0, 0);
    assert_eq!(chunk(&mut tcp), (1, 0, 24, vec![]));
    request(&mut tcp, 2, 25, 0, 0);
    assert!(closed_by_server(&mut tcp));
}

#[test]
fn garbage_and_truncated_handshakes_are_closed_and_others_are_still_served() {
    let a = archive();
    let server = Server::start(&a.area.dirs, &a.area.path("serve.log"), &[]);

    // An idle client that never finishes its handshake does not block anyone.
    let _idle = greet(server.addr);

    // Garbage instead of client flags.
    let mut tcp = greet(server.addr);
    let local = tcp.local_addr().unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(closed_by_server(&mut tcp));
    server.wait_for_log(&format!(
        "NBD handshake with {local} failed: client flags 0x47455420"
    ));

    // Valid flags, then an option without the IHAVEOPT magic.
    let mut tcp = greet(server.addr);
    let local = tcp.local_addr().unwrap();
    tcp.write_all(&1u32.to_be_bytes()).unwrap();
    tcp.write_all(&[0xffu8; 16]).unwrap();
    assert!(closed_by_server(&mut tcp));
    server.wait_for_log(&format!(
        "NBD handshake with {local} failed: bad option magic"
    ));

    // An option claiming 1 GiB of data.
    let mut tcp = greet(server.addr);
    let local = tcp.local_addr().unwrap();
    tcp.write_all(&1u32.to_be_bytes()).unwrap();
    let mut b = IHAVEOPT.to_be_bytes().to_vec();
    b.extend_from_slice(&7u32.to_be_bytes());
    b.extend_from_slice(&(1u32 << 30).to_be_bytes());
    tcp.write_all(&b).unwrap();
    assert!(closed_by_server(&mut tcp));
    server.wait_for_log(&format!(
        "NBD handshake with {local} failed: NBD_OPT_GO carries 1073741824 bytes"
    ));

    // Truncated: half an option header, then the client goes away.
    let mut tcp = greet(server.addr);
    let local = tcp.local_addr().unwrap();
    tcp.write_all(&1u32.to_be_bytes()).unwrap();
    tcp.write_all(&IHAVEOPT.to_be_bytes()[..5]).unwrap();
    tcp.shutdown(Shutdown::Write).unwrap();
    assert!(closed_by_server(&mut tcp));
    server.wait_for_log(&format!(
        "NBD handshake with {local} failed: connection closed"
    ));

    // A malformed NBD_OPT_GO gets NBD_REP_ERR_INVALID and the handshake goes on; an
    // unknown export NBD_REP_ERR_UNKNOWN; NBD_OPT_LIST the export; NBD_OPT_ABORT an ack.
    let mut tcp = greet(server.addr);
    tcp.write_all(&1u32.to_be_bytes()).unwrap();
    send_option(&mut tcp, 7, &[0, 0, 0, 9, b'v']);
    let (_, kind, msg) = option_reply(&mut tcp);
    assert_eq!(kind, 0x8000_0003, "{}", String::from_utf8_lossy(&msg));
    assert!(String::from_utf8_lossy(&msg).contains("malformed NBD_OPT_GO"));
    let mut data = 5u32.to_be_bytes().to_vec();
    data.extend_from_slice(b"other");
    data.extend_from_slice(&0u16.to_be_bytes());
    send_option(&mut tcp, 6, &data);
    let (_, kind, msg) = option_reply(&mut tcp);
    assert_eq!(kind, 0x8000_0006, "{}", String::from_utf8_lossy(&msg));
    send_option(&mut tcp, 3, &[]);
    let (_, kind, entry) = option_reply(&mut tcp);
    assert_eq!(
        (kind, &entry[..7]),
        (2, &[0, 0, 0, 3, b'v', b'o', b'l'][..])
    );
    assert_eq!(option_reply(&mut tcp).1, 1);
    send_option(&mut tcp, 2, &[]);
    assert_eq!(option_reply(&mut tcp).1, 1);
    assert!(closed_by_server(&mut tcp));

    // Old-style NBD_OPT_EXPORT_NAME of an unknown export: closed (no error reply exists).
    let mut tcp = greet(server.addr);
    tcp.write_all(&1u32.to_be_bytes()).unwrap();
    send_option(&mut tcp, 1, b"nosuch");
    assert!(closed_by_server(&mut tcp));
    // ... and of the right one: size, flags and the 124 zero bytes.
    let mut tcp = greet(server.addr);
    tcp.write_all(&1u32.to_be_bytes()).unwrap();
    send_option(&mut tcp, 1, b"vol");
    let reply_bytes = read_n(&mut tcp, 8 + 2 + 124);
    assert_eq!(
        u64::from_be_bytes(reply_bytes[..8].try_into().unwrap()),
        SIZE as u64
    );
    assert!(reply_bytes[10..].iter().all(|&b| b == 0));
    request(&mut tcp, 0, 1, 4096, 512);
    assert_eq!(reply(&mut tcp), (0, 1));
    assert!(read_n(&mut tcp, 512) == a.data[4096..4608]);

    // After all of that, a protocol client is still served byte-exact.
    let (mut tcp, _) = go(server.addr, "", false);
    request(&mut tcp, 0, 7, (SIZE - 5000) as u64, 5000);
    assert_eq!(reply(&mut tcp), (0, 7));
    assert!(read_n(&mut tcp, 5000) == a.data[SIZE - 5000..]);
    assert!(
        server
            .metrics()
            .contains("couchestor_agent_nbd_connections ")
    );
}

/// The export reads through the block cache: with a tiny memory level, the disk level fills
/// on the first copy, survives the server being killed, and serves a restarted server;
/// every copy is byte-exact.
#[test]
fn reads_go_through_an_on_disk_cache_that_survives_a_restart() {
    if !tools(&["qemu-img"]) {
        return;
    }
    let a = archive();
    let cache = a.area.path("cache");
    fs::create_dir_all(&cache).unwrap();
    let flags = [
        "--export-name",
        "vol",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--cache-memory-mib",
        "1",
    ];
    let copy = |server: &Server, name: &str| {
        qemu_img_copy(&server.uri("vol"), &a.area.path(name), &a.data);
    };
    let stats = || {
        let out = run_ok(
            BIN,
            &[
                "cache",
                "stats",
                "--cache-dir",
                cache.to_str().unwrap(),
                "--output",
                "json",
            ],
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    {
        let server = Server::start(&a.area.dirs, &a.area.path("first.log"), &flags);
        copy(&server, "first.raw");
    } // SIGKILL: no orderly shutdown.
    let after_first = stats();
    let entries = after_first["index"]["entries"].as_u64().unwrap();
    assert!(entries > 0, "{after_first}");

    let server = Server::start(&a.area.dirs, &a.area.path("second.log"), &flags);
    copy(&server, "second.raw");
    drop(server);
    let after_second = stats();
    assert_eq!(
        after_second["index"]["entries"].as_u64().unwrap(),
        entries,
        "{after_second}"
    );
    assert_eq!(
        after_second["index"]["corrupt_records"], 0,
        "{after_second}"
    );
}
