//! Masked-LM inputs: 15% of the non-special tokens are chosen; of those 80% become the mask
//! token, 10% a random token, 10% stay (BERT's recipe, as transformers'
//! DataCollatorForLanguageModeling), drawn from our seeded generator.

use crate::util::rng::SplitMix;
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq)]
pub struct Masked {
    pub inputs: Vec<Vec<u32>>,
    /// (row, position) of every chosen token, with the original token to predict.
    pub positions: Vec<(usize, usize)>,
    pub targets: Vec<u32>,
}

pub struct MaskingConfig {
    pub probability: f64,
    pub mask_id: u32,
    pub vocab_size: usize,
}

pub fn mask_tokens(rows: &[Vec<u32>], special: &BTreeSet<u32>, cfg: &MaskingConfig, rng: &mut SplitMix) -> Masked {
    let mut inputs = rows.to_vec();
    let mut positions = Vec::new();
    let mut targets = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        for (p, &tok) in row.iter().enumerate() {
            if special.contains(&tok) || rng.uniform() >= cfg.probability {
                continue;
            }
            positions.push((r, p));
            targets.push(tok);
            let how = rng.uniform();
            if how < 0.8 {
                inputs[r][p] = cfg.mask_id;
            } else if how < 0.9 {
                inputs[r][p] = rng.below(cfg.vocab_size) as u32;
            }
        }
    }
    Masked { inputs, positions, targets }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportions_and_specials() {
        let rows: Vec<Vec<u32>> = (0..400)
            .map(|i| (0..50).map(|j| if j == 0 { 101 } else { 1000 + ((i * 50 + j) % 500) as u32 }).collect())
            .collect();
        let special: BTreeSet<u32> = [101].into();
        let cfg = MaskingConfig { probability: 0.15, mask_id: 103, vocab_size: 30522 };
        let m = mask_tokens(&rows, &special, &cfg, &mut SplitMix::new(1));
        let n = m.positions.len() as f64;
        let eligible = (400 * 49) as f64;
        assert!((n / eligible - 0.15).abs() < 0.01, "{}", n / eligible);
        assert!(m.positions.iter().all(|&(_, p)| p != 0), "a special token was chosen");
        let masked = m.positions.iter().filter(|&&(r, p)| m.inputs[r][p] == 103).count() as f64;
        let kept = m.positions.iter().zip(&m.targets).filter(|&(&(r, p), &t)| m.inputs[r][p] == t).count() as f64;
        assert!((masked / n - 0.8).abs() < 0.02 && (kept / n - 0.1).abs() < 0.02, "{} {}", masked / n, kept / n);
        // Deterministic given the seed.
        assert_eq!(m, mask_tokens(&rows, &special, &cfg, &mut SplitMix::new(1)));
    }
}
