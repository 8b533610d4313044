//! Transport detection and media classification of block devices.

use serde::Serialize;

/// Media class of a block device (mirrors `couchestor.agent.v1.DeviceKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// An NVMe namespace.
    Nvme,
    /// A non-rotational SCSI-attached disk (SATA, SAS, USB, ...).
    SataSsd,
    /// A rotational disk.
    Hdd,
    /// A software device: loop, RAM disk, zram, device-mapper, MD RAID, NBD, virtio disk.
    Virtual,
}

impl DeviceKind {
    /// The name used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nvme => "nvme",
            Self::SataSsd => "sata_ssd",
            Self::Hdd => "hdd",
            Self::Virtual => "virtual",
        }
    }
}

/// True when `name` is `prefix` followed by at least one character, all matching `rest`.
fn prefix_then(name: &str, prefix: &str, rest: fn(char) -> bool) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|tail| !tail.is_empty() && tail.chars().all(rest))
}

/// True for kernel names of NVMe namespaces: `nvme<ctrl>n<ns>` and the hidden multipath
/// paths `nvme<subsys>c<ctrl>n<ns>`.
pub fn is_nvme_name(name: &str) -> bool {
    let Some(tail) = name.strip_prefix("nvme") else {
        return false;
    };
    let digits_then = |s: &str, sep: char| -> Option<String> {
        let end = s.find(|c: char| !c.is_ascii_digit())?;
        (end > 0 && s[end..].starts_with(sep)).then(|| s[end + 1..].to_owned())
    };
    let Some(after_ctrl) = digits_then(tail, 'n')
        .or_else(|| digits_then(tail, 'c').and_then(|rest| digits_then(&rest, 'n')))
    else {
        return false;
    };
    !after_ctrl.is_empty() && after_ctrl.chars().all(|c| c.is_ascii_digit())
}

/// The transport name used for software devices, from the kernel name alone.
fn virtual_transport(name: &str) -> Option<&'static str> {
    let digit = |c: char| c.is_ascii_digit();
    let lower = |c: char| c.is_ascii_lowercase();
    [
        ("loop", "loop", digit as fn(char) -> bool),
        ("zram", "zram", digit),
        ("ram", "ram", digit),
        ("dm-", "dm", digit),
        ("md", "md", digit),
        ("nbd", "nbd", digit),
        ("vd", "virtio", lower),
        ("xvd", "xen", lower),
    ]
    .into_iter()
    .find(|(prefix, _, rest)| prefix_then(name, prefix, *rest))
    .map(|(_, transport, _)| transport)
}

/// Works out the transport as `lsblk` names it ("nvme", "sata", "sas", "usb", "virtio",
/// "scsi", "loop", ...), or "" when unknown.
///
/// `devpath` is the device's canonical sysfs path relative to the sysfs root (where the
/// `block/<name>` symlink points, e.g. `devices/pci0000:00/0000:00:17.0/ata1/host0/...`);
/// `has_sas_address` tells whether `device/sas_address` exists.
pub fn transport(name: &str, devpath: &str, has_sas_address: bool) -> String {
    let path = format!("/{devpath}");
    let transport = if is_nvme_name(name) || path.contains("/nvme/") {
        "nvme"
    } else if path.contains("/virtio") {
        "virtio"
    } else if path.contains("/usb") {
        "usb"
    } else if has_sas_address || path.contains("/end_device-") {
        "sas"
    } else if path.contains("/ata") {
        "sata"
    } else if path.contains("/host") && path.contains("/target") {
        "scsi"
    } else if let Some(transport) = virtual_transport(name) {
        transport
    } else if path.starts_with("/devices/virtual/") {
        "virtual"
    } else {
        ""
    };
    transport.to_owned()
}

/// Classifies a whole disk from its name, transport and `queue/rotational` flag.
///
/// Software devices come first whatever their rotational flag says (virtio disks report
/// rotational=1); then NVMe; then the rotational flag separates HDDs from SSDs.
pub fn classify(name: &str, transport: &str, rotational: bool) -> DeviceKind {
    let software = [
        "virtio", "xen", "loop", "zram", "ram", "dm", "md", "nbd", "virtual",
    ];
    if virtual_transport(name).is_some() || software.contains(&transport) {
        DeviceKind::Virtual
    } else if is_nvme_name(name) || transport == "nvme" {
        DeviceKind::Nvme
    } else if rotational {
        DeviceKind::Hdd
    } else {
        DeviceKind::SataSsd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_nvme_names() {
        for name in ["nvme0n1", "nvme12n3", "nvme0c1n1"] {
            assert!(is_nvme_name(name), "{name}");
        }
        for name in ["nvme0", "nvme0n", "nvme0n1p1", "nvmen1", "sda", "nvme0c1"] {
            assert!(!is_nvme_name(name), "{name}");
        }
    }

    #[test]
    fn detects_transports_from_real_sysfs_paths() {
        let cases = [
            (
                "nvme0n1",
                "devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1",
                false,
                "nvme",
            ),
            (
                "sda",
                "devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda",
                false,
                "sata",
            ),
            (
                "sdc",
                "devices/pci0000:00/0000:00:1c.0/0000:02:00.0/host2/port-2:0/end_device-2:0/target2:0:0/2:0:0:0/block/sdc",
                true,
                "sas",
            ),
            (
                "sdd",
                "devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdd",
                false,
                "usb",
            ),
            (
                "sde",
                "devices/pci0000:00/0000:00:10.0/host7/target7:0:0/7:0:0:0/block/sde",
                false,
                "scsi",
            ),
            (
                "vda",
                "devices/pci0000:00/0000:00:02.0/virtio1/block/vda",
                false,
                "virtio",
            ),
            ("loop0", "devices/virtual/block/loop0", false, "loop"),
            ("dm-0", "devices/virtual/block/dm-0", false, "dm"),
            ("md127", "devices/virtual/block/md127", false, "md"),
            ("zram0", "devices/virtual/block/zram0", false, "zram"),
            ("ram0", "devices/virtual/block/ram0", false, "ram"),
            ("nbd3", "devices/virtual/block/nbd3", false, "nbd"),
            ("pmem0", "devices/virtual/block/pmem0", false, "virtual"),
            (
                "mmcblk0",
                "devices/platform/mmc/mmc0/mmc0:0001/block/mmcblk0",
                false,
                "",
            ),
        ];
        for (name, path, sas, expected) in cases {
            assert_eq!(transport(name, path, sas), expected, "{name}");
        }
    }

    #[test]
    fn classifies_by_name_transport_and_rotation() {
        assert_eq!(classify("nvme0n1", "nvme", false), DeviceKind::Nvme);
        assert_eq!(classify("sda", "sata", false), DeviceKind::SataSsd);
        assert_eq!(classify("sdc", "sas", false), DeviceKind::SataSsd);
        assert_eq!(classify("sdb", "sata", true), DeviceKind::Hdd);
        assert_eq!(classify("sdf", "sas", true), DeviceKind::Hdd);
        // virtio disks claim rotational=1 but are software devices.
        assert_eq!(classify("vda", "virtio", true), DeviceKind::Virtual);
        for name in [
            "loop0", "ram1", "dm-2", "zram0", "vdb", "nbd0", "md0", "xvda",
        ] {
            assert_eq!(classify(name, "", false), DeviceKind::Virtual, "{name}");
            assert_eq!(classify(name, "", true), DeviceKind::Virtual, "{name}");
        }
        // Names that merely start like a software device are judged on their transport.
        assert_eq!(classify("mdisk", "scsi", true), DeviceKind::Hdd);
        assert_eq!(classify("loopy", "sata", false), DeviceKind::SataSsd);
    }

    #[test]
    fn kind_names_match_json() {
        let names: Vec<_> = [
            DeviceKind::Nvme,
            DeviceKind::SataSsd,
            DeviceKind::Hdd,
            DeviceKind::Virtual,
        ]
        .iter()
        .map(|k| (k.as_str(), serde_json::to_string(k).unwrap()))
        .collect();
        for (name, json) in names {
            assert_eq!(json, format!("\"{name}\""));
        }
    }
}
