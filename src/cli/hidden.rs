use super::{ModelArgs, validate};
use crate::model::{Exec, Overflow, plan_by_length};
use anyhow::{Context, Result, bail};
use candle_core::{DType, Tensor};
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
    let enc = m
        .encode(&lines, args.max_len.unwrap_or(m.max_len()), overflow)
        .with_context(|| format!("{}", args.input.display()))?;
    let n = enc.len();
    let t = enc.iter().map(|e| e.ids.len()).max().unwrap_or(1);
    let d = m.config.hidden_size;
    let mut hidden = vec![0f32; n * t * d];
    let lengths: Vec<usize> = enc.iter().map(|e| e.ids.len()).collect();
    let bar = crate::report::progress::items_bar(n as u64, "hidden states");
    for group in plan_by_length(&lengths, args.batch_size, 64 * 128) {
        let batch = m.batch(group.iter().map(|&i| enc[i].ids.clone()).collect())?;
        let h = m.hidden(&batch, Exec::INFER)?;
        let h = match args.features {
            crate::collapse::Features::Hidden => h,
            crate::collapse::Features::Head => {
                let (b, t, d) = h.dims3()?;
                m.head_features(&h.reshape((b * t, d))?, Exec::INFER)?.reshape((b, t, d))?
            }
        };
        for (row, &i) in group.iter().enumerate() {
            let len = lengths[i];
            let v: Vec<f32> = h.get(row)?.narrow(0, 0, len)?.flatten_all()?.to_vec1()?;
            hidden[i * t * d..i * t * d + len * d].copy_from_slice(&v);
        }
        bar.inc(group.len() as u64);
    }
    bar.finish_and_clear();
    let mut ids = vec![m.tokenizer.pad_id as i64; n * t];
    let mut mask = vec![0i64; n * t];
    for (i, e) in enc.iter().enumerate() {
        for (j, &id) in e.ids.iter().enumerate() {
            ids[i * t + j] = id as i64;
            mask[i * t + j] = 1;
        }
    }
    let dev = &m.device;
    let tensors = vec![
        ("hidden".to_string(), Tensor::from_vec(hidden, (n, t, d), dev)?),
        ("attention_mask".to_string(), Tensor::from_vec(mask, (n, t), dev)?.to_dtype(DType::I64)?),
        ("input_ids".to_string(), Tensor::from_vec(ids, (n, t), dev)?),
    ];
    crate::model::weights::save_tensors(&tensors, &args.output)?;
    println!("wrote {} ({n} inputs × {t} tokens × {d})", args.output.display());
    Ok(())
}
