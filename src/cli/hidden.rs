use super::{ModelArgs, validate};
use crate::model::Overflow;
use crate::model::hidden_states::hidden_states;
use crate::util::bars::Bars;
use anyhow::{Context, Result, bail};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Text file, one input per line (empty lines are skipped).
    #[arg(long)]
    input: PathBuf,
    /// Output safetensors: `hidden` [N,T,D], `attention_mask` [N,T], `input_ids` [N,T].
    #[arg(long)]
    output: PathBuf,
    /// Longest input in tokens (default: the model's position table).
    #[arg(long, value_parser = validate::max_len, allow_negative_numbers = true)]
    max_len: Option<usize>,
    /// Refuse inputs longer than the limit instead of truncating them.
    #[arg(long)]
    no_truncate: bool,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 64, value_parser = validate::positive_usize, allow_negative_numbers = true)]
    batch_size: usize,
    /// `hidden`: last-layer states; `head`: their MLM head transform (what the decoder reads).
    #[arg(long, value_enum, default_value = "hidden")]
    features: crate::collapse::Features,
}

pub fn run(args: Args) -> Result<()> {
    // Checked before the forward passes it would otherwise throw away.
    if args.output.is_dir() {
        bail!(
            "--output {}: is a directory; give the file to write, e.g. {}",
            args.output.display(),
            args.output.join("hidden.safetensors").display()
        );
    }
    let m = args.model.load()?;
    let text =
        std::fs::read_to_string(&args.input).with_context(|| format!("{}: cannot read", args.input.display()))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        bail!("{}: no non-empty lines", args.input.display());
    }
    let overflow = if args.no_truncate { Overflow::Error } else { Overflow::Truncate };
    let head = args.features == crate::collapse::Features::Head;
    let states =
        hidden_states(&m, &lines, args.max_len.unwrap_or(m.max_len()), overflow, args.batch_size, head, &Bars::new())
            .with_context(|| format!("{}", args.input.display()))?;
    let tensors = states.named();
    let (n, t, d) = states.hidden.dims3()?;
    crate::model::weights::save_tensors(&tensors, &args.output)?;
    println!("wrote {} ({n} inputs × {t} tokens × {d})", args.output.display());
    Ok(())
}
