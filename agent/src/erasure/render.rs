//! Text renderings of manifests and reports, as `couchestor-agent ec` prints them.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use super::{Manifest, Report, RestoreReport, ShardState};

impl Manifest {
    /// What `ec encode` prints: archive, size, geometry, SHA-256, kernels and speed.
    pub fn write_summary(
        &self,
        out: &mut dyn Write,
        source: &Path,
        kernels: &str,
        elapsed: Duration,
    ) -> io::Result<()> {
        writeln!(
            out,
            "archived {} as {:?}: {} bytes, {} stripes of {}+{} x {}-byte blocks",
            source.display(),
            self.archive_id,
            self.source_size,
            self.stripes,
            self.k,
            self.m,
            self.block_size
        )?;
        writeln!(out, "sha256 {}", self.source_sha256)?;
        writeln!(
            out,
            "backend {kernels}; {}",
            rate(self.source_size, elapsed)
        )
    }
}

impl RestoreReport {
    /// What `ec restore` prints.
    pub fn write_text(&self, out: &mut dyn Write, elapsed: Duration) -> io::Result<()> {
        writeln!(
            out,
            "restored {:?} to {}: {} bytes, sha256 {} (matches the manifest)",
            self.archive_id,
            self.target.display(),
            self.bytes,
            self.sha256
        )?;
        writeln!(
            out,
            "missing shards: {}; stripes rebuilt: {}; backend {}; {}",
            list(&self.missing_shards),
            self.stripes_rebuilt,
            self.backend,
            rate(self.bytes, elapsed)
        )
    }
}

impl Report {
    /// What `ec verify` and `ec scrub` print: one line per shard, notes, status.
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "archive {:?}: {}+{}, {} stripes of {}-byte blocks, {} bytes, backend {}",
            self.archive_id,
            self.k,
            self.m,
            self.stripes,
            self.block_size,
            self.source_size,
            self.backend
        )?;
        for s in &self.shards {
            let state = match s.state {
                ShardState::Ok => "ok",
                ShardState::Damaged => "damaged",
                ShardState::Missing => "missing",
            };
            let dir = s
                .dir
                .as_ref()
                .map_or("-".into(), |d| d.display().to_string());
            write!(out, "shard {:<2} {state:<8} {dir}", s.index)?;
            if let Some(reason) = &s.reason {
                write!(out, " ({reason})")?;
            }
            if !s.corrupt_blocks.is_empty() {
                write!(out, " corrupt blocks: {}", ranges(&s.corrupt_blocks))?;
            }
            if !s.missing_blocks.is_empty() {
                write!(out, " unreadable blocks: {}", ranges(&s.missing_blocks))?;
            }
            writeln!(out)?;
        }
        for note in &self.notes {
            writeln!(out, "note: {note}")?;
        }
        if !self.repaired.is_empty() {
            writeln!(out, "repaired shards: {}", list(&self.repaired))?;
        }
        let status = if self.healthy {
            "healthy".to_string()
        } else if self.recoverable {
            "degraded but recoverable (run `couchestor-agent ec scrub`)".to_string()
        } else {
            format!(
                "UNRECOVERABLE stripes: {}",
                ranges(&self.unrecoverable_stripes)
            )
        };
        writeln!(out, "status: {status}")
    }
}

fn rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    format!(
        "{secs:.2} s, {:.1} MiB/s",
        bytes as f64 / secs / f64::from(1 << 20)
    )
}

fn list(items: &[usize]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    let items: Vec<String> = items.iter().map(ToString::to_string).collect();
    items.join(", ")
}

/// `[0, 1, 2, 5]` → `"0-2, 5"`.
fn ranges(items: &[u64]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < items.len() {
        let mut j = i;
        while j + 1 < items.len() && items[j + 1] == items[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            items[i].to_string()
        } else {
            format!("{}-{}", items[i], items[j])
        });
        i = j + 1;
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_compress_runs() {
        assert_eq!(ranges(&[0, 1, 2, 5, 7, 8]), "0-2, 5, 7-8");
        assert_eq!(ranges(&[3]), "3");
        assert_eq!(list(&[]), "none");
        assert_eq!(list(&[1, 4]), "1, 4");
    }
}
