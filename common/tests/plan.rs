//! The placement engine, fed data directly: no cluster, no clock, no I/O.

use couchestor_common::Tier::{Cold, Hot, Warm};
use couchestor_common::heat::Heat;
use couchestor_common::plan::*;

const GIB: u64 = 1 << 30;
const NOW: i64 = 1_800_000_000;

fn vol(name: &str, gib: u64, heat: Option<f64>, tier: couchestor_common::Tier) -> Volume {
    Volume {
        name: name.into(),
        size_bytes: gib * GIB,
        replicas: 1,
        heat: heat.map_or(Heat::Unknown, Heat::Known),
        sustained: None,
        tier: Some(tier),
        last_move: None,
        pinned: None,
        migrating: false,
        nodes: Vec::new(),
        split: None,
        timed_out_after: None,
    }
}

fn limits() -> Limits {
    Limits {
        enabled: true,
        cooldown_secs: 86_400,
        max_concurrent: 10,
        active_migrations: 0,
        headroom_percent: 10,
        migration_timeout_secs: 1800,
        window_open: true,
    }
}

fn two_tiers(hot_cap_gib: u64, hot_used_gib: u64) -> Vec<TierCapacity> {
    vec![
        TierCapacity {
            tier: Hot,
            capacity_bytes: hot_cap_gib * GIB,
            used_bytes: hot_used_gib * GIB,
            pools: None,
        },
        TierCapacity {
            tier: Cold,
            capacity_bytes: 100_000 * GIB,
            used_bytes: 0,
            pools: None,
        },
    ]
}

const WATERMARKS: [Boundary; 1] = [Boundary::iops(1000.0, 100.0)];

fn run(volumes: &[Volume], tiers: &[TierCapacity], limits: Limits) -> Plan {
    let p = plan(&Input {
        volumes,
        tiers,
        boundaries: &WATERMARKS,
        limits,
        now: NOW,
    });
    // Invariant: every volume appears exactly once.
    for v in volumes {
        let n = p.moves.iter().filter(|m| m.volume == v.name).count()
            + p.holds.iter().filter(|h| h.volume == v.name).count();
        assert_eq!(n, 1, "{} appears {n} times in {p:?}", v.name);
    }
    p
}

fn moved(p: &Plan) -> Vec<(&str, couchestor_common::Tier)> {
    p.moves.iter().map(|m| (m.volume.as_str(), m.to)).collect()
}

fn hold_of<'p>(p: &'p Plan, v: &str) -> &'p HoldReason {
    &p.decision(v).unwrap().expect_err("held").reason
}

#[test]
fn hysteresis_promotes_above_high_demotes_below_low_and_holds_between() {
    let vols = [
        vol("hot-on-cold", 10, Some(1500.0), Cold),
        vol("cold-on-hot", 10, Some(50.0), Hot),
        vol("band-on-hot", 10, Some(500.0), Hot),
        vol("band-on-cold", 10, Some(500.0), Cold),
        vol("exactly-high", 10, Some(1000.0), Cold),
        vol("exactly-low", 10, Some(100.0), Hot),
    ];
    let p = run(&vols, &two_tiers(1000, 30), limits());
    assert_eq!(moved(&p), vec![("hot-on-cold", Hot), ("cold-on-hot", Cold)]);
    for v in ["band-on-hot", "band-on-cold", "exactly-high", "exactly-low"] {
        assert!(matches!(hold_of(&p, v), HoldReason::InBand { .. }), "{v}");
    }
    assert!(
        matches!(p.moves[0].reason, MoveReason::Promote { threshold, density_threshold: None } if threshold == 1000.0)
    );
    assert!(
        matches!(p.moves[1].reason, MoveReason::Demote { threshold, gauge: Gauge::Iops } if threshold == 100.0)
    );
}

#[test]
fn a_burst_alone_does_not_promote() {
    let mut burst = vol("bursty", 10, Some(1500.0), Cold);
    burst.sustained = Some(300.0);
    let mut steady = vol("steady", 10, Some(1500.0), Cold);
    steady.sustained = Some(1400.0);
    let p = run(&[burst, steady], &two_tiers(1000, 0), limits());
    assert_eq!(moved(&p), vec![("steady", Hot)]);
    assert!(matches!(hold_of(&p, "bursty"), HoldReason::InBand { .. }));
}

#[test]
fn missing_metrics_never_demote() {
    let vols = [
        vol("no-metrics-on-hot", 10, None, Hot),
        vol("no-metrics-on-cold", 10, None, Cold),
    ];
    let p = run(&vols, &two_tiers(1000, 20), limits());
    assert!(p.moves.is_empty());
    assert_eq!(hold_of(&p, "no-metrics-on-hot"), &HoldReason::UnknownHeat);
    assert_eq!(hold_of(&p, "no-metrics-on-cold"), &HoldReason::UnknownHeat);
}

#[test]
fn unknown_tier_disabled_and_migrating_hold() {
    let mut split = vol("split", 10, Some(5000.0), Cold);
    split.tier = None;
    let mut busy = vol("busy", 10, Some(5000.0), Cold);
    busy.migrating = true;
    let p = run(
        &[split.clone(), busy.clone()],
        &two_tiers(1000, 0),
        limits(),
    );
    assert!(p.moves.is_empty());
    assert_eq!(hold_of(&p, "split"), &HoldReason::UnknownTier);
    assert_eq!(hold_of(&p, "busy"), &HoldReason::Migrating);

    let off = Limits {
        enabled: false,
        ..limits()
    };
    let p = run(&[vol("x", 1, Some(9e9), Cold)], &two_tiers(1000, 0), off);
    assert_eq!(hold_of(&p, "x"), &HoldReason::PolicyDisabled);
}

#[test]
fn cooldown_blocks_a_recently_moved_volume() {
    let mut v = vol("recent", 10, Some(5000.0), Cold);
    v.last_move = Some(NOW - 3600);
    let p = run(&[v.clone()], &two_tiers(1000, 0), limits());
    assert_eq!(
        hold_of(&p, "recent"),
        &HoldReason::Cooldown {
            remaining_secs: 86_400 - 3600
        }
    );
    v.last_move = Some(NOW - 86_400);
    let p = run(&[v], &two_tiers(1000, 0), limits());
    assert_eq!(moved(&p), vec![("recent", Hot)]);
}

#[test]
fn never_plans_into_a_full_tier_and_fills_densest_first() {
    // 100 GiB hot tier, 10% headroom, 60 used: 30 GiB free. Three hot candidates of 20 GiB;
    // only one fits, and it is the densest.
    let vols = [
        vol("a-dense", 20, Some(8000.0), Cold),
        vol("b-medium", 20, Some(4000.0), Cold),
        vol("c-light", 20, Some(2000.0), Cold),
    ];
    let p = run(&vols, &two_tiers(100, 60), limits());
    assert_eq!(moved(&p), vec![("a-dense", Hot)]);
    for v in ["b-medium", "c-light"] {
        match hold_of(&p, v) {
            HoldReason::NoCapacity {
                to: Hot,
                needed,
                free,
            } => {
                assert_eq!(*needed, 20 * GIB);
                assert_eq!(*free, 10 * GIB);
            }
            other => panic!("{v}: {other:?}"),
        }
    }
}

#[test]
fn a_move_needs_a_pool_with_room_not_just_room_in_the_tier() {
    use couchestor_common::room::PoolRoom;
    let room = |node: &str, gib: u64| PoolRoom {
        node: node.into(),
        free_bytes: gib * GIB,
    };
    // 1000 GiB hot tier, 90 GiB free below headroom in total, spread over three pools; the
    // volumes' replicas are on node c (its SATA pool).
    let mut tiers = two_tiers(1000, 810);
    tiers[0].pools = Some(vec![room("a", 30), room("b", 50), room("c", 100)]);
    let on_c = |name: &str, gib: u64, heat: f64| Volume {
        nodes: vec!["c".into()],
        ..vol(name, gib, Some(heat), Cold)
    };
    // 60 GiB fits the total, but only node c's pool has 60 GiB and c holds the replica.
    let big = on_c("big", 60, 9000.0);
    // 40 GiB fits on node b's pool.
    let small = on_c("small", 40, 5000.0);
    // Then b has 10 GiB left and a 30: another 40 GiB volume fits the total (50 GiB) only.
    let late = on_c("late", 40, 4000.0);
    let p = run(&[big, small, late], &tiers, limits());
    assert_eq!(moved(&p), vec![("small", Hot)]);
    assert_eq!(
        hold_of(&p, "big"),
        &HoldReason::NoPoolRoom {
            to: Hot,
            replica_bytes: 60 * GIB,
            replicas: 1,
            largest_free: 50 * GIB,
        }
    );
    assert!(
        matches!(hold_of(&p, "late"), HoldReason::NoPoolRoom { largest_free, .. } if *largest_free == 30 * GIB),
        "{:?}",
        hold_of(&p, "late")
    );
    assert!(
        hold_of(&p, "big")
            .to_string()
            .contains("no 1 pool(s) on distinct nodes")
    );
    // Without per-pool figures (pools: None) only the total counts: both fit it (the denser,
    // small, first).
    tiers[0].pools = None;
    let p = run(
        &[on_c("big", 60, 9000.0), on_c("small", 20, 5000.0)],
        &tiers,
        limits(),
    );
    assert_eq!(moved(&p), vec![("small", Hot), ("big", Hot)]);
}

#[test]
fn a_volume_split_by_an_interrupted_move_is_consolidated() {
    use couchestor_common::split::Split;
    // Three replicas, 20 GiB each; a demotion to Cold stopped after replacing one of them.
    let split = |name: &str, heat: Option<f64>| Volume {
        replicas: 3,
        tier: None,
        split: Split::after_abort(&[Some(Cold), Some(Hot), Some(Hot)], Cold),
        last_move: Some(NOW - 2 * 86_400),
        ..vol(name, 20, heat, Cold)
    };
    let in_band = split("in-band", Some(500.0));
    let hot_again = split("hot-again", Some(1500.0));
    let no_metrics = split("no-metrics", None);
    let recent = Volume {
        last_move: Some(NOW - 3600),
        ..split("recent", Some(50.0))
    };
    // Split, but not by CoucheStor: left alone.
    let foreign = Volume {
        tier: None,
        ..vol("foreign", 20, Some(50.0), Cold)
    };
    // 45 GiB free on Hot below headroom: the two replicas Cold still holds (40 GiB) fit, all
    // three (60 GiB) would not.
    let p = run(
        &[in_band, hot_again, no_metrics, recent, foreign],
        &two_tiers(100, 45),
        limits(),
    );
    let m = |v: &str| p.decision(v).unwrap().expect("moves").clone();
    // In band: the interrupted demotion is finished (two replicas still to place on Cold).
    assert_eq!((m("in-band").from, m("in-band").to), (Hot, Cold));
    assert_eq!(
        m("in-band").reason,
        MoveReason::Consolidate {
            interrupted_to: Cold
        }
    );
    // Hot again: consolidated on Hot instead, where one replica is missing.
    assert_eq!((m("hot-again").from, m("hot-again").to), (Cold, Hot));
    assert!(
        m("hot-again")
            .reason
            .to_string()
            .contains("interrupted move to cold")
    );
    assert_eq!(hold_of(&p, "no-metrics"), &HoldReason::UnknownHeat);
    assert!(matches!(hold_of(&p, "recent"), HoldReason::Cooldown { .. }));
    assert_eq!(hold_of(&p, "foreign"), &HoldReason::UnknownTier);

    // Only the missing replicas are booked: with 15 GiB free on Hot, one 20 GiB replica does
    // not fit, and the hold says 20 GiB (not 60).
    let p = run(
        &[split("hot-again", Some(1500.0))],
        &two_tiers(100, 75),
        limits(),
    );
    assert!(
        matches!(hold_of(&p, "hot-again"), HoldReason::NoCapacity { needed, .. } if *needed == 20 * GIB),
        "{:?}",
        hold_of(&p, "hot-again")
    );
}

#[test]
fn replicas_count_towards_the_footprint() {
    let mut v = vol("three-copies", 20, Some(5000.0), Cold);
    v.replicas = 3;
    // 50 GiB free below headroom: one copy would fit, three do not.
    let p = run(&[v], &two_tiers(100, 40), limits());
    assert!(
        matches!(hold_of(&p, "three-copies"), HoldReason::NoCapacity { needed, .. } if *needed == 60 * GIB)
    );
}

#[test]
fn a_full_fast_tier_evicts_a_much_less_dense_resident() {
    // Hot tier full (90 of 90 usable). A 10 GiB volume at 5000 IOPS wants in; residents:
    // a 10 GiB volume at 150 IOPS (in band, 15 IOPS/GiB), one at 900 (90 IOPS/GiB), and a
    // 20 GiB one at 900 (45 IOPS/GiB); the tier's other 50 GiB belong to other policies.
    let vols = [
        vol("newcomer", 10, Some(5000.0), Cold),
        vol("lukewarm", 10, Some(150.0), Hot),
        vol("warmish", 10, Some(900.0), Hot),
        vol("filler", 20, Some(900.0), Hot),
    ];
    let p = run(&vols, &two_tiers(100, 90), limits());
    // The least dense resident is demoted now; the newcomer waits for the room.
    assert_eq!(moved(&p), vec![("lukewarm", Cold)]);
    assert!(
        matches!(&p.moves[0].reason, MoveReason::Evicted { for_volume } if for_volume == "newcomer")
    );
    assert!(matches!(
        hold_of(&p, "newcomer"),
        HoldReason::NoCapacity { to: Hot, .. }
    ));

    // A resident that is itself above the promotion watermark is never evicted.
    let vols = [
        vol("newcomer", 10, Some(50_000.0), Cold),
        vol("resident", 90, Some(2000.0), Hot),
    ];
    let p = run(&vols, &two_tiers(100, 90), limits());
    assert!(p.moves.is_empty(), "{p:?}");
}

#[test]
fn concurrency_limit_and_window_gate_starts() {
    let vols: Vec<_> = (0..5)
        .map(|i| vol(&format!("v{i}"), 1, Some(2000.0 + f64::from(i)), Cold))
        .collect();
    let p = run(
        &vols,
        &two_tiers(1000, 0),
        Limits {
            max_concurrent: 3,
            active_migrations: 1,
            ..limits()
        },
    );
    assert_eq!(p.moves.len(), 2);
    // Densest first.
    assert_eq!(p.moves[0].volume, "v4");
    assert_eq!(p.moves[1].volume, "v3");
    assert_eq!(hold_of(&p, "v0"), &HoldReason::ConcurrencyLimit { to: Hot });

    let p = run(
        &vols,
        &two_tiers(1000, 0),
        Limits {
            window_open: false,
            ..limits()
        },
    );
    assert!(p.moves.is_empty());
    assert_eq!(hold_of(&p, "v2"), &HoldReason::WindowClosed { to: Hot });
}

#[test]
fn force_tier_pin_wins_over_heat_and_cooldown() {
    let mut v = vol("pinned-cold", 10, Some(9000.0), Hot);
    v.pinned = Some(Cold);
    v.last_move = Some(NOW - 60);
    let mut here = vol("pinned-here", 10, Some(1.0), Hot);
    here.pinned = Some(Hot);
    let mut no_metrics = vol("pinned-unknown", 10, None, Cold);
    no_metrics.pinned = Some(Hot);
    let p = run(&[v, here, no_metrics], &two_tiers(1000, 0), limits());
    assert_eq!(
        moved(&p),
        vec![("pinned-cold", Cold), ("pinned-unknown", Hot)]
    );
    assert_eq!(p.moves[0].reason, MoveReason::Pinned);
    assert_eq!(hold_of(&p, "pinned-here"), &HoldReason::PinnedHere);
}

#[test]
fn three_tiers_move_across_two_boundaries() {
    let tiers = [
        TierCapacity {
            tier: Hot,
            capacity_bytes: 1000 * GIB,
            used_bytes: 0,
            pools: None,
        },
        TierCapacity {
            tier: Warm,
            capacity_bytes: 1000 * GIB,
            used_bytes: 0,
            pools: None,
        },
        TierCapacity {
            tier: Cold,
            capacity_bytes: 1000 * GIB,
            used_bytes: 0,
            pools: None,
        },
    ];
    let b = [Boundary::iops(1000.0, 200.0), Boundary::iops(100.0, 10.0)];
    let vols = [
        vol("blazing-on-cold", 1, Some(5000.0), Cold),
        vol("warm-on-cold", 1, Some(300.0), Cold),
        vol("frozen-on-hot", 1, Some(1.0), Hot),
        vol("cool-on-hot", 1, Some(50.0), Hot),
        vol("band-on-warm", 1, Some(150.0), Warm),
    ];
    let p = plan(&Input {
        volumes: &vols,
        tiers: &tiers,
        boundaries: &b,
        limits: limits(),
        now: NOW,
    });
    let mut m = moved(&p);
    m.sort();
    assert_eq!(
        m,
        vec![
            ("blazing-on-cold", Hot),
            ("cool-on-hot", Warm),
            ("frozen-on-hot", Cold),
            ("warm-on-cold", Warm)
        ]
    );
    assert!(matches!(
        hold_of(&p, "band-on-warm"),
        HoldReason::InBand { .. }
    ));
}

#[test]
fn heat_oscillating_inside_the_band_never_moves() {
    // 1,000 cycles of noisy heat between the watermarks: zero moves, so zero ping-pong.
    let mut state = 12345u64;
    for cycle in 0..1000 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let heat = 101.0 + (state >> 11) as f64 / (1u64 << 53) as f64 * 898.0;
        let tier = if cycle % 2 == 0 { Hot } else { Cold };
        let p = run(
            &[vol("wobbly", 10, Some(heat), tier)],
            &two_tiers(1000, 0),
            limits(),
        );
        assert!(p.moves.is_empty(), "cycle {cycle}: heat {heat} moved");
    }
}

#[test]
fn reasons_read_well() {
    let r = HoldReason::NoCapacity {
        to: Hot,
        needed: 20 * GIB,
        free: 5 * GIB,
    };
    assert_eq!(
        r.to_string(),
        "tier hot has no room: needs 20.0 GiB, 5.0 GiB free below headroom"
    );
    assert_eq!(
        HoldReason::UnknownHeat.to_string(),
        "no metrics: heat unknown, treated as unknown and never as cold"
    );
    assert_eq!(
        MoveReason::Promote {
            threshold: 1000.0,
            density_threshold: None
        }
        .to_string(),
        "heat above the promotion watermark 1000 IOPS"
    );
}

/// Heat watermarks 1000 / 100 IOPS plus density watermarks 2048 / 256 IOPS per TiB
/// (2 / 0.25 IOPS per GiB).
const DENSITY: [Boundary; 1] = [Boundary {
    promote_above: 1000.0,
    demote_below: 100.0,
    density: Some(DensityBand {
        promote_above: 2048.0,
        demote_below: 256.0,
    }),
}];

fn run_density(volumes: &[Volume], tiers: &[TierCapacity]) -> Plan {
    plan(&Input {
        volumes,
        tiers,
        boundaries: &DENSITY,
        limits: limits(),
        now: NOW,
    })
}

#[test]
fn density_watermarks_promote_dense_volumes_and_demote_sparse_ones() {
    let vols = [
        // 1500 IOPS on 10 GiB: 150 IOPS/GiB, far above 2/GiB: promoted.
        vol("small-hot", 10, Some(1500.0), Cold),
        // 1500 IOPS on 2 TiB: 0.73 IOPS/GiB, hot by heat but not by density: stays.
        vol("big-lukewarm", 2048, Some(1500.0), Cold),
        // On NVMe, 500 IOPS (above 100) on 4 TiB: 125 IOPS/TiB, below 256: demoted.
        vol("big-on-hot", 4096, Some(500.0), Hot),
        // On NVMe, 500 IOPS on 100 GiB: 5120 IOPS/TiB: in band on both gauges.
        vol("dense-on-hot", 100, Some(500.0), Hot),
    ];
    let p = run_density(&vols, &two_tiers(10_000, 4196));
    assert_eq!(moved(&p), vec![("small-hot", Hot), ("big-on-hot", Cold)]);
    assert!(matches!(
        p.moves[0].reason,
        MoveReason::Promote { threshold, density_threshold: Some(d) } if threshold == 1000.0 && d == 2048.0
    ));
    assert!(matches!(
        p.moves[1].reason,
        MoveReason::Demote { threshold, gauge: Gauge::IopsPerTib } if threshold == 256.0
    ));
    assert_eq!(
        p.moves[1].reason.to_string(),
        "density below the demotion watermark 256 IOPS/TiB"
    );
    for v in ["big-lukewarm", "dense-on-hot"] {
        assert!(matches!(hold_of(&p, v), HoldReason::InBand { .. }), "{v}");
    }
}

#[test]
fn a_resident_hot_by_heat_but_not_by_density_makes_room() {
    // The fast tier (1000 GiB, 900 usable) is full with one 900 GiB volume at 1200 IOPS:
    // above the heat watermark, but 1.3 IOPS/GiB, below the 2/GiB density watermark. Without
    // density watermarks it could never be evicted; with them it makes room for a 50 GiB
    // volume at 1500 IOPS (30 IOPS/GiB).
    let vols = [
        vol("resident", 900, Some(1200.0), Hot),
        vol("newcomer", 50, Some(1500.0), Cold),
    ];
    let p = run_density(&vols, &two_tiers(1000, 900));
    assert_eq!(moved(&p), vec![("resident", Cold)]);
    assert!(matches!(
        &p.moves[0].reason,
        MoveReason::Evicted { for_volume } if for_volume == "newcomer"
    ));
    assert!(matches!(
        hold_of(&p, "newcomer"),
        HoldReason::NoCapacity { to: Hot, .. }
    ));
    // With heat watermarks alone the resident is above 1000 IOPS: nothing moves.
    let p = run(&vols, &two_tiers(1000, 900), limits());
    assert!(p.moves.is_empty(), "{p:?}");
}

#[test]
fn an_abort_counts_for_the_cooldown_and_marks_a_split_volume() {
    use couchestor_common::split::LastAbort;
    let tiers = [Some(Cold), Some(Hot)];
    let mut v = Volume {
        last_move: Some(NOW - 86_400),
        ..vol("v", 20, Some(50.0), Cold)
    };
    v.after_abort(
        LastAbort {
            at: NOW - 60,
            to: Some(Cold),
            timed_out_after: None,
        },
        &tiers,
    );
    assert_eq!(v.last_move, Some(NOW - 60), "the newer abort counts");
    assert_eq!(v.split.as_ref().map(|s| s.interrupted_to), Some(Cold));
    // An older abort leaves the newer move's time; one without a target marks no split.
    v.after_abort(
        LastAbort {
            at: NOW - 7200,
            to: None,
            timed_out_after: None,
        },
        &tiers,
    );
    assert_eq!((v.last_move, v.split), (Some(NOW - 60), None));
}

#[test]
fn a_move_that_timed_out_is_not_retried_until_it_would_get_more_time() {
    use couchestor_common::split::{LastAbort, Split};
    // Each timed out under 1800 s per copy a day ago (out of cooldown).
    let timed_out = |v: Volume| Volume {
        last_move: Some(NOW - 2 * 86_400),
        timed_out_after: Some(1800),
        ..v
    };
    let hot = timed_out(vol("hot", 10, Some(5000.0), Cold));
    let pinned = Volume {
        pinned: Some(Hot),
        ..timed_out(vol("pinned", 10, Some(1.0), Cold))
    };
    // Timed out after placing one of three replicas on Cold.
    let split = Volume {
        replicas: 3,
        tier: None,
        split: Split::after_abort(&[Some(Cold), Some(Hot), Some(Hot)], Cold),
        ..timed_out(vol("split", 10, Some(500.0), Cold))
    };
    // A resident it would be evicted for, on a full fast tier, is not evicted either.
    let resident = timed_out(vol("resident", 10, Some(5.0), Hot));
    let newcomer = vol("newcomer", 10, Some(9000.0), Cold);
    let vols = [hot, pinned, split, resident, newcomer];
    let held = HoldReason::TimedOut {
        after_secs: 1800,
        timeout_secs: 1800,
    };
    let p = run(&vols, &two_tiers(100, 90), limits());
    for v in ["hot", "pinned", "split", "resident"] {
        assert_eq!(hold_of(&p, v), &held, "{v}");
    }
    assert!(p.moves.is_empty(), "{p:?}");
    assert!(matches!(
        hold_of(&p, "newcomer"),
        HoldReason::NoCapacity { .. }
    ));
    assert_eq!(
        held.to_string(),
        "its last move timed out after 1800s per replica copy and a move now would get \
         1800s: not retried until migrationTimeout (and --migration-timeout-minutes) allow \
         more, or its Aborted VolumeMigration is deleted"
    );
    assert_eq!(held.label(), "timed_out");
    // Shorter is no better.
    let shorter = Limits {
        migration_timeout_secs: 900,
        ..limits()
    };
    let p = run(&vols, &two_tiers(100, 90), shorter);
    assert!(matches!(
        hold_of(&p, "hot"),
        HoldReason::TimedOut {
            timeout_secs: 900,
            ..
        }
    ));
    // With more time per copy none is held for it: the consolidation and the eviction start,
    // the promotions wait for the room the eviction makes.
    let longer = Limits {
        migration_timeout_secs: 3600,
        ..limits()
    };
    let p = run(&vols, &two_tiers(100, 90), longer);
    let mut got = moved(&p);
    got.sort();
    assert_eq!(got, vec![("resident", Cold), ("split", Cold)], "{p:?}");
    for v in ["hot", "pinned", "newcomer"] {
        assert!(
            matches!(hold_of(&p, v), HoldReason::NoCapacity { .. }),
            "{v}"
        );
    }

    // Only the newest abort since the last completed move counts.
    let abort = |at, timed_out_after| LastAbort {
        at,
        to: Some(Hot),
        timed_out_after,
    };
    let mut v = vol("v", 10, Some(5000.0), Cold);
    v.after_abort(abort(NOW - 3 * 86_400, Some(1800)), &[Some(Cold)]);
    assert_eq!(v.timed_out_after, Some(1800));
    // A move completed after the timeout: nothing is held.
    let mut v = Volume {
        last_move: Some(NOW - 2 * 86_400),
        ..vol("v", 10, Some(5000.0), Cold)
    };
    v.after_abort(abort(NOW - 3 * 86_400, Some(1800)), &[Some(Cold)]);
    assert_eq!(v.timed_out_after, None);
    // A newer abort for another reason: nothing is held.
    let mut v = vol("v", 10, Some(5000.0), Cold);
    v.after_abort(abort(NOW - 3 * 86_400, None), &[Some(Cold)]);
    assert_eq!(v.timed_out_after, None);
}

#[test]
fn every_hold_reason_has_its_own_metric_label() {
    let reasons = [
        HoldReason::PolicyDisabled,
        HoldReason::Migrating,
        HoldReason::UnknownTier,
        HoldReason::UnknownHeat,
        HoldReason::PinnedHere,
        HoldReason::InBand { heat: 1.0 },
        HoldReason::Cooldown { remaining_secs: 1 },
        HoldReason::TimedOut {
            after_secs: 60,
            timeout_secs: 60,
        },
        HoldReason::NoCapacity {
            to: Hot,
            needed: 1,
            free: 0,
        },
        HoldReason::NoPoolRoom {
            to: Hot,
            replica_bytes: 1,
            replicas: 1,
            largest_free: 0,
        },
        HoldReason::ConcurrencyLimit { to: Hot },
        HoldReason::WindowClosed { to: Hot },
    ];
    let labels: Vec<&str> = reasons.iter().map(HoldReason::label).collect();
    assert_eq!(labels, HoldReason::LABELS);
    assert_eq!(
        HoldReason::Cooldown { remaining_secs: 5 }.label(),
        "cooldown"
    );
}
