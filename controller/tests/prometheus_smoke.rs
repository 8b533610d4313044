//! Proof that the test Prometheus is real: backfilled Mayastor-shaped series answer PromQL
//! with the rates that were written.

use couchestor_testsupport::{OpenMetrics, prometheus};

#[tokio::test]
async fn backfilled_series_answer_rate_queries() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // Three volumes at 10, 250 and 4000 read IOPS, 3 h of 30 s samples ending a minute ago,
    // written as Mayastor does: suffix-less gauges holding cumulative counts.
    let rates = [("pvc-cold", 10.0), ("pvc-warm", 250.0), ("pvc-hot", 4000.0)];
    let mut om = OpenMetrics::new();
    let start = now - 3 * 3600;
    for (pv, iops) in rates {
        for i in 0..=(3 * 120 - 2) {
            let t = start + i * 30;
            om.gauge(
                "volume_num_read_ops",
                &[("node", "node-1"), ("pv_name", pv)],
                iops * (i * 30) as f64,
                t,
            );
        }
    }
    let Some(p) = prometheus(&om).await else {
        return;
    };

    let http = reqwest::Client::new();
    let body: serde_json::Value = http
        .get(format!("{}/api/v1/query", p.url()))
        .query(&[
            ("query", "sum by (pv_name) (rate(volume_num_read_ops[5m]))"),
            ("time", &(now - 120).to_string()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "success", "{body}");
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 3, "{body}");
    for (pv, iops) in rates {
        let series = result
            .iter()
            .find(|r| r["metric"]["pv_name"] == pv)
            .unwrap_or_else(|| panic!("no series for {pv}: {body}"));
        let got: f64 = series["value"][1].as_str().unwrap().parse().unwrap();
        assert!(
            (got - iops).abs() < 1e-6 * iops.max(1.0),
            "{pv}: rate {got}, wrote {iops}"
        );
    }
}
