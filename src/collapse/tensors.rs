//! Class statistics as named tensors: the one layout of the exact sums outside memory, shared
//! by the statistics shards and the NC3 regularizer's training checkpoints. `counts` `[K]`,
//! `sums` `[K·D, 2]` and `sq_norms` `[K, 2]`, all i64; the i128 sums are stored as (low, high)
//! halves because safetensors has no 128-bit type.

use super::stats::{ClassStats, join_i128, split_i128};
use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};

/// `stats` as (`{prefix}counts`, `{prefix}sums`, `{prefix}sq_norms`) on the CPU.
pub fn to_tensors(stats: &ClassStats, prefix: &str) -> Result<Vec<(String, Tensor)>> {
    let dev = Device::Cpu;
    let k = stats.num_classes();
    let counts: Vec<i64> = stats.counts.iter().map(|&c| c as i64).collect();
    Ok(vec![
        (format!("{prefix}counts"), Tensor::from_vec(counts, k, &dev)?),
        (format!("{prefix}sums"), Tensor::from_vec(split_i128(&stats.sums), (stats.sums.len(), 2), &dev)?),
        (format!("{prefix}sq_norms"), Tensor::from_vec(split_i128(&stats.sq_norms), (k, 2), &dev)?),
    ])
}

/// Reads [`to_tensors`] back through `get` (a tensor by name), checking what a damaged or
/// hand-made file could break: negative counts, counts beyond 2⁶⁴ positions, sums that are not
/// (low, high) pairs, sizes that disagree. The dimension follows from the sizes (0 without
/// classes, which the caller refuses if it must).
pub fn from_tensors<'t>(get: impl Fn(&str) -> Option<&'t Tensor>, prefix: &str) -> Result<ClassStats> {
    let tensor = |name: &str| get(&format!("{prefix}{name}")).with_context(|| format!("no tensor {prefix}{name}"));
    let integers = |name: &str| -> Result<Vec<i64>> {
        let t = tensor(name)?;
        t.flatten_all()
            .and_then(|t| t.to_vec1::<i64>())
            .with_context(|| format!("tensor {prefix}{name} is not integer"))
    };
    // Counts are written from u64 values below 2⁶³; a negative one is a damaged file.
    let counts: Vec<u64> = integers("counts")?
        .into_iter()
        .map(|c| u64::try_from(c).ok().with_context(|| format!("tensor {prefix}counts holds a negative count {c}")))
        .collect::<Result<_>>()?;
    let pairs = |name: &str| -> Result<Vec<i128>> {
        let raw = integers(name)?;
        if raw.len() % 2 != 0 {
            bail!("tensor {prefix}{name} has an odd length {}, not (low, high) pairs", raw.len());
        }
        Ok(join_i128(&raw))
    };
    let sums = pairs("sums")?;
    let sq_norms = pairs("sq_norms")?;
    let k = counts.len();
    if counts.iter().try_fold(0u64, |a, &c| a.checked_add(c)).is_none() {
        bail!("the counts add up to more than 2^64 positions");
    }
    let consistent =
        if k == 0 { sums.is_empty() && sq_norms.is_empty() } else { sums.len() % k == 0 && sq_norms.len() == k };
    if !consistent {
        bail!("inconsistent tensor sizes");
    }
    let dim = sums.len().checked_div(k).unwrap_or(0);
    Ok(ClassStats { dim, counts, sums, sq_norms })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn round_trip_and_damage_is_named() {
        let stats =
            ClassStats { dim: 2, counts: vec![3, 0], sums: vec![1, -(1 << 100), 5, i128::MIN], sq_norms: vec![7, 0] };
        let map: BTreeMap<String, Tensor> = to_tensors(&stats, "p.").unwrap().into_iter().collect();
        assert_eq!(from_tensors(|n| map.get(n), "p.").unwrap(), stats);
        let err = format!("{:#}", from_tensors(|n| map.get(n), "q.").unwrap_err());
        assert!(err.contains("no tensor q.counts"), "{err}");
        let mut bad = map.clone();
        bad.insert("p.counts".into(), Tensor::new(&[-1i64, 2], &Device::Cpu).unwrap());
        let err = format!("{:#}", from_tensors(|n| bad.get(n), "p.").unwrap_err());
        assert!(err.contains("tensor p.counts holds a negative count -1"), "{err}");
    }
}
