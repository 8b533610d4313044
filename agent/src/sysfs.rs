//! Reads whole block devices and their I/O counters from a sysfs tree.
//!
//! Every entry of `<root>/block/` is a whole disk (partitions are subdirectories of their
//! disk and are never listed). Each disk contributes its `stat` counters, `size`,
//! `queue/rotational`, `device/model`, a serial number and a transport worked out from
//! where the `block/<name>` symlink points.

pub mod classify;
pub mod stat;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

pub use classify::DeviceKind;
pub use stat::IoCounters;

/// Default sysfs mount point.
pub const DEFAULT_ROOT: &str = "/sys";

/// Longest excerpt of a file's content quoted in an error message.
const EXCERPT_CHARS: usize = 200;

/// Errors reading a sysfs tree. Each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory of block devices could not be listed.
    #[error("cannot list block devices in {path}: {source}")]
    ListDevices {
        /// The `<root>/block` directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A file's content is not in the documented format.
    #[error("{path}: unexpected content {content:?}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The file's content (trimmed, and cut to 200 characters).
        content: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    fn parse(path: &Path, content: &str, reason: impl ToString) -> Self {
        let trimmed = content.trim();
        let mut excerpt: String = trimmed.chars().take(EXCERPT_CHARS).collect();
        if excerpt.len() < trimmed.len() {
            excerpt.push_str("...");
        }
        Self::Parse {
            path: path.to_owned(),
            content: excerpt,
            reason: reason.to_string(),
        }
    }
}

/// Static description of a whole disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Kernel name, e.g. `nvme0n1`.
    pub name: String,
    /// Media class.
    pub kind: DeviceKind,
    /// `queue/rotational` is 1.
    pub rotational: bool,
    /// Capacity in bytes (`size` is in 512-byte sectors whatever the logical block size).
    pub size_bytes: u64,
    /// `device/model`, trimmed; empty when the device has none.
    pub model: String,
    /// `device/serial`, else `serial`, else `device/wwid`, else `wwid`; empty when none.
    pub serial: String,
    /// Transport, e.g. "nvme", "sata", "sas", "virtio", "loop"; empty when unknown.
    pub transport: String,
    /// `diskseq`, which changes when the kernel re-creates a disk under the same name.
    pub diskseq: Option<u64>,
}

/// One device's description and counters at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSample {
    /// The device.
    pub info: DeviceInfo,
    /// Its counters.
    pub counters: IoCounters,
}

/// A device left out of a sample because its files vanished while being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedDevice {
    /// Kernel name.
    pub name: String,
    /// Why it was skipped (names the missing file).
    pub reason: String,
}

/// Every whole disk of a sysfs tree at one instant.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Monotonic time the sample was started.
    pub taken_at: Instant,
    /// Wall-clock time the sample was started.
    pub wall_clock: SystemTime,
    /// Devices, sorted by name.
    pub devices: Vec<DeviceSample>,
    /// Devices that disappeared while being read (hot-unplug).
    pub skipped: Vec<SkippedDevice>,
}

/// A sysfs tree to sample.
///
/// A disk's description (model, serial, transport, size, `queue/rotational`; whether it is
/// a partition or hidden) is read in full once and kept, keyed by the kernel's `diskseq`,
/// which changes whenever a disk is re-created under the same name, and re-read every
/// [`REFRESH_EVERY`] samples (a resize keeps the `diskseq`); other samples read only `stat`
/// and `diskseq`. Disks without `diskseq` (kernels before 5.15) are read in full every time.
/// Clones share the kept descriptions.
#[derive(Debug, Clone)]
pub struct Sysfs {
    root: PathBuf,
    known: Arc<Mutex<HashMap<String, Known>>>,
}

/// A disk's description as last read in full, valid while `diskseq` is unchanged, for
/// [`REFRESH_EVERY`] samples.
#[derive(Debug, Clone)]
struct Known {
    diskseq: u64,
    /// Samples served from this description so far.
    samples: u32,
    /// `None`: a partition or hidden disk, not listed.
    listed: Option<Static>,
}

#[derive(Debug, Clone)]
struct Static {
    model: String,
    serial: String,
    transport: String,
    size_bytes: u64,
    rotational: bool,
}

/// A kept description is re-read after this many samples, so a resized disk or a changed
/// `queue/rotational` shows within a minute at a 1 s interval.
const REFRESH_EVERY: u32 = 60;

impl Default for Sysfs {
    fn default() -> Self {
        Self::new(DEFAULT_ROOT)
    }
}

/// Reads a file, trimming surrounding whitespace. `Ok(None)` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, Error> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

fn read_required(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

fn parse_u64(path: &Path, text: &str) -> Result<u64, Error> {
    text.trim()
        .parse()
        .map_err(|_| Error::parse(path, text, "expected an unsigned integer"))
}

impl Sysfs {
    /// A sysfs tree mounted (or copied) at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            known: Arc::default(),
        }
    }

    /// The tree's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory holding one entry per whole disk.
    pub fn block_dir(&self) -> PathBuf {
        self.root.join("block")
    }

    /// Reads every whole disk. Devices whose files vanish mid-read are skipped with a
    /// warning; any other read or parse error fails the whole sample.
    pub fn sample(&self) -> Result<Sample, Error> {
        let taken_at = Instant::now();
        let wall_clock = SystemTime::now();
        let block = self.block_dir();
        let list_err = |source| Error::ListDevices {
            path: block.clone(),
            source,
        };
        let mut names = Vec::new();
        for entry in fs::read_dir(&block).map_err(list_err)? {
            let entry = entry.map_err(list_err)?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        let mut devices = Vec::with_capacity(names.len());
        let mut skipped = Vec::new();
        for name in names {
            let dir = block.join(&name);
            match self.read_device(&name, &dir) {
                Ok(Some(device)) => devices.push(device),
                Ok(None) => {}
                Err(Error::Read { path, source })
                    if source.kind() == io::ErrorKind::NotFound || !dir.exists() =>
                {
                    let reason = format!("{} vanished while being read: {source}", path.display());
                    tracing::warn!(device = %name, "skipping device: {reason}");
                    skipped.push(SkippedDevice { name, reason });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Sample {
            taken_at,
            wall_clock,
            devices,
            skipped,
        })
    }

    /// Reads one entry of `block/`. `Ok(None)` for entries that are not listed: a
    /// partition (defensive: the kernel lists only whole disks here) or a hidden disk
    /// (an NVMe multipath path device, reached through its multipath head).
    fn read_device(&self, name: &str, dir: &Path) -> Result<Option<DeviceSample>, Error> {
        let diskseq_path = dir.join("diskseq");
        let diskseq = match read_optional(&diskseq_path)? {
            Some(text) => Some(parse_u64(&diskseq_path, &text)?),
            None => None,
        };
        let kept = diskseq.and_then(|seq| {
            let mut known = self.known.lock().ok()?;
            let k = known
                .get_mut(name)
                .filter(|k| k.diskseq == seq && k.samples < REFRESH_EVERY)?;
            k.samples += 1;
            Some(k.listed.clone())
        });
        let listed = match kept {
            Some(listed) => listed,
            None => {
                let listed = self.read_static(name, dir)?;
                if let (Some(seq), Ok(mut known)) = (diskseq, self.known.lock()) {
                    known.insert(
                        name.to_owned(),
                        Known {
                            diskseq: seq,
                            samples: 1,
                            listed: listed.clone(),
                        },
                    );
                }
                listed
            }
        };
        let Some(Static {
            model,
            serial,
            transport,
            size_bytes,
            rotational,
        }) = listed
        else {
            return Ok(None);
        };
        let stat_path = dir.join("stat");
        let stat_text = read_required(&stat_path)?;
        let counters =
            stat::parse_stat(&stat_text).map_err(|e| Error::parse(&stat_path, &stat_text, e))?;
        let kind = classify::classify(name, &transport, rotational);
        Ok(Some(DeviceSample {
            info: DeviceInfo {
                name: name.to_owned(),
                kind,
                rotational,
                size_bytes,
                model,
                serial,
                transport,
                diskseq,
            },
            counters,
        }))
    }

    /// Everything but the counters; `None` for a partition (defensive: the kernel lists
    /// only whole disks here) or a hidden disk (an NVMe multipath path device, reached
    /// through its multipath head).
    fn read_static(&self, name: &str, dir: &Path) -> Result<Option<Static>, Error> {
        if dir.join("partition").exists() {
            return Ok(None);
        }
        if read_optional(&dir.join("hidden"))?.as_deref() == Some("1") {
            return Ok(None);
        }
        let size_path = dir.join("size");
        let sectors = parse_u64(&size_path, &read_required(&size_path)?)?;
        let size_bytes = sectors.checked_mul(512).ok_or_else(|| {
            Error::parse(&size_path, &sectors.to_string(), "size overflows u64 bytes")
        })?;
        let rot_path = dir.join("queue/rotational");
        let rotational = match read_required(&rot_path)?.trim() {
            "0" => false,
            "1" => true,
            other => return Err(Error::parse(&rot_path, other, "expected 0 or 1")),
        };
        let model = read_optional(&dir.join("device/model"))?.unwrap_or_default();
        let mut serial = String::new();
        for candidate in ["device/serial", "serial", "device/wwid", "wwid"] {
            if let Some(text) = read_optional(&dir.join(candidate))?.filter(|s| !s.is_empty()) {
                serial = text;
                break;
            }
        }
        let has_sas_address = dir.join("device/sas_address").exists();
        let transport = classify::transport(name, &self.devpath(dir), has_sas_address);
        Ok(Some(Static {
            model,
            serial,
            transport,
            size_bytes,
            rotational,
        }))
    }

    /// Canonical path of a device directory relative to the root, e.g.
    /// `devices/pci0000:00/.../block/sda`; empty when it cannot be resolved.
    fn devpath(&self, dir: &Path) -> String {
        let (Ok(root), Ok(target)) = (fs::canonicalize(&self.root), fs::canonicalize(dir)) else {
            return String::new();
        };
        target
            .strip_prefix(&root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
