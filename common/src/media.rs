//! Which media a Mayastor pool sits on, worked out from the pool's disk paths and the devices
//! the node agent on its node reports. Pools without a `couchestor-tier` label get the label
//! value of their media, so they join a tier without anyone labelling them.

use std::fmt;

/// Media class of a block device, as the node agent classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Media {
    /// NVMe flash.
    Nvme,
    /// SATA or SAS flash.
    SataSsd,
    /// A spinning disk.
    Hdd,
    /// Loop, RAM, virtio or device-mapper devices: the media behind them is unknown.
    Virtual,
}

impl Media {
    /// The `couchestor-tier` label value a pool on this media gets: `nvme`, `sata` (SATA/SAS
    /// flash) or `hdd`. Virtual devices get none: their real media is unknown.
    pub fn tier_label_value(self) -> Option<&'static str> {
        match self {
            Self::Nvme => Some("nvme"),
            Self::SataSsd => Some("sata"),
            Self::Hdd => Some("hdd"),
            Self::Virtual => None,
        }
    }
}

impl fmt::Display for Media {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Nvme => "nvme",
            Self::SataSsd => "sata-ssd",
            Self::Hdd => "hdd",
            Self::Virtual => "virtual",
        })
    }
}

/// A whole disk on a node, as its agent reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeDevice {
    /// Kernel name, e.g. `nvme0n1`.
    pub name: String,
    /// Media class.
    pub media: Media,
    /// Stable `/dev/disk/by-id/…` and `/dev/disk/by-path/…` names of the disk or its partitions.
    pub aliases: Vec<String>,
}

/// The file path inside a pool disk URI: `aio:///dev/sda?uuid=…` and `uring:///dev/sda` give
/// `/dev/sda`, a plain path is itself. `None` for disks that are not files (`malloc://`, …).
pub fn disk_path(uri: &str) -> Option<&str> {
    let path = match uri.split_once("://") {
        Some(("aio" | "uring", rest)) => rest,
        Some(_) => return None,
        None => uri,
    };
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    path.starts_with('/').then_some(path)
}

/// The device a disk path names: `/dev/<name>`, one of its aliases, or one of its partitions
/// (`/dev/sda1`, `/dev/nvme0n1p1`).
pub fn device_for<'a>(path: &str, devices: &'a [NodeDevice]) -> Option<&'a NodeDevice> {
    if let Some(d) = devices.iter().find(|d| d.aliases.iter().any(|a| a == path)) {
        return Some(d);
    }
    let name = path.strip_prefix("/dev/")?;
    devices
        .iter()
        .find(|d| d.name == name || is_partition_of(name, &d.name))
}

fn is_partition_of(name: &str, disk: &str) -> bool {
    let Some(rest) = name.strip_prefix(disk) else {
        return false;
    };
    let digits = if disk.ends_with(|c: char| c.is_ascii_digit()) {
        // nvme0n1p1, mmcblk0p1, loop0p1: a `p` separates the numbers.
        rest.strip_prefix('p').unwrap_or("")
    } else {
        rest
    };
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Why a pool's media could not be worked out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unclassified {
    /// The pool lists no disk.
    #[error("the pool lists no disk")]
    NoDisks,
    /// A disk is not a device path (e.g. `malloc:///…`).
    #[error("disk {0:?} is not a device path")]
    NotADevice(String),
    /// No device of the node matches a disk.
    #[error("no device on the node matches disk {0:?}")]
    NoSuchDevice(String),
    /// The disks sit on different media.
    #[error("the pool's disks are on different media ({0} and {1})")]
    Mixed(Media, Media),
    /// The device is virtual, so its media is unknown.
    #[error("disk {0:?} is a virtual device ({1}); its media is unknown")]
    Virtual(String, String),
}

/// The media of a pool with `disks`, given its node's devices, and the devices it sits on.
pub fn classify_pool(
    disks: &[String],
    devices: &[NodeDevice],
) -> Result<(Media, Vec<String>), Unclassified> {
    let mut media: Option<Media> = None;
    let mut names = Vec::new();
    for disk in disks {
        let path = disk_path(disk).ok_or_else(|| Unclassified::NotADevice(disk.clone()))?;
        let d =
            device_for(path, devices).ok_or_else(|| Unclassified::NoSuchDevice(disk.clone()))?;
        if d.media == Media::Virtual {
            return Err(Unclassified::Virtual(disk.clone(), d.name.clone()));
        }
        match media {
            Some(m) if m != d.media => return Err(Unclassified::Mixed(m, d.media)),
            _ => media = Some(d.media),
        }
        names.push(d.name.clone());
    }
    media.map(|m| (m, names)).ok_or(Unclassified::NoDisks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(name: &str, media: Media, aliases: &[&str]) -> NodeDevice {
        NodeDevice {
            name: name.into(),
            media,
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn host() -> Vec<NodeDevice> {
        vec![
            dev("nvme0n1", Media::Nvme, &["/dev/disk/by-id/nvme-Samsung_1"]),
            dev(
                "sda",
                Media::SataSsd,
                &["/dev/disk/by-path/pci-0000:00:17.0-ata-1"],
            ),
            dev("sdb", Media::Hdd, &[]),
            dev("loop0", Media::Virtual, &[]),
        ]
    }

    #[test]
    fn disk_paths_come_out_of_mayastor_uris() {
        assert_eq!(disk_path("aio:///dev/sda?uuid=caede6dd"), Some("/dev/sda"));
        assert_eq!(disk_path("uring:///dev/nvme0n1"), Some("/dev/nvme0n1"));
        assert_eq!(disk_path("/dev/disk/by-id/x"), Some("/dev/disk/by-id/x"));
        assert_eq!(disk_path("malloc:///disk?size_mb=100"), None);
        assert_eq!(disk_path("relative"), None);
    }

    #[test]
    fn pools_take_the_media_of_their_disks() {
        let h = host();
        type Want = Result<(Media, &'static [&'static str]), Unclassified>;
        let cases: [(&[&str], Want); 9] = [
            (&["/dev/nvme0n1"], Ok((Media::Nvme, &["nvme0n1"]))),
            (
                &["aio:///dev/disk/by-id/nvme-Samsung_1?uuid=1"],
                Ok((Media::Nvme, &["nvme0n1"])),
            ),
            (&["/dev/nvme0n1p2"], Ok((Media::Nvme, &["nvme0n1"]))),
            (
                &["/dev/disk/by-path/pci-0000:00:17.0-ata-1"],
                Ok((Media::SataSsd, &["sda"])),
            ),
            (
                &["/dev/sdb", "/dev/sdb1"],
                Ok((Media::Hdd, &["sdb", "sdb"])),
            ),
            (
                &["/dev/sda", "/dev/nvme0n1"],
                Err(Unclassified::Mixed(Media::SataSsd, Media::Nvme)),
            ),
            (
                &["/dev/sdab"],
                Err(Unclassified::NoSuchDevice("/dev/sdab".into())),
            ),
            (
                &["malloc:///disk?size_mb=1"],
                Err(Unclassified::NotADevice("malloc:///disk?size_mb=1".into())),
            ),
            (
                &["/dev/loop0"],
                Err(Unclassified::Virtual("/dev/loop0".into(), "loop0".into())),
            ),
        ];
        for (disks, want) in cases {
            let disks: Vec<String> = disks.iter().map(|d| d.to_string()).collect();
            let want = want.map(|(m, n)| (m, n.iter().map(|s| s.to_string()).collect()));
            assert_eq!(classify_pool(&disks, &h), want, "{disks:?}");
        }
        assert_eq!(classify_pool(&[], &h), Err(Unclassified::NoDisks));
        assert_eq!(Media::SataSsd.tier_label_value(), Some("sata"));
        assert_eq!(Media::Virtual.tier_label_value(), None);
    }
}
