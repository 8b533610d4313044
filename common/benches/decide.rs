//! Decide-time benchmark: heat scoring plus planning for one policy cycle.
//!
//! `cargo bench -p couchestor-common --bench decide` prints, for 1,000 / 10,000 / 100,000
//! volumes with 60 samples each (1 h window at 1-minute resolution), the median time of
//! computing every volume's decayed heat and of `plan()`, over repeated runs on one core.

use std::hint::black_box;
use std::time::{Duration, Instant};

use couchestor_common::Tier;
use couchestor_common::heat::{Sample, decayed_iops, sustained_iops};
use couchestor_common::plan::{Boundary, Input, Limits, TierCapacity, Volume, plan};

const GIB: u64 = 1 << 30;

/// Deterministic pseudo-random numbers (SplitMix64) so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let now = 1_800_000_000i64;
    println!("| volumes | heat scoring (median) | plan() (median) | total | moves planned |");
    println!("|---:|---:|---:|---:|---:|");
    // `cargo bench` passes --bench; under `cargo test --all-targets` this is a quick smoke run.
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if full {
        &[1_000, 10_000, 100_000]
    } else {
        &[1_000]
    };
    for &n in sizes {
        let mut rng = Rng(42);
        let series: Vec<Vec<Sample>> = (0..n)
            .map(|i| {
                let base = 10_000.0 / (i as f64 + 1.0).powf(0.9);
                (0..60)
                    .map(|k| Sample {
                        at: now - 3600 + k * 60,
                        iops: base * (0.8 + 0.4 * rng.next()),
                    })
                    .collect()
            })
            .collect();
        let mut volumes: Vec<Volume> = (0..n)
            .map(|i| Volume {
                name: format!("pvc-{i:08}"),
                size_bytes: (1 + (rng.next() * 200.0) as u64) * GIB,
                replicas: if i % 3 == 0 { 3 } else { 1 },
                heat: couchestor_common::heat::Heat::Unknown,
                sustained: None,
                tier: Some(if rng.next() < 0.2 {
                    Tier::Hot
                } else {
                    Tier::Cold
                }),
                last_move: (rng.next() < 0.1).then_some(now - 3600),
                pinned: None,
                migrating: false,
                nodes: Vec::new(),
                split: None,
                timed_out_after: None,
            })
            .collect();
        let total: u64 = volumes
            .iter()
            .map(|v| v.size_bytes * u64::from(v.replicas))
            .sum();
        let tiers = [
            TierCapacity {
                tier: Tier::Hot,
                capacity_bytes: total / 5,
                used_bytes: total / 6,
                pools: None,
            },
            TierCapacity {
                tier: Tier::Cold,
                capacity_bytes: total * 2,
                used_bytes: total,
                pools: None,
            },
        ];
        let boundaries = [Boundary::iops(100.0, 10.0)];
        let runs = if !full {
            1
        } else if n >= 100_000 {
            5
        } else {
            21
        };
        let (mut heat_t, mut plan_t) = (Vec::new(), Vec::new());
        let mut moves = 0;
        for _ in 0..runs {
            let t = Instant::now();
            for (v, s) in volumes.iter_mut().zip(&series) {
                v.heat = decayed_iops(black_box(s), now, 3600, 900);
                v.sustained = sustained_iops(s, now, 3600);
            }
            heat_t.push(t.elapsed());
            let t = Instant::now();
            let p = plan(black_box(&Input {
                volumes: &volumes,
                tiers: &tiers,
                boundaries: &boundaries,
                limits: Limits {
                    enabled: true,
                    cooldown_secs: 86_400,
                    max_concurrent: 2,
                    active_migrations: 0,
                    headroom_percent: 10,
                    migration_timeout_secs: 1800,
                    window_open: true,
                },
                now,
            }));
            plan_t.push(t.elapsed());
            moves = p.moves.len();
        }
        let (h, p) = (median(heat_t), median(plan_t));
        println!("| {n} | {h:.2?} | {p:.2?} | {:.2?} | {moves} |", h + p);
    }
}
