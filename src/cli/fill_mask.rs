use super::{ModelArgs, validate};
use crate::model::fill_mask::fill_mask;
use anyhow::Result;

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
    let masks = fill_mask(&m, &args.text, args.top_k)?;
    if m.params.new_head {
        eprintln!(
            "note: {} has no pretrained LM head; these predictions come from a new, untrained head",
            args.model.model
        );
    }
    for (k, mask) in masks.iter().enumerate() {
        if masks.len() > 1 {
            println!("mask {} (token {}):", k + 1, mask.position);
        }
        for p in &mask.predictions {
            println!("{:>8.4}  {:<14} {}", p.score, p.token, p.sequence);
        }
    }
    Ok(())
}
