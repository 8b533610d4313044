//! Stable device names: the `/dev/disk/by-id` and `/dev/disk/by-path` links of each whole
//! disk. Mayastor pools usually name their disk by such a link, so the controller needs them
//! to tell which device (and so which media) a pool sits on.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::sysfs::Sysfs;

/// Where device nodes live on a real host.
pub const DEFAULT_DEV_ROOT: &str = "/dev";

/// The link directories scanned, relative to the device root.
const LINK_DIRS: [&str; 2] = ["disk/by-id", "disk/by-path"];

/// Aliases of each of `disks` (kernel names), as `/dev/disk/by-…/<link>` paths, sorted. A
/// link to a partition (`sda1`, `nvme0n1p2`) counts for its disk. Missing link directories
/// (a container without udev) give no aliases; unreadable links are skipped.
pub fn scan(dev_root: &Path, sysfs: &Sysfs, disks: &[&str]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for dir in LINK_DIRS {
        let Ok(entries) = fs::read_dir(dev_root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(target) = fs::read_link(entry.path()) else {
                continue;
            };
            let Some(target) = target.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if let Some(disk) = disk_of(sysfs, disks, target) {
                let link = format!("/dev/{dir}/{}", entry.file_name().to_string_lossy());
                out.entry(disk.to_string()).or_default().push(link);
            }
        }
    }
    for links in out.values_mut() {
        links.sort();
    }
    out
}

/// The disk `name` is, or is a partition of (a partition is a subdirectory of its disk in
/// sysfs, and its name extends the disk's).
fn disk_of<'a>(sysfs: &Sysfs, disks: &[&'a str], name: &str) -> Option<&'a str> {
    if let Some(d) = disks.iter().find(|d| **d == name) {
        return Some(d);
    }
    disks
        .iter()
        .find(|d| name.starts_with(**d) && sysfs.block_dir().join(d).join(name).is_dir())
        .copied()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn links_to_disks_and_partitions_name_their_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let (dev, sys) = (tmp.path().join("dev"), tmp.path().join("sys"));
        fs::create_dir_all(sys.join("block/nvme0n1/nvme0n1p1")).unwrap();
        fs::create_dir_all(sys.join("block/sda")).unwrap();
        fs::create_dir_all(dev.join("disk/by-id")).unwrap();
        fs::create_dir_all(dev.join("disk/by-path")).unwrap();
        symlink("../../nvme0n1", dev.join("disk/by-id/nvme-Samsung_X_S1")).unwrap();
        symlink(
            "../../nvme0n1p1",
            dev.join("disk/by-id/nvme-Samsung_X_S1-part1"),
        )
        .unwrap();
        symlink("../../sda", dev.join("disk/by-path/pci-0000:00:17.0-ata-1")).unwrap();
        symlink("../../sr0", dev.join("disk/by-id/ata-DVD")).unwrap();
        symlink("../../sdab", dev.join("disk/by-id/ata-other")).unwrap();

        let got = scan(&dev, &Sysfs::new(&sys), &["nvme0n1", "sda"]);
        assert_eq!(
            got,
            BTreeMap::from([
                (
                    "nvme0n1".to_string(),
                    vec![
                        "/dev/disk/by-id/nvme-Samsung_X_S1".to_string(),
                        "/dev/disk/by-id/nvme-Samsung_X_S1-part1".to_string()
                    ]
                ),
                (
                    "sda".to_string(),
                    vec!["/dev/disk/by-path/pci-0000:00:17.0-ata-1".to_string()]
                ),
            ])
        );
    }

    #[test]
    fn no_link_directories_means_no_aliases() {
        let tmp = tempfile::tempdir().unwrap();
        let got = scan(tmp.path(), &Sysfs::new(tmp.path()), &["sda"]);
        assert!(got.is_empty());
    }
}
