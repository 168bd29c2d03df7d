//! A post-hoc linear projection of the last-layer hidden states (SentenceDebias, INLP): the
//! `projection.safetensors` file a projection run writes beside a checkpoint, read at load and
//! applied by [`super::LanguageModel::hidden_from_words`] to every hidden row, h ↦ P h, before
//! the MLM head transform / LM head — where bias-bench's forward hook applies it.

use anyhow::{Result, bail};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// The file name a model directory holds its projection under.
pub const FILE: &str = "projection.safetensors";
/// The tensor holding P `[D, D]`.
pub const MATRIX: &str = "projection";
/// The tensor holding the removed orthonormal directions `[k, D]` (optional).
pub const BASIS: &str = "basis";

/// What a projection is, as `info`, `collapse.json` and `audit.json` name it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProjectionInfo {
    /// `sentence-debias`, `inlp`, or what the file's metadata says.
    pub method: String,
    /// `gender`, `race`, `religion`, or what the file's metadata says.
    pub bias: String,
    /// Directions removed: D − rank(P).
    pub rank: usize,
    /// The file it was read from.
    pub file: String,
    /// sha256 of the file: the collapse statistics' model fingerprint includes it.
    pub sha256: String,
}

/// A loaded projection: P on the model's device, and what it is.
#[derive(Debug, Clone)]
pub struct Projection {
    pub info: ProjectionInfo,
    /// Pᵀ `[D, D]` in f32 (hidden rows are multiplied on the right).
    transposed: Tensor,
}

impl Projection {
    /// Reads `path` for a model whose hidden rows are `width` wide: one-line errors name the
    /// file for a missing tensor, a wrong shape or a non-finite entry.
    pub fn load(path: &Path, width: usize, device: &Device) -> Result<Self> {
        if !path.is_file() {
            return Err(crate::util::fs::not_found(format!("{}: no such projection file", path.display())));
        }
        let (tensors, meta) = super::weights::load_tensors_with_metadata(path, &Device::Cpu)?;
        let Some(p) = tensors.get(MATRIX) else {
            bail!("{}: no \"{MATRIX}\" tensor (a projection file holds P as [D, D])", path.display());
        };
        let dims = p.dims().to_vec();
        if dims != [width, width] {
            bail!(
                "{}: projection is {:?} but the model's hidden rows are {width} wide (expected [{width}, {width}])",
                path.display(),
                dims
            );
        }
        let p = p.to_dtype(DType::F32)?;
        let values: Vec<f32> = p.flatten_all()?.to_vec1()?;
        if let Some(i) = values.iter().position(|x| !x.is_finite()) {
            bail!("{}: projection entry ({}, {}) is {} (not finite)", path.display(), i / width, i % width, values[i]);
        }
        let rank = match meta.get("rank").and_then(|r| r.parse::<usize>().ok()) {
            Some(r) => r,
            // No record: D − trace(P), the removed rank of an orthogonal projection.
            None => {
                let trace: f64 = (0..width).map(|i| values[i * width + i] as f64).sum();
                (width as f64 - trace).round().max(0.0) as usize
            }
        };
        let bytes = std::fs::read(path)?;
        let info = ProjectionInfo {
            method: meta.get("method").cloned().unwrap_or_else(|| "unknown".into()),
            bias: meta.get("bias").cloned().unwrap_or_else(|| "unknown".into()),
            rank,
            file: path.display().to_string(),
            sha256: crate::util::hash::hex_digest(&bytes),
        };
        Ok(Projection { info, transposed: p.t()?.contiguous()?.to_device(device)? })
    }

    /// P h for every row of hidden states `[B, T, D]` (or `[N, D]`), in f32.
    pub fn apply(&self, hidden: &Tensor) -> Result<Tensor> {
        let h = hidden.to_dtype(DType::F32)?;
        Ok(h.broadcast_matmul(&self.transposed)?)
    }
}

/// A projection to write: P (`[D, D]`, row-major, computed in f64), the removed orthonormal
/// directions (`[k, D]`, k = `basis.len() / width`; may be empty) and what made it.
pub struct ToSave<'a> {
    pub matrix: &'a [f64],
    pub width: usize,
    pub basis: &'a [f64],
    pub method: &'a str,
    pub bias: &'a str,
    pub rank: usize,
}

/// Writes a projection with metadata `{"format": "pt", "method", "bias", "rank", "width"}` plus
/// `extra`; a non-finite entry is refused.
pub fn save(path: &Path, p: &ToSave, extra: HashMap<String, String>) -> Result<()> {
    let width = p.width;
    if p.matrix.len() != width * width || !p.basis.len().is_multiple_of(width.max(1)) {
        bail!("{}: projection has {} entries, not {width}×{width}", path.display(), p.matrix.len());
    }
    if p.matrix.iter().chain(p.basis).any(|x| !x.is_finite()) {
        bail!("{}: projection has a non-finite entry; not written", path.display());
    }
    let to_f32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let mut tensors = vec![(MATRIX.to_string(), Tensor::from_vec(to_f32(p.matrix), (width, width), &Device::Cpu)?)];
    let k = p.basis.len() / width.max(1);
    if k > 0 {
        tensors.push((BASIS.to_string(), Tensor::from_vec(to_f32(p.basis), (k, width), &Device::Cpu)?));
    }
    let mut meta = extra;
    meta.insert("method".into(), p.method.into());
    meta.insert("bias".into(), p.bias.into());
    meta.insert("rank".into(), p.rank.to_string());
    meta.insert("width".into(), width.to_string());
    super::weights::save_tensors_with_metadata(&tensors, path, meta)
}
