use crate::data::Bundle;
use anyhow::{Result, bail};

#[derive(clap::Args)]
pub struct Args {
    /// What to fetch: benchmarks, weat, minilm, all (these three), or minilm-mlm (built
    /// locally from minilm by masked-LM training, about 31 minutes on 2 cores).
    #[arg(default_value = "all")]
    what: Vec<String>,
}

pub fn run(args: Args) -> Result<()> {
    let mut bundles = Vec::new();
    for w in &args.what {
        match w.as_str() {
            "all" => bundles.extend(Bundle::ALL),
            "minilm-mlm" => {
                let was_ready = crate::train::adapt::minilm_mlm_dir().join("adapt.json").exists();
                let dir = crate::train::adapt::ensure_minilm_mlm()?;
                println!("{:<11} {} {}", "minilm-mlm", if was_ready { "present" } else { "built" }, dir.display());
            }
            other => match Bundle::parse(other) {
                Some(b) => bundles.push(b),
                None => bail!("unknown bundle \"{other}\" (benchmarks, weat, minilm, minilm-mlm, all)"),
            },
        }
    }
    bundles.dedup();
    for b in bundles {
        let was_ready = b.is_ready();
        let dir = b.ensure()?;
        println!("{:<11} {} {}", b.name(), if was_ready { "present" } else { "fetched" }, dir.display());
    }
    Ok(())
}
