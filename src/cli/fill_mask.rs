use super::{ModelArgs, validate};
use crate::model::{Exec, Overflow};
use anyhow::{Result, bail};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Text holding one or more mask tokens ([MASK] or <mask>; either is accepted).
    text: String,
    /// How many predictions per mask.
    #[arg(long, default_value_t = 5, value_parser = validate::positive_usize, allow_negative_numbers = true)]
    top_k: usize,
}

pub fn run(args: Args) -> Result<()> {
    let m = args.model.load()?;
    let Some((mask_tok, mask_id)) = m.tokenizer.mask.clone() else {
        bail!("{}: a {} model has no mask token; fill-mask needs a masked LM", args.model.model, m.family().name());
    };
    let text = args.text.replace("[MASK]", &mask_tok).replace("<mask>", &mask_tok);
    let enc = m.encode(&[text.as_str()], m.max_len(), Overflow::Error)?.remove(0);
    let positions: Vec<(usize, usize)> =
        enc.ids.iter().enumerate().filter(|(_, id)| **id == mask_id).map(|(i, _)| (0, i)).collect();
    if positions.is_empty() {
        bail!("no {mask_tok} in the text");
    }
    if m.params.new_head {
        eprintln!(
            "note: {} has no pretrained LM head; these predictions come from a new, untrained head",
            args.model.model
        );
    }
    let batch = m.batch(vec![enc.ids.clone()])?;
    let hidden = m.hidden(&batch, Exec::INFER)?;
    let probs = candle_nn::ops::softmax_last_dim(&m.logits_at(&hidden, &positions, Exec::INFER)?)?;
    for (k, &(_, pos)) in positions.iter().enumerate() {
        let row: Vec<f32> = probs.get(k)?.to_vec1()?;
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        if positions.len() > 1 {
            println!("mask {} (token {pos}):", k + 1);
        }
        for &id in order.iter().take(args.top_k) {
            let mut ids = enc.ids.clone();
            ids[pos] = id as u32;
            let special: Vec<u32> =
                ids.iter().copied().filter(|i| !m.tokenizer.special_ids.contains(i) || *i == id as u32).collect();
            let token = m.tokenizer.id_to_token(id as u32).unwrap_or_default();
            println!("{:>8.4}  {:<14} {}", row[id], token, m.tokenizer.decode(&special)?.trim());
        }
    }
    Ok(())
}
