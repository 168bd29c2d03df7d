use super::ModelArgs;
use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let m = args.model.load()?;
    let c = &m.config;
    let (tied, emb) = crate::model::layout::tied_names(c.family);
    let info = serde_json::json!({
        "model": args.model.model,
        "directory": m.dir.display().to_string(),
        "family": c.family,
        "kind": m.kind(),
        "parameters": m.num_parameters(),
        "vocabulary": {"tokenizer": m.tokenizer.vocab_size(), "embedding_rows": c.vocab_size},
        "hidden_size": c.hidden_size,
        "layers": c.num_layers,
        "heads": c.num_heads,
        "max_positions": m.max_len(),
        "lm_head": if m.params.new_head { "new (not pretrained)" } else { "pretrained" },
        "tying": format!("{tied} = {emb} (one parameter)"),
        "mask_token": m.tokenizer.mask.as_ref().map(|(t, _)| t.clone()),
        "notes": m.params.notes,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    println!("model        {}", args.model.model);
    println!("directory    {}", m.dir.display());
    println!("family       {} ({:?} LM)", c.family.name(), m.kind());
    println!("parameters   {}", m.num_parameters());
    println!("vocabulary   {} tokens (embedding rows {})", m.tokenizer.vocab_size(), c.vocab_size);
    println!(
        "shape        {} layers × {} hidden, {} heads, {} positions",
        c.num_layers,
        c.hidden_size,
        c.num_heads,
        m.max_len()
    );
    println!("LM head      {}", info["lm_head"].as_str().unwrap());
    println!("tying        {}", info["tying"].as_str().unwrap());
    if let Some((t, _)) = &m.tokenizer.mask {
        println!("mask token   {t}");
    }
    for n in &m.params.notes {
        println!("note         {n}");
    }
    Ok(())
}
