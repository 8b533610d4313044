//! Real file systems on loop devices for the I/O tests: an image file, `losetup` with a
//! chosen logical sector size, `mkfs.ext4`, `mount`; all undone on drop. Needs root; under
//! `CI=true` a setup that fails fails the test (see `couchestor_testsupport::unavailable`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// An ext4 file system on a loop device, mounted on a directory.
pub struct LoopFs {
    /// The loop device, e.g. `/dev/loop3`.
    pub device: PathBuf,
    /// The mount point.
    pub mount: PathBuf,
    image: PathBuf,
    mounted: bool,
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A bare loop device over an image file (no file system), detached on drop.
pub struct LoopDev {
    /// The loop device.
    pub device: PathBuf,
    image: PathBuf,
}

impl LoopDev {
    /// Attaches `image` (created with `size` bytes) with logical sectors of `sector` bytes.
    pub fn new(image: &Path, size: u64, sector: u32) -> Result<LoopDev, String> {
        let file = std::fs::File::create(image).map_err(|e| format!("create image: {e}"))?;
        file.set_len(size).map_err(|e| format!("size image: {e}"))?;
        let device = run(Command::new("losetup")
            .args(["--find", "--show", "--sector-size", &sector.to_string()])
            .arg(image))?;
        Ok(LoopDev {
            device: PathBuf::from(device),
            image: image.to_path_buf(),
        })
    }

    /// Like [`LoopDev::new`], or `None` after `couchestor_testsupport::unavailable`.
    pub fn or_skip(image: &Path, size: u64, sector: u32, test: &str) -> Option<LoopDev> {
        match LoopDev::new(image, size, sector) {
            Ok(dev) => Some(dev),
            Err(why) => couchestor_testsupport::unavailable(&format!("{test}: a loop device"), why),
        }
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        if let Err(e) = run(Command::new("losetup").arg("-d").arg(&self.device)) {
            eprintln!("{e}");
        }
        if let Err(e) = std::fs::remove_file(&self.image) {
            eprintln!("cannot remove {}: {e}", self.image.display());
        }
    }
}

impl LoopFs {
    /// Makes an ext4 of `size` bytes on a loop device with `sector`-byte logical sectors and
    /// mounts it on `mount` (which must exist). The image lives beside `mount`.
    pub fn new(mount: &Path, size: u64, sector: u32) -> Result<LoopFs, String> {
        let image = mount.with_extension("img");
        let dev = LoopDev::new(&image, size, sector)?;
        let mut fs = LoopFs {
            device: dev.device.clone(),
            mount: mount.to_path_buf(),
            image,
            mounted: false,
        };
        std::mem::forget(dev); // LoopFs detaches it.
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-E", "nodiscard"])
            .arg(&fs.device))?;
        run(Command::new("mount").arg(&fs.device).arg(mount))?;
        fs.mounted = true;
        Ok(fs)
    }

    /// Like [`LoopFs::new`], or `None` after `couchestor_testsupport::unavailable`.
    pub fn or_skip(mount: &Path, size: u64, sector: u32, test: &str) -> Option<LoopFs> {
        match LoopFs::new(mount, size, sector) {
            Ok(fs) => Some(fs),
            Err(why) => couchestor_testsupport::unavailable(
                &format!("{test}: an ext4 on a loop device"),
                why,
            ),
        }
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        if self.mounted
            && let Err(e) = run(Command::new("umount").arg(&self.mount))
        {
            eprintln!("{e}");
        }
        if let Err(e) = run(Command::new("losetup").arg("-d").arg(&self.device)) {
            eprintln!("{e}");
        }
        if let Err(e) = std::fs::remove_file(&self.image) {
            eprintln!("cannot remove {}: {e}", self.image.display());
        }
    }
}
