//! The Reed–Solomon codec and the choice of its GF(2^8) kernels at run time.
//!
//! With the `simd` feature, `reed-solomon-erasure`'s `galois_8::Field` multiplies through C
//! kernels compiled for x86-64 Haswell (AVX2) or aarch64 NEON; they would fault on an older
//! CPU. [`PureGf8`] implements the same field (same tables, same encoding matrix, hence
//! byte-identical shards) with plain Rust table look-ups, and [`detect_backend`] picks it when
//! the CPU lacks the instructions, when the build has no `simd` feature, or when
//! `COUCHESTOR_EC_BACKEND=pure-rust` is set.

use std::fmt;
use std::sync::OnceLock;

use reed_solomon_erasure::{Field, ReedSolomon, galois_8};
use serde::Serialize;

use super::EcError;

/// The GF(2^8) kernels in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// reed-solomon-erasure's SIMD C kernels (AVX2 on x86-64, NEON on aarch64).
    Simd,
    /// Table look-ups in Rust: portable, about ten times slower.
    PureRust,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Backend::Simd => "simd",
            Backend::PureRust => "pure-rust",
        })
    }
}

/// Picks the kernels for this process (decided once) and says why.
pub fn detect_backend() -> (Backend, &'static str) {
    static CHOICE: OnceLock<(Backend, &'static str)> = OnceLock::new();
    *CHOICE.get_or_init(|| {
        let forced = std::env::var("COUCHESTOR_EC_BACKEND").unwrap_or_default();
        if forced == "pure-rust" {
            (
                Backend::PureRust,
                "forced by COUCHESTOR_EC_BACKEND=pure-rust",
            )
        } else if !cfg!(feature = "simd") {
            (Backend::PureRust, "built without the simd feature")
        } else if simd_supported() {
            (Backend::Simd, simd_isa())
        } else {
            (
                Backend::PureRust,
                "CPU lacks the instructions the SIMD kernels were built for",
            )
        }
    })
}

/// The instruction set the SIMD kernels use on this architecture.
fn simd_isa() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "NEON kernels (aarch64)"
    } else {
        "AVX2 kernels (x86-64 Haswell)"
    }
}

/// Whether this CPU runs code built with `-march=haswell` (x86-64) or has NEON (aarch64).
fn simd_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("bmi1")
            && std::arch::is_x86_feature_detected!("bmi2")
            && std::arch::is_x86_feature_detected!("lzcnt")
            && std::arch::is_x86_feature_detected!("popcnt")
            && std::arch::is_x86_feature_detected!("movbe")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("neon")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// GF(2^8) exactly as `galois_8::Field`, multiplying slices with a Rust 256×256 table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PureGf8;

fn mul_table() -> &'static [[u8; 256]; 256] {
    static TABLE: OnceLock<Box<[[u8; 256]; 256]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Box::new([[0u8; 256]; 256]);
        for (a, row) in t.iter_mut().enumerate() {
            for (b, cell) in row.iter_mut().enumerate() {
                *cell = galois_8::mul(a as u8, b as u8);
            }
        }
        t
    })
}

impl Field for PureGf8 {
    const ORDER: usize = 256;
    type Elem = u8;

    fn add(a: u8, b: u8) -> u8 {
        galois_8::add(a, b)
    }
    fn mul(a: u8, b: u8) -> u8 {
        galois_8::mul(a, b)
    }
    fn div(a: u8, b: u8) -> u8 {
        galois_8::div(a, b)
    }
    fn exp(a: u8, n: usize) -> u8 {
        galois_8::exp(a, n)
    }
    fn zero() -> u8 {
        0
    }
    fn one() -> u8 {
        1
    }
    fn nth_internal(n: usize) -> u8 {
        n as u8
    }
    fn mul_slice(c: u8, input: &[u8], out: &mut [u8]) {
        let row = &mul_table()[c as usize];
        for (o, i) in out.iter_mut().zip(input) {
            *o = row[*i as usize];
        }
    }
    fn mul_slice_add(c: u8, input: &[u8], out: &mut [u8]) {
        let row = &mul_table()[c as usize];
        for (o, i) in out.iter_mut().zip(input) {
            *o ^= row[*i as usize];
        }
    }
}

enum Inner {
    Simd(ReedSolomon<galois_8::Field>),
    Pure(ReedSolomon<PureGf8>),
}

/// A k+m Reed–Solomon codec over contiguous stripes: a stripe buffer holds the `k + m`
/// blocks of one stripe back to back, data first.
pub struct Codec {
    inner: Inner,
    k: usize,
    m: usize,
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Codec({}+{}, {})", self.k, self.m, self.backend())
    }
}

fn codec_err(e: reed_solomon_erasure::Error) -> EcError {
    EcError::Codec(format!("{e:?}"))
}

impl Codec {
    /// A codec with the kernels [`detect_backend`] picks.
    pub fn new(k: usize, m: usize) -> Result<Self, EcError> {
        Self::with_backend(k, m, detect_backend().0)
    }

    /// A codec with the given kernels; asking for [`Backend::Simd`] on a CPU or build without
    /// them is an error.
    pub fn with_backend(k: usize, m: usize, backend: Backend) -> Result<Self, EcError> {
        let inner = match backend {
            Backend::Simd if !(cfg!(feature = "simd") && simd_supported()) => {
                return Err(EcError::Codec(
                    "SIMD kernels are not available on this CPU or build".into(),
                ));
            }
            Backend::Simd => Inner::Simd(ReedSolomon::new(k, m).map_err(codec_err)?),
            Backend::PureRust => Inner::Pure(ReedSolomon::new(k, m).map_err(codec_err)?),
        };
        Ok(Codec { inner, k, m })
    }

    /// `(k, m)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.k, self.m)
    }

    /// The kernels this codec uses.
    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Simd(_) => Backend::Simd,
            Inner::Pure(_) => Backend::PureRust,
        }
    }

    /// Computes the `m` parity blocks of `stripe` (`(k + m) * block` bytes) from its `k` data
    /// blocks.
    pub fn encode(&self, stripe: &mut [u8], block: usize) -> Result<(), EcError> {
        let mut shards: Vec<&mut [u8]> = stripe.chunks_mut(block).collect();
        self.check(shards.len())?;
        match &self.inner {
            Inner::Simd(rs) => rs.encode(&mut shards).map_err(codec_err),
            Inner::Pure(rs) => rs.encode(&mut shards).map_err(codec_err),
        }
    }

    /// Rebuilds the blocks of `stripe` whose `present` flag is false from at least `k` present
    /// ones; with `data_only`, missing parity blocks are left as they are.
    pub fn reconstruct(
        &self,
        stripe: &mut [u8],
        block: usize,
        present: &[bool],
        data_only: bool,
    ) -> Result<(), EcError> {
        let mut shards: Vec<(&mut [u8], bool)> = stripe
            .chunks_mut(block)
            .zip(present.iter().copied())
            .collect();
        self.check(shards.len())?;
        match (&self.inner, data_only) {
            (Inner::Simd(rs), true) => rs.reconstruct_data(&mut shards),
            (Inner::Simd(rs), false) => rs.reconstruct(&mut shards),
            (Inner::Pure(rs), true) => rs.reconstruct_data(&mut shards),
            (Inner::Pure(rs), false) => rs.reconstruct(&mut shards),
        }
        .map_err(codec_err)
    }

    fn check(&self, shards: usize) -> Result<(), EcError> {
        if shards == self.k + self.m {
            Ok(())
        } else {
            Err(EcError::Codec(format!(
                "stripe holds {shards} blocks, expected {}",
                self.k + self.m
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripe(block: usize) -> Vec<u8> {
        let mut s = vec![0u8; 6 * block];
        for (i, b) in s[..4 * block].iter_mut().enumerate() {
            *b = (i.wrapping_mul(2_654_435_761) >> 7) as u8;
        }
        s
    }

    #[test]
    fn both_backends_write_identical_parity_and_rebuild() {
        let block = 4096;
        let pure = Codec::with_backend(4, 2, Backend::PureRust).unwrap();
        let mut a = stripe(block);
        pure.encode(&mut a, block).unwrap();
        if let Ok(simd) = Codec::with_backend(4, 2, Backend::Simd) {
            let mut b = stripe(block);
            simd.encode(&mut b, block).unwrap();
            assert!(a == b, "SIMD and pure-Rust parity differ");
        }
        let mut damaged = a.clone();
        damaged[block..2 * block].fill(0xAA);
        damaged[5 * block..].fill(0x55);
        let present = [true, false, true, true, true, false];
        pure.reconstruct(&mut damaged, block, &present, false)
            .unwrap();
        assert!(damaged == a, "reconstruction differs");
    }

    #[test]
    fn three_losses_of_four_plus_two_fail() {
        let codec = Codec::with_backend(4, 2, Backend::PureRust).unwrap();
        let mut s = stripe(512);
        codec.encode(&mut s, 512).unwrap();
        let present = [false, false, false, true, true, true];
        assert!(codec.reconstruct(&mut s, 512, &present, true).is_err());
    }
}
