//! Telemetry cost at 256 devices: `cargo bench -p couchestor-agent --bench stats`.
//!
//! Builds a sysfs tree of 256 NVMe disks (the layout of the `nvme-host` fixture, with
//! `/dev/disk/by-id` links), then prints, in one run:
//! 1. the in-process cost of one stats cycle (read every `stat`/`size`/`queue` file, compute
//!    the rates, scan the aliases, build the gRPC `NodeStats`): median and p99 over the
//!    cycles, and that median as a share of one core at a 1 s interval;
//! 2. the real `couchestor-agent serve` process on that tree at `--interval 1` for 30 s:
//!    its CPU time from /proc (user + system) as a share of one core, and its RSS (current
//!    and peak), while a client asks for the 256-device stats once a second.
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it does a short smoke run.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use couchestor_agent::aliases;
use couchestor_agent::report;
use couchestor_agent::sysfs::Sysfs;
use couchestor_proto::agent::v1 as proto;
use couchestor_testsupport::pki::TestCa;

const DEVICES: usize = 256;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("scratch dir");
    let (sys, dev) = (tmp.path().join("sys"), tmp.path().join("dev"));
    build_tree(&sys, &dev, DEVICES);
    println!("Agent telemetry benchmark, {DEVICES} devices");

    let cycles = if full { 300 } else { 5 };
    let cpu0 = cpu_time(std::process::id());
    let mut times = in_process_cycles(&sys, &dev, cycles);
    let cpu_per_cycle = (cpu_time(std::process::id()) - cpu0) / cycles as u32;
    times.sort();
    let median = times[times.len() / 2];
    let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
    println!(
        "one stats cycle, in process ({cycles} cycles): wall median {:.3} ms, p99 {:.3} ms; CPU {:.3} ms per cycle = {:.3} % of a core at a 1 s interval",
        ms(median),
        ms(p99),
        ms(cpu_per_cycle),
        100.0 * cpu_per_cycle.as_secs_f64()
    );

    let window = if full {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(3)
    };
    let p = serve_process(tmp.path(), &sys, &dev, window);
    println!(
        "couchestor-agent serve --interval 1, {}s measured: CPU {:.3} % of a core ({:.0} ms user+system), RSS {:.1} MiB (peak {:.1} MiB), {} GetNodeStats answered with {} devices each",
        window.as_secs(),
        100.0 * p.cpu.as_secs_f64() / window.as_secs_f64(),
        ms(p.cpu),
        p.rss_kib as f64 / 1024.0,
        p.hwm_kib as f64 / 1024.0,
        p.requests,
        p.devices
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `n` NVMe disks `nvme<i>n1`, each with a by-id link, laid out like the kernel's sysfs.
fn build_tree(sys: &Path, dev: &Path, n: usize) {
    fs::create_dir_all(sys.join("block")).unwrap();
    fs::create_dir_all(dev.join("disk/by-id")).unwrap();
    for i in 0..n {
        let ctrl = format!(
            "devices/pci0000:00/0000:00:02.0/0000:{:02x}:00.0/nvme/nvme{i}",
            i % 256
        );
        let disk = sys.join(&ctrl).join(format!("nvme{i}n1"));
        fs::create_dir_all(disk.join("queue")).unwrap();
        let files = [
            (
                "stat",
                format!(
                    "{} 0 {} 1500 {} 0 {} 900 0 2000 2400 0 0 0 0 0 0",
                    5000 + i,
                    400_000 + i,
                    700 + i,
                    5600 + i
                ),
            ),
            ("size", "1953525168".into()),
            ("queue/rotational", "0".into()),
            ("queue/logical_block_size", "512".into()),
            ("diskseq", format!("{}", 10 + i)),
            ("removable", "0".into()),
            ("ro", "0".into()),
            ("wwid", format!("eui.00253885910{i:05}")),
        ];
        for (f, text) in files {
            fs::write(disk.join(f), format!("{text}\n")).unwrap();
        }
        let c = sys.join(&ctrl);
        fs::write(c.join("model"), "Samsung SSD 980 PRO 1TB\n").unwrap();
        fs::write(c.join("serial"), format!("S5GXNF0R9{i:05}A\n")).unwrap();
        fs::write(c.join("transport"), "pcie\n").unwrap();
        symlink("../../", disk.join("device")).unwrap();
        symlink(
            format!("../{ctrl}/nvme{i}n1"),
            sys.join(format!("block/nvme{i}n1")),
        )
        .unwrap();
        symlink(
            format!("../../nvme{i}n1"),
            dev.join(format!(
                "disk/by-id/nvme-Samsung_SSD_980_PRO_1TB_S5GXNF0R9{i:05}A"
            )),
        )
        .unwrap();
    }
}

/// Durations of `cycles` full stats cycles, as the sampler and `GetNodeStats` run them.
fn in_process_cycles(sys: &Path, dev: &Path, cycles: usize) -> Vec<Duration> {
    let tree = Sysfs::new(sys);
    let mut previous = tree.sample().expect("sample");
    assert_eq!(previous.devices.len(), DEVICES, "the tree has every device");
    let mut times = Vec::with_capacity(cycles);
    for _ in 0..cycles {
        let start = Instant::now();
        let current = tree.sample().expect("sample");
        let names: Vec<&str> = current
            .devices
            .iter()
            .map(|d| d.info.name.as_str())
            .collect();
        let links = aliases::scan(dev, &tree, &names);
        let reports = report::build(&previous, &current, Duration::from_secs(1));
        let stats = proto::NodeStats {
            node_name: "bench".into(),
            timestamp_ms: 0,
            interval_ms: 1000,
            devices: reports
                .iter()
                .map(|r| proto::DeviceStats {
                    aliases: links.get(&r.name).cloned().unwrap_or_default(),
                    ..proto::DeviceStats::from(r)
                })
                .collect(),
        };
        times.push(start.elapsed());
        assert_eq!(stats.devices.len(), DEVICES);
        assert!(stats.devices.iter().all(|d| d.aliases.len() == 1));
        previous = current;
    }
    times
}

struct ProcessFigures {
    cpu: Duration,
    rss_kib: u64,
    hwm_kib: u64,
    requests: usize,
    devices: usize,
}

/// Runs the real agent on the tree and measures it through /proc over `window`.
fn serve_process(dir: &Path, sys: &Path, dev: &Path, window: Duration) -> ProcessFigures {
    let ca = TestCa::new("bench-ca").unwrap();
    let server = ca.server_cert(&["couchestor-agent"]).unwrap();
    let client = ca.client_cert("bench-client").unwrap();
    let write = |name: &str, text: &str| -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        p
    };
    let (cert, key, ca_file) = (
        write("server.crt", &server.cert_pem),
        write("server.key", &server.key_pem),
        write("ca.crt", &ca.cert_pem()),
    );
    let (ccert, ckey) = (
        write("client.crt", &client.cert_pem),
        write("client.key", &client.key_pem),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_couchestor-agent"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .arg("--client-ca")
            .arg(&ca_file)
            .arg("--sysfs-root")
            .arg(sys)
            .arg("--dev-root")
            .arg(dev)
            .args(["--interval", "1", "--node-name", "bench"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start couchestor-agent serve"),
    );
    let pid = child.0.id();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tls = couchestor_agent::tls::client_config(&ca_file, &ccert, &ckey, "couchestor-agent")
            .unwrap();
        let endpoint = tonic::transport::Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
            .unwrap()
            .tls_config(tls)
            .unwrap();
        let channel = loop {
            match endpoint.connect().await {
                Ok(c) => break c,
                Err(_) if child.0.try_wait().unwrap().is_none() => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("the agent exited: {e}"),
            }
        };
        let mut client = proto::node_agent_client::NodeAgentClient::new(channel);
        let ask = |c: &mut proto::node_agent_client::NodeAgentClient<_>| {
            let mut c = c.clone();
            async move {
                c.get_node_stats(proto::GetNodeStatsRequest::default())
                    .await
                    .unwrap()
                    .into_inner()
            }
        };
        // Warm up: the first answer needs two readings.
        let first = loop {
            let mut c = client.clone();
            match c
                .get_node_stats(proto::GetNodeStatsRequest::default())
                .await
            {
                Ok(r) => break r.into_inner(),
                Err(s) if s.code() == tonic::Code::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(s) => panic!("GetNodeStats: {s}"),
            }
        };
        let cpu0 = cpu_time(pid);
        let start = Instant::now();
        let mut requests = 0;
        let mut devices = first.devices.len();
        while start.elapsed() < window {
            tokio::time::sleep(Duration::from_secs(1)).await;
            devices = ask(&mut client).await.devices.len();
            requests += 1;
        }
        let cpu = cpu_time(pid) - cpu0;
        let (rss_kib, hwm_kib) = memory(pid);
        ProcessFigures {
            cpu,
            rss_kib,
            hwm_kib,
            requests,
            devices,
        }
    })
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Err(e) = self.0.kill() {
            eprintln!("cannot stop the agent: {e}");
        }
        if let Err(e) = self.0.wait() {
            eprintln!("cannot reap the agent: {e}");
        }
    }
}

/// User + system CPU time of a process.
fn cpu_time(pid: u32) -> Duration {
    let stat = procfs::process::Process::new(pid as i32)
        .and_then(|p| p.stat())
        .expect("read /proc/<pid>/stat");
    let ticks = stat.utime + stat.stime;
    Duration::from_secs_f64(ticks as f64 / procfs::ticks_per_second() as f64)
}

/// (VmRSS, VmHWM) in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = procfs::process::Process::new(pid as i32)
        .and_then(|p| p.status())
        .expect("read /proc/<pid>/status");
    (status.vmrss.unwrap_or(0), status.vmhwm.unwrap_or(0))
}
