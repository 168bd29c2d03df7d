use crate::data::Bundle;
use anyhow::{Result, bail};

#[derive(clap::Args)]
pub struct Args {
    /// What to fetch: benchmarks, weat, minilm, or all.
    #[arg(default_value = "all")]
    what: Vec<String>,
}

pub fn run(args: Args) -> Result<()> {
    let mut bundles = Vec::new();
    for w in &args.what {
        match w.as_str() {
            "all" => bundles.extend(Bundle::ALL),
            other => match Bundle::parse(other) {
                Some(b) => bundles.push(b),
                None => bail!("unknown bundle \"{other}\" (benchmarks, weat, minilm, all)"),
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
