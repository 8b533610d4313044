//! `couchestor-controller explain <pv>`: why is (or isn't) this volume migrating?

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use couchestor_common::StoragePolicy;
use couchestor_common::plan::{HoldReason, iops_per_tib};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::ListParams;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{reflector, watcher};
use kube::{Api, Client, ResourceExt};

use crate::agents::Fleet;
use crate::agents::classify::Source;
use crate::context::Context;
use crate::metrics::Metrics;
use crate::observe::Observation;
use crate::observe::heat_window;
use crate::reconcile::decide;
use crate::run::{DecisionArgs, SourceArgs, sources};

/// Options of `explain`.
#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// PersistentVolume name (pvc-<uuid>).
    pv: String,
    #[command(flatten)]
    sources: SourceArgs,
    #[command(flatten)]
    decisions: DecisionArgs,
}

/// Prints, for every policy that covers the PV, each check and the resulting decision.
pub async fn explain(args: ExplainArgs) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("connecting to Kubernetes")?;
    let text = explain_text(client, &args.pv, &args.sources, &args.decisions).await?;
    print!("{text}");
    Ok(())
}

/// The explanation as text (separate from printing so tests can read it).
pub async fn explain_text(
    client: Client,
    pv_name: &str,
    src: &SourceArgs,
    decisions: &DecisionArgs,
) -> anyhow::Result<String> {
    let pv = Api::<PersistentVolume>::all(client.clone())
        .get_opt(pv_name)
        .await?
        .with_context(|| format!("PersistentVolume {pv_name} not found"))?;
    let sc = pv
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default();
    let selector = &decisions.policy_selector;
    let policies = Api::<StoragePolicy>::all(client.clone())
        .list(&ListParams::default().labels(selector))
        .await
        .with_context(|| format!("listing StoragePolicies (--policy-selector {selector:?})"))?;
    let selector_flag = if selector.is_empty() {
        String::new()
    } else {
        format!(" --policy-selector {selector:?}")
    };
    let mut out = format!("PersistentVolume {pv_name} (StorageClass {sc:?})\n");
    out.push_str(&format!(
        "  deciding as a controller with --max-concurrent-migrations {} --migration-timeout-minutes {} --dry-run {}{selector_flag}\n",
        decisions.max_concurrent_migrations,
        decisions.migration_timeout_minutes,
        decisions.dry_run,
    ));
    let covering: Vec<_> = policies
        .items
        .into_iter()
        .filter(|p| p.spec.storage_class_name == sc)
        .collect();
    if covering.is_empty() {
        let scope = if selector.is_empty() { "" } else { " matching" };
        out.push_str(&format!(
            "  not migrating: no StoragePolicy{scope}{selector_flag} manages this StorageClass\n"
        ));
        return Ok(out);
    }
    let ctx = one_shot_context(client.clone(), src, decisions).await?;
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    for policy in covering {
        out.push_str(&format!("\npolicy {}\n", policy.name_any()));
        out.push_str(&format!(
            "  enabled: {}   dry-run: {}\n",
            policy.spec.enabled, policy.spec.dry_run
        ));
        let d = match decide(&ctx, &policy, now).await? {
            Ok(d) => d,
            Err(e) => {
                out.push_str(&format!(
                    "  not migrating: the policy cannot be applied: {e}\n"
                ));
                continue;
            }
        };
        let Some(w) = d
            .observation
            .volumes
            .iter()
            .find(|w| w.engine.name == pv_name)
        else {
            out.push_str("  not migrating: the claim does not match the policy's volumeSelector\n");
            continue;
        };
        let (window, half_life) = heat_window(&policy);
        let v = &w.engine;
        let heat = v
            .heat
            .iops()
            .map_or("unknown (no metrics)".into(), |h| format!("{h:.1} IOPS"));
        out.push_str(&format!(
            "  heat: {heat} over {} (half-life {}); watermarks: promote above {}, demote below {} IOPS\n",
            humantime::format_duration(window),
            humantime::format_duration(half_life),
            policy.spec.high_watermark_iops,
            policy.spec.low_watermark_iops
        ));
        let sustained = v
            .sustained
            .map_or("unknown".into(), |s| format!("{s:.1} IOPS"));
        out.push_str(&format!(
            "  sustained heat (promotion needs it above the watermark too): {sustained} (the smaller of the median over {} and the mean over {})\n",
            humantime::format_duration(window),
            humantime::format_duration(policy.spec.sustained_window()),
        ));
        if let (Some(hi), Some(lo)) = (
            policy.spec.high_watermark_iops_per_tib,
            policy.spec.low_watermark_iops_per_tib,
        ) {
            let density = v.heat.iops().map_or("unknown".into(), |h| {
                format!("{:.0} IOPS/TiB", iops_per_tib(h, v.size_bytes))
            });
            out.push_str(&format!(
                "  density: {density}; density watermarks: promote above {hi}, demote below {lo} IOPS/TiB\n"
            ));
        }
        if let Some(e) = &d.observation.metrics_error {
            out.push_str(&format!("  metrics: {e}\n"));
        }
        let tier = v.tier.map_or("unknown".into(), |t| t.to_string());
        out.push_str(&format!(
            "  current tier: {tier} (pools: {})\n",
            w.pools.join(", ")
        ));
        if let Some(e) = &d.observation.backend_error {
            out.push_str(&format!("  backend: {e}\n"));
        }
        out.push_str(&media_lines(&ctx, &d.observation, &w.pools, now));
        let last = v
            .last_move
            .map_or("never".into(), |t| format!("{}s ago", now - t));
        out.push_str(&format!(
            "  last migration: {last}; cooldown {}\n",
            policy.spec.cooldown_period
        ));
        out.push_str(&format!(
            "  migration window: {}\n",
            if d.window_open { "open" } else { "closed" }
        ));
        for t in &d.observation.tiers {
            let pct = if t.capacity_bytes > 0 {
                100.0 * t.used_bytes as f64 / t.capacity_bytes as f64
            } else {
                100.0
            };
            out.push_str(&format!(
                "  tier {}: {:.1}% used of {:.1} GiB\n",
                t.tier,
                pct,
                t.capacity_bytes as f64 / (1u64 << 30) as f64
            ));
        }
        match d.plan.decision(pv_name) {
            Some(Ok(m)) => out.push_str(&format!(
                "  decision: {} {} -> {}: {}\n",
                if d.dry_run {
                    "WOULD MOVE (dry-run)"
                } else {
                    "MOVE"
                },
                m.from,
                m.to,
                m.reason
            )),
            Some(Err(h)) => {
                let verb = match h.reason {
                    HoldReason::WindowClosed { .. } | HoldReason::ConcurrencyLimit { .. } => {
                        "WAITING"
                    }
                    _ => "STAYS",
                };
                out.push_str(&format!("  decision: {verb}: {}\n", h.reason));
            }
            None => bail!("internal: the plan has no decision for {pv_name}"),
        }
    }
    Ok(out)
}

/// How the volume's pools were classified, and what their nodes' agents said.
fn media_lines(ctx: &Context, obs: &Observation, pools: &[String], now: i64) -> String {
    let view = ctx.agents.view();
    let mut out = String::new();
    for m in obs.pool_media.iter().filter(|m| pools.contains(&m.pool)) {
        out.push_str(&format!("  {}\n", m.describe()));
        if let Some(a) = view.nodes.get(&m.node) {
            let seen = a.fetched_at.map_or("never answered".into(), |t| {
                format!("answered {}s ago", now - t)
            });
            let error = a
                .error
                .as_ref()
                .map_or(String::new(), |e| format!(", last poll failed: {e}"));
            out.push_str(&format!(
                "    agent {} at {}: {seen}{error}\n",
                a.pod, a.endpoint
            ));
        }
    }
    let unknown: Vec<&str> = obs
        .pool_media
        .iter()
        .filter(|m| matches!(m.source, Source::Unknown(_)))
        .map(|m| m.pool.as_str())
        .collect();
    if !unknown.is_empty() {
        out.push_str(&format!(
            "  pools in no tier (no label, media unknown): {}\n",
            unknown.join(", ")
        ));
    }
    if let Some(e) = &obs.agents_error {
        out.push_str(&format!("  agents: {e}\n"));
    }
    out
}

/// Every object `api` lists, read 500 at a time.
async fn list_all<K>(api: Api<K>) -> anyhow::Result<Vec<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut items = Vec::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api
            .list(&params)
            .await
            .with_context(|| format!("listing {}", K::plural(&())))?;
        items.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(items),
        }
    }
}

async fn one_shot_context(
    client: Client,
    src: &SourceArgs,
    decisions: &DecisionArgs,
) -> anyhow::Result<Context> {
    // Every PV and claim, as in the controller's caches: the plan ranks a policy's volumes
    // against each other for room and migration slots, so one volume alone would be
    // planned as if nothing competed with it.
    let (pvs, mut pv_w) = reflector::store::<PersistentVolume>();
    let (pvcs, mut pvc_w) = reflector::store::<PersistentVolumeClaim>();
    for pv in list_all(Api::<PersistentVolume>::all(client.clone())).await? {
        pv_w.apply_watcher_event(&watcher::Event::Apply(pv));
    }
    for pvc in list_all(Api::<PersistentVolumeClaim>::all(client.clone())).await? {
        pvc_w.apply_watcher_event(&watcher::Event::Apply(pvc));
    }
    let (eyes, mayastor) = sources(src)?;
    let metrics = Arc::new(Metrics::new()?);
    let agents = Arc::new(Fleet::new(
        &src.agents,
        client.clone(),
        &src.agents.namespace(),
    )?);
    agents.poll(&metrics).await;
    Ok(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "couchestor-explain".into(),
                instance: None,
            },
        ),
        client,
        eyes,
        mayastor,
        agents,
        metrics,
        pvs,
        pvcs,
        // explain never drives a migration, so nothing asks whether an owner exists.
        policies: reflector::store::<StoragePolicy>().0,
        // What the plan depends on is the controller's (`decisions`); the rest does not
        // reach the plan.
        settings: decisions.settings(false, Duration::from_secs(60), None),
        cordon_lock: tokio::sync::Mutex::new(()),
        launch_lock: tokio::sync::Mutex::new(()),
    })
}
