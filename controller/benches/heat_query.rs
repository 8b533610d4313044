//! The heat expression's cost in a real Prometheus:
//! `cargo bench -p couchestor-controller --bench heat_query`.
//!
//! Backfills a real Prometheus with `volume_num_read_ops` and `volume_num_write_ops` for N
//! volumes (40 minutes at 1-minute samples, as Mayastor's exporter is scraped), then times the
//! range query a policy sends each cycle (30 minutes at a 60 s step) for the default
//! expression, the `(read + write) or read or write` form it replaced, and a read-only
//! expression as the floor, interleaved over 5 rounds (request to parsed JSON, median).
//! Every expression must give every volume the same values (a few volumes export reads only),
//! or the bench fails.
//!
//! Answers are parsed by the controller's own reader (`couchestor_common::matrix`).
//! Then, for the default expression, the peak heap of fetching and parsing one answer (counted
//! by a peak-tracking global allocator, above what was live before) with three readers:
//! prometheus-http-query's response types (the controller's reader until 2026-12-01),
//! `matrix::parse` on the whole body (until 2026-12-02), and `matrix::parse_reader` on the
//! body as it arrives (the controller's reader now, wired as `eyes::fetch` wires it), with the
//! time each took; the readers must give every volume the same points, or the bench fails.
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it checks both agreements on 200
//! volumes. `COUCHESTOR_HEAT_QUERY_VOLUMES=100000` picks N (default 50,000).

use std::collections::BTreeMap;
use std::time::Instant;

use couchestor_common::heat::{DEFAULT_HEAT_QUERY, Sample};
use couchestor_common::matrix::{self, Series};
use couchestor_testsupport::{OpenMetrics, prometheus};
use futures::TryStreamExt;
use peak_alloc::PeakAlloc;
use tokio_util::io::{StreamReader, SyncIoBridge};

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

/// The default expression until 2026-12-01: `rate()` evaluated four times, joined by `+` and
/// two `or`s.
const PREVIOUS: &str = "(sum by (pv_name) (rate(volume_num_read_ops[5m])) \
     + sum by (pv_name) (rate(volume_num_write_ops[5m]))) \
     or sum by (pv_name) (rate(volume_num_read_ops[5m])) \
     or sum by (pv_name) (rate(volume_num_write_ops[5m]))";
/// Reads only: one `rate()`, no join (a floor, not a heat expression for both counters).
const READS_ONLY: &str = "sum by (pv_name) (rate(volume_num_read_ops[5m]))";

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let volumes: u32 = match std::env::var("COUCHESTOR_HEAT_QUERY_VOLUMES") {
        Ok(n) => n
            .parse()
            .expect("COUCHESTOR_HEAT_QUERY_VOLUMES: a number of volumes"),
        Err(_) if full => 50_000,
        Err(_) => 200,
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(volumes, if full { 5 } else { 1 }));
}

/// Every 50th volume exports reads only.
fn reads_only(i: u32) -> bool {
    i % 50 == 7
}

async fn run(volumes: u32, rounds: usize) {
    let end = now() - 30;
    let mut om = OpenMetrics::new();
    for i in 0..volumes {
        let pv = format!("pvc-{i:06}");
        let labels = [("node", "node-0"), ("pv_name", pv.as_str())];
        let (read, write) = (f64::from(i % 97 + 1), f64::from(i % 13));
        for s in 0..40 {
            let t = end - 2400 + s * 60;
            let elapsed = (s * 60) as f64;
            om.gauge("volume_num_read_ops", &labels, read * elapsed, t);
            if !reads_only(i) {
                om.gauge("volume_num_write_ops", &labels, write * elapsed, t);
            }
        }
    }
    let loading = Instant::now();
    let Some(prom) = prometheus(&om).await else {
        return;
    };
    drop(om);
    println!(
        "heat query: {volumes} volumes ({} series) backfilled in {:.0} s",
        2 * volumes - (0..volumes).filter(|&i| reads_only(i)).count() as u32,
        loading.elapsed().as_secs_f64()
    );
    let http = reqwest::Client::new();
    let exprs = [
        ("default", DEFAULT_HEAT_QUERY),
        ("previous", PREVIOUS),
        ("reads-only floor", READS_ONLY),
    ];
    let mut times: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut answers: BTreeMap<&str, Series> = BTreeMap::new();
    for _ in 0..rounds {
        for (name, expr) in exprs {
            let started = Instant::now();
            let answer = query(&http, prom.url(), expr, end).await;
            times
                .entry(name)
                .or_default()
                .push(started.elapsed().as_secs_f64());
            answers.insert(name, answer);
        }
    }
    let default = &answers["default"];
    assert_eq!(default.len(), volumes as usize, "one series per volume");
    for (pv, points) in &answers["previous"] {
        agree(pv, &default[pv], points);
    }
    for (pv, points) in &answers["reads-only floor"] {
        let i: u32 = pv[4..].parse().expect("pvc-NNNNNN");
        if reads_only(i) {
            agree(pv, &default[pv], points);
        }
    }
    let median = |name: &str| {
        let mut t = times[name].clone();
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    for (name, _) in exprs {
        println!(
            "  {name:17} median {:6.2} s over {rounds} rounds ({:.2}× the previous)",
            median(name),
            median(name) / median("previous")
        );
    }
    drop(answers);
    let crate_types = peak_heap(|| async {
        let client = prometheus_http_query::Client::from(http.clone(), prom.url())
            .expect("a Prometheus client");
        let answer = client
            .query_range(DEFAULT_HEAT_QUERY, end - 1800, end, 60.0)
            .get()
            .await
            .expect("Prometheus answers");
        let prometheus_http_query::response::Data::Matrix(vectors) = answer.data() else {
            panic!("not a matrix");
        };
        // What Eyes built from it: the series, while the answer was still held.
        let series: Series = vectors
            .iter()
            .filter_map(|v| {
                let pv = v.metric().get(matrix::PV_LABEL)?;
                let points = v.samples().iter().map(|s| Sample {
                    at: s.timestamp() as i64,
                    iops: s.value(),
                });
                Some((pv.clone(), points.collect()))
            })
            .collect();
        series
    })
    .await;
    let started = Instant::now();
    let whole = peak_heap(|| async {
        let body = request(&http, prom.url(), DEFAULT_HEAT_QUERY, end)
            .await
            .bytes()
            .await
            .expect("a body");
        matrix::parse(&body).expect("a matrix")
    })
    .await;
    let whole_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let streamed = peak_heap(|| query(&http, prom.url(), DEFAULT_HEAT_QUERY, end)).await;
    let streamed_secs = started.elapsed().as_secs_f64();
    // The three readers give every volume the same points.
    for other in [&whole.1, &streamed.1] {
        assert_eq!(crate_types.1.len(), other.len(), "one series per volume");
        for (pv, points) in &crate_types.1 {
            agree(pv, &other[pv], points);
        }
    }
    let (crate_heap, whole_heap, streamed_heap) = (crate_types.0, whole.0, streamed.0);
    let volumes_parsed = streamed.1.len();
    drop((crate_types, whole, streamed));
    // The parsers alone on one body in memory (3 alternating rounds, the fastest of each):
    // what reading from a stream costs in CPU against reading from a slice.
    let body = request(&http, prom.url(), DEFAULT_HEAT_QUERY, end)
        .await
        .bytes()
        .await
        .expect("a body");
    let (mut slice_secs, mut reader_secs) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        let t = Instant::now();
        let a = matrix::parse(&body).expect("a matrix");
        slice_secs = slice_secs.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let b = matrix::parse_reader(&body[..]).expect("a matrix");
        reader_secs = reader_secs.min(t.elapsed().as_secs_f64());
        assert_eq!(a.len(), b.len(), "one series per volume");
    }
    println!(
        "  parsing one {:.0} MB body: from the slice {slice_secs:.2} s, from a reader {reader_secs:.2} s ({:.2}×)",
        body.len() as f64 / 1e6,
        reader_secs / slice_secs
    );
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    println!(
        "  peak heap fetching and parsing one default answer ({volumes_parsed} series): prometheus-http-query types {:.0} MiB, matrix::parse on the body {:.0} MiB ({:.2}×, {whole_secs:.2} s), matrix::parse_reader as it arrives {:.0} MiB ({:.2}×, {streamed_secs:.2} s; {:.2}× the body's heap)",
        mib(crate_heap),
        mib(whole_heap),
        whole_heap as f64 / crate_heap as f64,
        mib(streamed_heap),
        streamed_heap as f64 / crate_heap as f64,
        streamed_heap as f64 / whole_heap as f64,
    );
}

/// Peak heap above what was live before, while `f` runs, and its result.
async fn peak_heap<T, F: Future<Output = T>>(f: impl FnOnce() -> F) -> (usize, T) {
    let before = HEAP.current_usage();
    HEAP.reset_peak_usage();
    let out = f().await;
    (HEAP.peak_usage().saturating_sub(before), out)
}

/// The same points, values equal to 1e-9 relative.
fn agree(pv: &str, a: &[Sample], b: &[Sample]) {
    assert_eq!(a.len(), b.len(), "{pv}: {a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!(
            x.at == y.at && (x.iops - y.iops).abs() <= 1e-9 * x.iops.abs().max(1.0),
            "{pv}: {a:?} vs {b:?}"
        );
    }
}

/// One range query over the 30 minutes before `end`, at a 60 s step, sent.
async fn request(http: &reqwest::Client, url: &str, expr: &str, end: i64) -> reqwest::Response {
    http.get(format!("{url}/api/v1/query_range"))
        .query(&[
            ("query", expr.to_string()),
            ("start", (end - 1800).to_string()),
            ("end", end.to_string()),
            ("step", "60".to_string()),
        ])
        .send()
        .await
        .expect("Prometheus answers")
}

/// That query, read as `eyes::fetch` reads it: parsed as the body arrives.
async fn query(http: &reqwest::Client, url: &str, expr: &str, end: i64) -> Series {
    let response = request(http, url, expr, end).await;
    let body = SyncIoBridge::new(StreamReader::new(
        response.bytes_stream().map_err(std::io::Error::other),
    ));
    let expr = expr.to_string();
    tokio::task::spawn_blocking(move || {
        matrix::parse_reader(body).unwrap_or_else(|e| panic!("{expr}: {e}"))
    })
    .await
    .expect("the parser thread")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}
