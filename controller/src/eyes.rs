//! Eyes: volume heat from Prometheus.
//!
//! One range query per sampling window per cycle returns the IOPS series of every volume at
//! once; policies sharing a window share the answer through a short TTL cache. A volume without
//! a series gets [`Heat::Unknown`]; a failed query makes every volume unknown. Nothing here
//! ever turns missing data into "cold". An answer is parsed as it arrives
//! ([`matrix::parse_reader`]), and a long window is queried at a coarser step
//! ([`MAX_POINTS`]), so neither the body nor the series outgrow a 6 h window's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use couchestor_common::heat::{Heat, Sample, decayed_iops};
use couchestor_common::history::HeatHistory;
use couchestor_common::matrix::{self, AnswerError};
use couchestor_common::storagepolicy::MAX_SUSTAINED_WINDOW_SECS;
use futures::TryStreamExt;
use prometheus_http_query::Client;
use tokio_util::io::{StreamReader, SyncIoBridge};

pub use couchestor_common::heat::DEFAULT_HEAT_QUERY;
pub use couchestor_common::matrix::Series;

/// A failed heat query. Every volume's heat is unknown until the next success.
#[derive(Debug, thiserror::Error)]
pub enum EyesError {
    /// The query did not complete (connection refused, client timeout, body cut short).
    #[error("Prometheus query failed: {0}")]
    Query(String),
    /// Prometheus answered, but not with a range vector: a PromQL or server error, a result
    /// of another kind, or a body that is not a Prometheus answer.
    #[error("Prometheus query failed: {0}")]
    Answer(AnswerError),
    /// A non-2xx HTTP answer whose body is not a Prometheus answer either (e.g. a proxy's
    /// error page); the start of the body is kept.
    #[error("Prometheus query failed: HTTP {status}: {body}")]
    Http {
        /// The HTTP status line's code and reason.
        status: String,
        /// At most the first 200 characters of the body.
        body: String,
    },
}

impl From<AnswerError> for EyesError {
    fn from(e: AnswerError) -> Self {
        match e {
            AnswerError::Read(m) => read_failed(m),
            e => EyesError::Answer(e),
        }
    }
}

/// The answer stopped arriving (or its parser thread failed): the query did not complete.
fn read_failed(e: impl std::fmt::Display) -> EyesError {
    EyesError::Query(format!("reading the answer: {e}"))
}

/// Settings of the heat source.
#[derive(Clone, Debug)]
pub struct EyesConfig {
    /// Prometheus base URL.
    pub url: String,
    /// PromQL returning one IOPS series per `pv_name`.
    pub query: String,
    /// Range-query resolution.
    pub step: Duration,
    /// Per-query timeout (client and server side).
    pub timeout: Duration,
    /// How long an answer is reused.
    pub cache_ttl: Duration,
}

type CacheEntry = (Instant, Arc<Series>);

/// The heat source.
pub struct Eyes {
    client: Client,
    config: EyesConfig,
    cache: Mutex<HashMap<u64, CacheEntry>>,
    requests: std::sync::atomic::AtomicU64,
    /// Microseconds spent in answered queries, request to parsed answer.
    query_micros: std::sync::atomic::AtomicU64,
    /// Series in the last answer.
    last_series: std::sync::atomic::AtomicU64,
    /// Hourly means of every answer seen, for the sustained window.
    history: Mutex<HeatHistory>,
    /// Sustained windows (seconds) already backfilled or attempted.
    backfilled: Mutex<std::collections::HashSet<u64>>,
}

/// Points per volume of the one-time sustained-window backfill query: 4 an hour over a day
/// (each a `rate()` sample, so the hourly means are estimated from a quarter-hourly sample),
/// about three regular answers' worth of points, well inside the query timeout at 10,000
/// volumes.
pub const BACKFILL_POINTS: u64 = 96;

/// Most points per volume in a regular answer: a sampling window longer than this many steps
/// (6 h at the default 60 s) is queried at a coarser step instead, so that the answer, and
/// the controller's memory, stay the size of a 6 h window's (samplingWindow may be up to
/// 168 h: 10,080 points per volume at 60 s, near Prometheus's own limit of 11,000).
pub const MAX_POINTS: u64 = 360;

/// The step of a range query over `window` with at most about `points` points per volume,
/// never finer than `floor` (the configured resolution).
pub fn step_for(window: Duration, points: u64, floor: Duration) -> Duration {
    Duration::from_secs(window.as_secs().div_ceil(points.max(1)).max(1)).max(floor)
}

impl Eyes {
    /// A heat source for `config`.
    pub fn new(config: EyesConfig) -> Result<Self, EyesError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| EyesError::Query(e.to_string()))?;
        let client =
            Client::from(http, &config.url).map_err(|e| EyesError::Query(e.to_string()))?;
        Ok(Self {
            client,
            config,
            cache: Mutex::new(HashMap::new()),
            requests: 0.into(),
            query_micros: 0.into(),
            last_series: 0.into(),
            history: Mutex::new(HeatHistory::new()),
            backfilled: Mutex::new(Default::default()),
        })
    }

    /// Number of HTTP requests sent to Prometheus so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Seconds spent in answered queries so far (request sent to answer parsed).
    pub fn query_seconds(&self) -> f64 {
        self.query_micros.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6
    }

    /// How old a volume's newest point in an answer over `window` may be before its series
    /// counts as stopped: two query steps (a `rate()` keeps answering for its 5 minute range
    /// after the last scrape, so a gap this long means the exporter stopped well before) plus
    /// the cache TTL the answer may have aged.
    pub fn stale_after(&self, window: Duration) -> Duration {
        2 * step_for(window, MAX_POINTS, self.config.step) + self.config.cache_ttl
    }

    /// Number of series (volumes) in the last answer.
    pub fn last_series(&self) -> u64 {
        self.last_series.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// All volumes' IOPS samples over `window` ending at `now` (Unix seconds): one range query,
    /// or the cached answer if it is younger than the TTL. Every fresh answer also feeds the
    /// sustained-window history.
    pub async fn series(&self, window: Duration, now: i64) -> Result<Arc<Series>, EyesError> {
        let key = window.as_secs();
        if let Some((at, s)) = self.cache.lock().expect("cache lock").get(&key)
            && at.elapsed() < self.config.cache_ttl
        {
            return Ok(s.clone());
        }
        let step = step_for(window, MAX_POINTS, self.config.step);
        let series = Arc::new(self.fetch(window, now, step).await?);
        self.cache
            .lock()
            .expect("cache lock")
            .insert(key, (Instant::now(), series.clone()));
        Ok(series)
    }

    /// Fills the sustained-window history once per distinct `window`, with one range query
    /// over it at a coarse step (about [`BACKFILL_POINTS`] points per volume), so that a
    /// freshly started controller (or a one-shot `explain`) does not judge promotions on an
    /// hour of history. Runs at most once per window, whatever the outcome: a failure is
    /// returned for the caller to log, and the history then fills cycle by cycle.
    pub async fn backfill_once(&self, window: Duration, now: i64) -> Result<bool, EyesError> {
        if !self
            .backfilled
            .lock()
            .expect("backfill lock")
            .insert(window.as_secs())
        {
            return Ok(false);
        }
        let step = step_for(window, BACKFILL_POINTS, self.config.step);
        self.fetch(window, now, step).await?;
        Ok(true)
    }

    /// One range query: every volume's samples over `window` ending at `now`, at `step`,
    /// recorded in the history.
    async fn fetch(&self, window: Duration, now: i64, step: Duration) -> Result<Series, EyesError> {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        let response = self
            .client
            .query_range(
                &self.config.query,
                now - window.as_secs() as i64,
                now,
                step.as_secs_f64(),
            )
            .timeout(self.config.timeout.as_millis() as i64)
            .get_raw()
            .await
            .map_err(|e| EyesError::Query(e.to_string()))?;
        let status = response.status();
        let series = if status.is_success() {
            // Parsed from the socket as it arrives (on a blocking thread, since the parser
            // reads synchronously), never holding the whole body (~90 MB at 100,000 volumes).
            let body = StreamReader::new(response.bytes_stream().map_err(std::io::Error::other));
            let body = SyncIoBridge::new(body);
            tokio::task::spawn_blocking(move || matrix::parse_reader(body))
                .await
                .map_err(read_failed)??
        } else {
            let body = response.bytes().await.map_err(read_failed)?;
            match matrix::parse(&body) {
                Err(AnswerError::Malformed(_)) => {
                    return Err(EyesError::Http {
                        status: status.to_string(),
                        body: String::from_utf8_lossy(&body).chars().take(200).collect(),
                    });
                }
                answer => answer?,
            }
        };
        {
            let mut history = self.history.lock().expect("history lock");
            for (pv, samples) in &series {
                history.ingest(pv, samples);
            }
            // Keep the longest sustained window a policy may ask for, plus the bucket in
            // progress.
            history.prune(now, MAX_SUSTAINED_WINDOW_SECS + 3600);
        }
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let ordering = std::sync::atomic::Ordering::Relaxed;
        self.query_micros.fetch_add(took, ordering);
        self.last_series.store(series.len() as u64, ordering);
        Ok(series)
    }
}

impl Eyes {
    /// Mean IOPS of `pv` over the last `window` of every answer received so far (hourly
    /// buckets; shorter than `window` while the history fills after a start), if any.
    pub fn sustained_mean(&self, pv: &str, now: i64, window: Duration) -> Option<f64> {
        self.history
            .lock()
            .expect("history lock")
            .mean(pv, now, window.as_secs())
    }
}

#[cfg(test)]
impl Eyes {
    /// A heat source on `url` with the `run` command's defaults (the default expression, a
    /// 60 s step, 30 s timeout and cache), for tests against a real Prometheus.
    pub fn for_tests(url: &str) -> Eyes {
        crate::cli::install_crypto_provider();
        Eyes::new(EyesConfig {
            url: url.into(),
            query: couchestor_common::heat::DEFAULT_HEAT_QUERY.into(),
            step: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
            cache_ttl: Duration::from_secs(30),
        })
        .unwrap()
    }
}

/// The samples of one PV from a query answer, unless its series has stopped: a newest sample
/// more than `stale_after` before `now` means the exporter (or the node) went away, and the
/// heat of its last active minutes is not the volume's heat now. Unknown, never cold.
fn current<'a>(
    series: &'a Series,
    pv: &str,
    now: i64,
    stale_after: Duration,
) -> Option<&'a [Sample]> {
    let samples = series.get(pv)?;
    let newest = samples.iter().map(|s| s.at).max()?;
    (newest >= now - stale_after.as_secs() as i64).then_some(samples.as_slice())
}

/// Burst-resistant (median) heat of one PV from a query answer, if it has current samples.
pub fn sustained_of(
    series: &Series,
    pv: &str,
    now: i64,
    window: Duration,
    stale_after: Duration,
) -> Option<f64> {
    current(series, pv, now, stale_after)
        .and_then(|s| couchestor_common::heat::sustained_iops(s, now, window.as_secs()))
}

/// Heat of one PV from a query answer; `Unknown` when the PV has no series or its series has
/// stopped (newest sample more than `stale_after` old).
pub fn heat_of(
    series: &Series,
    pv: &str,
    now: i64,
    window: Duration,
    half_life: Duration,
    stale_after: Duration,
) -> Heat {
    current(series, pv, now, stale_after).map_or(Heat::Unknown, |s| {
        decayed_iops(s, now, window.as_secs(), half_life.as_secs())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use couchestor_testsupport::{OpenMetrics, prometheus};

    fn now() -> i64 {
        k8s_openapi::jiff::Timestamp::now().as_second()
    }

    /// `(pv, read IOPS, write IOPS)` written as Mayastor does, 2 h of 30 s samples up to `end`.
    /// A negative write rate means the volume exports no write counter at all.
    fn series(volumes: &[(&str, f64, f64)], end: i64) -> OpenMetrics {
        let mut om = OpenMetrics::new();
        for (pv, r, w) in volumes {
            for i in 0..240 {
                let t = end - 2 * 3600 + i * 30;
                let elapsed = (i * 30) as f64;
                om.gauge(
                    "volume_num_read_ops",
                    &[("node", "n1"), ("pv_name", pv)],
                    r * elapsed,
                    t,
                );
                if *w >= 0.0 {
                    om.gauge(
                        "volume_num_write_ops",
                        &[("node", "n1"), ("pv_name", pv)],
                        w * elapsed,
                        t,
                    );
                }
            }
        }
        om
    }

    fn eyes(url: &str) -> Eyes {
        Eyes::for_tests(url)
    }

    #[tokio::test]
    async fn one_range_query_yields_every_volumes_heat() {
        let end = now() - 60;
        let vols = [
            ("pvc-hot", 3000.0, 1000.0),
            ("pvc-cold", 2.0, 0.0),
            ("pvc-idle", 0.0, 0.0),
            ("pvc-reads-only", 40.0, -1.0),
        ];
        let mut om = series(&vols, end);
        // io-engine restarted 20 minutes before the end: its counters start again from zero.
        let restart = end - 1200;
        for i in 0..240 {
            let t = end - 2 * 3600 + i * 30;
            let since = if t <= restart {
                t - (end - 2 * 3600)
            } else {
                t - restart
            };
            for (name, rate) in [
                ("volume_num_read_ops", 300.0),
                ("volume_num_write_ops", 100.0),
            ] {
                let labels = [("node", "n2"), ("pv_name", "pvc-restarted")];
                om.gauge(name, &labels, rate * since as f64, t);
            }
        }
        let Some(p) = prometheus(&om).await else {
            return;
        };
        let e = eyes(p.url());
        let window = Duration::from_secs(3600);
        let s = e.series(window, end).await.unwrap();
        assert_eq!(e.requests(), 1);
        let hl = Duration::from_secs(900);
        let restarted = heat_of(&s, "pvc-restarted", end, window, hl, e.stale_after(window)).iops();
        assert!(
            restarted.is_some_and(|h| (h - 400.0).abs() < 1e-6 * 400.0),
            "a counter reset must not change the rate: {restarted:?}"
        );
        for (pv, r, w) in vols {
            let want = r + w.max(0.0);
            let h = heat_of(&s, pv, end, window, hl, e.stale_after(window))
                .iops()
                .unwrap_or_else(|| panic!("{pv} unknown"));
            assert!(
                (h - want).abs() < 1e-6 * want.max(1.0),
                "{pv}: heat {h}, wrote {want}"
            );
        }
        // A volume Prometheus has never heard of is unknown, not cold.
        assert_eq!(
            heat_of(
                &s,
                "pvc-not-exported",
                end,
                window,
                hl,
                e.stale_after(window)
            ),
            Heat::Unknown
        );
        // Within the TTL the answer is reused: still one request.
        e.series(window, end).await.unwrap();
        assert_eq!(e.requests(), 1);
    }

    #[tokio::test]
    async fn a_stopped_prometheus_is_an_error_not_an_empty_answer() {
        let end = now() - 60;
        let Some(mut p) = prometheus(&series(&[("pvc-a", 10.0, 10.0)], end)).await else {
            return;
        };
        let e = eyes(p.url());
        assert!(e.series(Duration::from_secs(3600), end).await.is_ok());
        p.stop();
        // A different window bypasses the cache and must reach the (dead) server.
        let err = e.series(Duration::from_secs(1800), end).await.unwrap_err();
        assert!(matches!(err, EyesError::Query(_)), "{err}");
    }

    #[tokio::test]
    async fn a_bad_expression_names_prometheus_own_error() {
        let end = now() - 60;
        let Some(p) = prometheus(&series(&[("pvc-a", 10.0, 10.0)], end)).await else {
            return;
        };
        let with_query = |query: &str| {
            let mut e = eyes(p.url());
            e.config.query = query.into();
            e
        };
        let window = Duration::from_secs(1800);
        let err = with_query("sum by (pv_name) (rate(volume_num_read_ops[5m])")
            .series(window, end)
            .await
            .unwrap_err();
        let EyesError::Answer(AnswerError::Prometheus { kind, message }) = &err else {
            panic!("want Prometheus's own error, got {err:?}");
        };
        assert_eq!(kind, "bad_data", "{err}");
        assert!(message.contains("parse error"), "{err}");
        // An expression without `pv_name` (here `vector(1)`) answers with one unlabelled
        // series: no volume gets a heat (each is unknown, never cold), which is not an error.
        let s = with_query("vector(1)").series(window, end).await.unwrap();
        assert!(s.is_empty(), "{s:?}");
    }

    /// A server on loopback that answers every request with `answer` (raw HTTP) and closes.
    async fn answering(answer: String) -> String {
        serving(answer, false).await
    }

    /// A server on loopback that answers every request with `answer` (raw HTTP), then closes
    /// the connection, or with `stall`, keeps it open without sending more.
    async fn serving(answer: String, stall: bool) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            // Stalled connections stay open as long as this task runs (the test's runtime).
            let mut stalled = Vec::new();
            while let Ok((mut conn, _)) = listener.accept().await {
                // Read the request's head (a GET has no body), then answer.
                let (mut head, mut buf) = (Vec::new(), [0u8; 1024]);
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = conn.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                conn.write_all(answer.as_bytes()).await.unwrap();
                if stall {
                    stalled.push(conn);
                }
            }
        });
        url
    }

    /// The answer is parsed as it arrives, not once the whole body is in: a bad value at its
    /// start is refused, named, while the rest of a 1 GB body has not been sent (the server
    /// stalls). Holding the body whole first would wait for it until the 30 s timeout and
    /// fail as a timeout. (serde_json looks at the byte after a bad value before it returns
    /// the error, hence the next point.)
    #[tokio::test]
    async fn an_answer_is_parsed_as_it_arrives() {
        let start = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"pv_name":"pv-a"},"values":[[1,"five"],[2,"6"]"#;
        let url = serving(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{start}",
                1u64 << 30
            ),
            true,
        )
        .await;
        let err = eyes(&url)
            .series(Duration::from_secs(1800), now())
            .await
            .unwrap_err();
        let EyesError::Answer(AnswerError::Malformed(m)) = &err else {
            panic!("want the bad value refused as it arrived, got {err:?}");
        };
        assert!(m.contains("five"), "{err}");
    }

    /// PROMETHEUS_URL pointing at something else (here a proxy that answers every request
    /// with its own error page): the error carries the HTTP status and the page's start.
    #[tokio::test]
    async fn a_non_prometheus_answer_names_the_http_status_and_body() {
        let page =
            "<html><body>502 Bad Gateway: upstream prometheus-server unreachable</body></html>";
        let url = answering(format!(
            "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
            page.len()
        ))
        .await;
        let err = eyes(&url)
            .series(Duration::from_secs(1800), now())
            .await
            .unwrap_err();
        let EyesError::Http { status, body } = &err else {
            panic!("want the HTTP error, got {err:?}");
        };
        assert_eq!(status, "502 Bad Gateway");
        assert!(
            body.contains("upstream prometheus-server unreachable"),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("Prometheus query failed: HTTP 502"),
            "{err}"
        );
    }

    /// An answer that stops part-way (the connection closes after a third of the announced
    /// body) is a failed query, named as one, not a bad answer and not an empty result.
    #[tokio::test]
    async fn an_answer_cut_short_is_a_failed_query() {
        let start = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"pv_name":"pv-a"},"values":[[1,"5"]"#;
        let url = answering(format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{start}",
            start.len() * 3
        ))
        .await;
        let err = eyes(&url)
            .series(Duration::from_secs(1800), now())
            .await
            .unwrap_err();
        let EyesError::Query(m) = &err else {
            panic!("want a failed query, got {err:?}");
        };
        assert!(m.starts_with("reading the answer: "), "{err}");
    }

    #[test]
    fn a_series_that_stopped_has_unknown_heat_not_its_last_minutes() {
        let (now, hour, half) = (100_000, Duration::from_secs(3600), Duration::from_secs(900));
        let stale = Duration::from_secs(2 * 60 + 30);
        // Cold for ten minutes, then nothing for the last 50: the exporter went away.
        let points = |until: i64| -> Vec<Sample> {
            (0..)
                .map(|i| now - 3600 + i * 60)
                .take_while(|&at| at <= until)
                .map(|at| Sample { at, iops: 1.0 })
                .collect()
        };
        let series: Series = [
            ("pv-stopped".to_string(), points(now - 3000)),
            ("pv-current".to_string(), points(now)),
            // Its newest point 2 min old, inside the 2.5 min limit: still current.
            ("pv-late".to_string(), points(now - 120)),
        ]
        .into();
        assert_eq!(
            heat_of(&series, "pv-stopped", now, hour, half, stale),
            Heat::Unknown
        );
        assert_eq!(sustained_of(&series, "pv-stopped", now, hour, stale), None);
        for pv in ["pv-current", "pv-late"] {
            assert_eq!(
                heat_of(&series, pv, now, hour, half, stale),
                Heat::Known(1.0)
            );
            assert_eq!(sustained_of(&series, pv, now, hour, stale), Some(1.0));
        }
        // Two steps plus the TTL: 2 x 60 s + 30 s for the test settings, and the coarser
        // step of a long window.
        let eyes = Eyes::for_tests("http://127.0.0.1:9");
        assert_eq!(eyes.stale_after(hour), stale);
        let coarse = step_for(24 * hour, MAX_POINTS, Duration::from_secs(60));
        assert!(coarse > Duration::from_secs(60));
        assert_eq!(
            eyes.stale_after(24 * hour),
            2 * coarse + Duration::from_secs(30)
        );
    }

    #[test]
    fn long_windows_are_queried_at_a_coarser_step() {
        let minute = Duration::from_secs(60);
        let hours = |h: u64| Duration::from_secs(h * 3600);
        // Up to 6 h the configured step stands; beyond, at most MAX_POINTS points.
        assert_eq!(step_for(hours(1), MAX_POINTS, minute), minute);
        assert_eq!(step_for(hours(6), MAX_POINTS, minute), minute);
        assert_eq!(
            step_for(hours(24), MAX_POINTS, minute),
            Duration::from_secs(240)
        );
        assert_eq!(
            step_for(hours(168), MAX_POINTS, minute),
            Duration::from_secs(1680)
        );
        // Never finer than configured, and a window that does not divide evenly rounds up.
        assert_eq!(step_for(hours(24), MAX_POINTS, hours(1)), hours(1));
        assert_eq!(
            step_for(Duration::from_secs(3601), 60, Duration::ZERO),
            Duration::from_secs(61)
        );
        // The backfill: a day at 96 points is every 15 minutes.
        assert_eq!(
            step_for(hours(24), BACKFILL_POINTS, minute),
            Duration::from_secs(900)
        );
    }
}
