use super::validate;
use crate::train::adapt::{AdaptConfig, adapt};
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The encoder to adapt (`minilm`, a checkpoint directory, or hf:ORG/NAME).
    #[arg(long, default_value = crate::registry::DEFAULT_MODEL)]
    model: String,
    #[arg(long, value_parser = validate::positive_u64, allow_negative_numbers = true)]
    steps: Option<u64>,
    #[arg(long, value_parser = validate::positive_f64, allow_hyphen_values = true)]
    lr: Option<f64>,
    #[arg(long, value_parser = validate::positive_usize, allow_negative_numbers = true)]
    batch_size: Option<usize>,
    #[arg(long)]
    warmup: Option<u64>,
    #[arg(long, value_parser = validate::positive_f64, allow_hyphen_values = true)]
    head_lr_scale: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
    /// Train on the sentences one per row instead of packed into full rows.
    #[arg(long)]
    no_pack: bool,
    #[command(flatten)]
    runtime: crate::util::device::RuntimeArgs,
    /// Run directory: `model/` (the checkpoint), `train/` (log, checkpoints), `adapt.json`.
    #[arg(long)]
    output: PathBuf,
}

impl Args {
    /// The flags as a validated config (unset ones keep [`AdaptConfig::default`]'s values).
    fn config(&self) -> Result<AdaptConfig> {
        let d = AdaptConfig::default();
        let cfg = AdaptConfig {
            steps: self.steps.unwrap_or(d.steps),
            lr: self.lr.unwrap_or(d.lr),
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            warmup: self.warmup.unwrap_or(d.warmup),
            head_lr_scale: self.head_lr_scale.unwrap_or(d.head_lr_scale),
            seed: self.seed.unwrap_or(d.seed),
            pack: d.pack && !self.no_pack,
            device: self.runtime.device,
            dtype: self.runtime.dtype,
            ..d
        };
        // Checked here first so that the message names the flags.
        validate::check_warmup(cfg.warmup, cfg.steps)?;
        cfg.validate()?;
        Ok(cfg)
    }
}

pub fn run(a: Args) -> Result<()> {
    let cfg = a.config()?;
    let base = crate::registry::resolve(&a.model)?;
    let r = adapt(&a.model, &base, &cfg, &a.output, &crate::util::bars::Bars::new())?;
    println!(
        "held-out masked-token accuracy {:.2}% (before {:.2}%, {} tokens), final loss {:.3}, {:.0} s; model in {}",
        r.heldout_accuracy * 100.0,
        r.heldout_accuracy_before * 100.0,
        r.heldout_tokens,
        r.final_loss,
        r.seconds,
        a.output.join("model").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Line {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn unset_flags_keep_the_recipe() {
        let line = Line::parse_from(["adapt", "--output", "out"]);
        assert_eq!(line.args.config().unwrap(), AdaptConfig::default());
        let line = Line::parse_from(["adapt", "--no-pack", "--steps", "60", "--output", "out"]);
        assert_eq!(line.args.config().unwrap(), AdaptConfig { pack: false, steps: 60, ..AdaptConfig::default() });
    }
}
