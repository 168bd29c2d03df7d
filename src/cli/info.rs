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
    let info = m.info();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    println!("model        {}", info.model);
    println!("directory    {}", info.directory);
    println!("family       {} ({:?} LM)", m.config.family.name(), info.kind);
    println!("parameters   {}", info.parameters);
    println!("vocabulary   {} tokens (embedding rows {})", info.vocabulary.tokenizer, info.vocabulary.embedding_rows);
    let kv = if info.kv_heads < info.heads { format!(" ({} key/value)", info.kv_heads) } else { String::new() };
    println!(
        "shape        {} layers × {} hidden, {} heads{kv}, {} positions",
        info.layers, info.hidden_size, info.heads, info.max_positions
    );
    println!("LM head      {}", info.lm_head);
    println!("tying        {}", info.tying);
    if let Some(t) = &info.mask_token {
        println!("mask token   {t}");
    }
    if let Some(p) = &info.projection {
        println!(
            "projection   {} ({} bias): {} direction(s) removed from the last hidden states, {}",
            p.method, p.bias, p.rank, p.file
        );
    }
    for n in &info.notes {
        println!("note         {n}");
    }
    Ok(())
}
