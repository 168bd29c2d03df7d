//! `fairnc experiment` on tiny fixtures: a grid with a failing cell runs to the end and marks
//! it, a re-run skips finished cells, the summary has its three parts, and bad configs are
//! refused with the line.

mod common;

use common::*;

fn config(dir: &std::path::Path, methods: &str) -> std::path::PathBuf {
    let corpus = fixture("collapse/corpus.txt").display().to_string();
    let text = format!(
        "name = \"tiny\"\nmodels = [\"{}\", \"{}\"]\nseeds = [0, 1]\n\n[methods]\n{methods}\n\n[debias]\nsteps = 2\nbatch_size = 4\ncorpus = \"{corpus}\"\n\n[audit]\nquick = true\nmax_texts = 200\n",
        model_dir("bert").display(),
        model_dir("gpt2").display()
    );
    let path = dir.join("grid.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn grid_runs_records_failures_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    // ASE needs a masked LM: its GPT-2 cells fail, the rest go on.
    let cfg = config(tmp.path(), "none = [0]\ncda = [0, 10]\nase = [0]");
    let out = tmp.path().join("out");
    let o = fairnc(&["experiment", "--config", cfg.to_str().unwrap(), "--output", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let cells = s["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2 * 4 * 2);
    let failed: Vec<&serde_json::Value> = cells.iter().filter(|c| c["status"] == "failed").collect();
    assert_eq!(failed.len(), 2, "the two GPT-2 ASE cells");
    assert!(failed.iter().all(|c| c["method"] == "ase" && c["error"].as_str().unwrap().contains("masked LM")));
    let deltas = s["deltas"].as_array().unwrap();
    assert!(!deltas.is_empty() && !s["correlations"].as_array().unwrap().is_empty());
    // λ = 10 and λ = 0 cells of the same seed are compared pairwise.
    assert!(deltas.iter().all(|d| d["comparison"] == "paired, 2 seeds"), "{deltas:?}");
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    for part in ["## Every configuration", "## What the NC3 regularizer changes", "## Do NC metrics track fairness?", "## Failed cells"] {
        assert!(md.contains(part), "summary lacks {part}:\n{md}");
    }
    assert!(out.join("cells.csv").exists() && out.join("summary.html").exists());
    assert!(std::fs::read_dir(&out).unwrap().flatten().any(|e| e.file_name().to_string_lossy().starts_with("scatter_") && e.file_name().to_string_lossy().ends_with(".png")));

    // Re-run: finished cells are skipped (their results untouched), failed ones retried.
    let done = out.join(format!("{}/cda-l10-s1/result.json", cells.iter().find(|c| c["method"] == "cda").unwrap()["model"].as_str().unwrap().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect::<String>()));
    let before = std::fs::metadata(&done).unwrap().modified().unwrap();
    let o = fairnc(&["experiment", "--config", cfg.to_str().unwrap(), "--output", out.to_str().unwrap()]);
    assert!(o.status.success());
    assert_eq!(std::fs::metadata(&done).unwrap().modified().unwrap(), before);
}

#[test]
fn bad_configs_name_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |methods: &str| {
        let cfg = config(tmp.path(), methods);
        let o = fairnc(&["experiment", "--config", cfg.to_str().unwrap(), "--output", tmp.path().join("o").to_str().unwrap()]);
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let e = run("none = [0]\nfancy = [0]");
    assert!(e.contains("grid.toml:7: unknown method \"fancy\""), "{e}");
    let e = run("none = [10]");
    assert!(e.contains("grid.toml:6: method \"none\" trains nothing"), "{e}");
    let e = run("none = [0]\n[glue]\ntasks = [\"sst2\", \"mnli\"]\nglue_dir = \".\"");
    assert!(e.contains("unknown GLUE task \"mnli\"") && e.contains("grid.toml:8"), "{e}");
    let cfg = tmp.path().join("m.toml");
    std::fs::write(&cfg, "name = \"x\"\nmodels = [\"no/such/model\"]\nseeds = [0]\n[methods]\nnone = [0]\n").unwrap();
    let o = fairnc(&["experiment", "--config", cfg.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("m.toml:2: model \"no/such/model\""), "{e}");
    std::fs::write(&cfg, "name = \"x\"\nmodels = [\"a\"\n").unwrap();
    let o = fairnc(&["experiment", "--config", cfg.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("m.toml:"), "{}", String::from_utf8_lossy(&o.stderr));
}
