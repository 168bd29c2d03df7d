//! Sentence representations as bias-bench computes them for both methods: the last-layer
//! hidden states averaged over the sentence's tokens (special tokens included, padding not),
//! optionally L2-normalised (SentenceDebias normalises, INLP does not). Batched by length.

use crate::model::{Exec, LanguageModel, plan_by_length};
use crate::util::progress::{Progress, Unit};
use anyhow::{Result, bail};

/// Row-major `[n, D]` mean-pooled representations of `texts`, truncated to `max_len` tokens.
pub fn pooled(
    model: &LanguageModel,
    texts: &[String],
    max_len: usize,
    normalise: bool,
    batch_size: usize,
    what: &str,
    progress: &dyn Progress,
) -> Result<Vec<f64>> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let enc = model.encode_quiet(&refs, max_len)?;
    let lengths: Vec<usize> = enc.iter().map(|e| e.ids.len()).collect();
    if let Some(i) = lengths.iter().position(|&n| n == 0) {
        bail!("{what}: sentence {} {:?} tokenizes to nothing (no token to average)", i + 1, texts[i]);
    }
    let d = model.feature_width();
    let mut out = vec![0f64; texts.len() * d];
    let phase = progress.phase(what, texts.len() as u64, Unit::Items);
    let mut done = 0;
    for group in plan_by_length(&lengths, batch_size.max(1), 64 * 128) {
        let batch = model.batch(group.iter().map(|&i| enc[i].ids.clone()).collect())?;
        let h = model.hidden(&batch, Exec::INFER)?;
        for (r, &i) in group.iter().enumerate() {
            let rows: Vec<Vec<f32>> = h.get(r)?.narrow(0, 0, lengths[i])?.to_vec2()?;
            let dst = &mut out[i * d..(i + 1) * d];
            for row in &rows {
                dst.iter_mut().zip(row).for_each(|(o, &x)| *o += x as f64);
            }
            dst.iter_mut().for_each(|o| *o /= rows.len() as f64);
            if normalise {
                let norm = dst.iter().map(|x| x * x).sum::<f64>().sqrt();
                if !(norm.is_finite() && norm > 0.0) {
                    bail!("{what}: sentence {} {:?}: mean hidden state has norm {norm}", i + 1, texts[i]);
                }
                dst.iter_mut().for_each(|o| *o /= norm);
            }
        }
        done += group.len();
        phase.set(done as u64);
    }
    if out.iter().any(|x| !x.is_finite()) {
        bail!("{what}: a sentence representation is not finite");
    }
    Ok(out)
}
