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
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let cells = s["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2 * 4 * 2);
    let failed: Vec<&serde_json::Value> = cells.iter().filter(|c| c["status"] == "failed").collect();
    assert_eq!(failed.len(), 2, "the two GPT-2 ASE cells");
    assert!(failed.iter().all(|c| c["method"] == "ase" && c["error"].as_str().unwrap().contains("masked LM")));
    let deltas = s["deltas"].as_array().unwrap();
    assert!(!deltas.is_empty() && !s["correlations"].as_array().unwrap().is_empty());
    // λ = 10 and λ = 0 cells of the same seed are compared pairwise: two seeds, so two sign
    // assignments of four reach the observed |Σ| at least, and nothing can be significant.
    for d in deltas {
        assert_eq!(
            (d["n"].as_u64(), d["seeds_without_partner"].as_u64(), d["sign_flip_assignments"].as_u64()),
            (Some(2), Some(0), Some(4)),
            "{d}"
        );
        assert_eq!(d["smallest_attainable_p"].as_f64(), Some(0.5), "{d}");
        assert!(
            d["sign_flip_p"].as_f64().unwrap() >= 0.5 && d["significant"] == false && d["bootstrap_ci95"].is_null(),
            "{d}"
        );
    }
    for c in s["correlations"].as_array().unwrap() {
        // 14 finished cells: beyond the exact limit, so 100,000 seeded orders; never independent.
        assert_eq!(
            (c["n"].as_u64(), c["permutation_exact"].as_bool(), c["independent"].as_bool()),
            (Some(14), Some(false), Some(false)),
            "{c}"
        );
        assert!(c["dependence"].as_str().unwrap().contains("share 2 seeds and 2 base models"), "{c}");
        assert!(c["spearman_p"].as_f64().unwrap() > 0.0 && c["pearson_ci95"].is_array(), "{c}");
    }
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    for part in [
        "## Every configuration",
        "## What the NC3 regularizer changes",
        "## Do NC metrics track fairness?",
        "## Failed cells",
        "n = 2: the smallest attainable p is 0.5",
        "cannot be (n = 2)",
        "are not independent",
    ] {
        assert!(md.contains(part), "summary lacks {part}:\n{md}");
    }

    // The summary recomputed from cells.csv alone (as for a committed experiment) is the same.
    std::fs::copy(out.join("summary.json"), tmp.path().join("live.json")).unwrap();
    let o = fairnc(&[
        "experiment",
        "--config",
        cfg.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--summarize-only",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    for part in ["table", "deltas", "correlations"] {
        assert_eq!(again[part], s[part], "{part} differs when recomputed from cells.csv");
    }
    assert!(out.join("cells.csv").exists() && out.join("summary.html").exists());
    assert!(
        std::fs::read_dir(&out).unwrap().flatten().any(|e| e.file_name().to_string_lossy().starts_with("scatter_")
            && e.file_name().to_string_lossy().ends_with(".png"))
    );

    // Re-run: finished cells are skipped (their results untouched), failed ones retried.
    let done = out.join(format!(
        "{}/cda-l10-s1/result.json",
        cells.iter().find(|c| c["method"] == "cda").unwrap()["model"]
            .as_str()
            .unwrap()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
            .collect::<String>()
    ));
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
        let o = fairnc(&[
            "experiment",
            "--config",
            cfg.to_str().unwrap(),
            "--output",
            tmp.path().join("o").to_str().unwrap(),
        ]);
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let e = run("none = [0]\nfancy = [0]");
    assert!(e.contains("grid.toml:7: unknown method \"fancy\""), "{e}");
    let e = run("none = [10]");
    assert!(e.contains("grid.toml:6: method \"none\" trains nothing"), "{e}");
    let e = run("none = [0]\n[glue]\ntasks = [\"sst2\", \"mnli\"]\nglue_dir = \".\"");
    assert!(e.contains("unknown GLUE task \"mnli\"") && e.contains("grid.toml:8"), "{e}");
    // A grid that lists a λ twice would count its cells twice.
    let e = run("none = [0]\ncda = [0, 10, 10.0]");
    assert!(e.contains("grid.toml:7: method \"cda\" lists λ = 10 twice"), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    let e = run("none = [0]\n[glue]\ntasks = [\"sst2\", \"sst2\"]\nglue_dir = \".\"");
    assert!(e.contains("grid.toml:8: GLUE task \"sst2\" is listed twice"), "{e}");
    let e = run("none = [0]\n[glue]\ntasks = [\"sst2\"]\nglue_dir = \".\"\nepochs = 0");
    assert!(e.contains("grid.toml:10: [glue] epochs = 0: must be at least 1"), "{e}");
}

/// Every numeric setting of an experiment TOML is checked when it is read (before any cell
/// runs): `[debias] batch_size = 0` once divided by zero in the middle of the grid.
#[test]
fn bad_settings_and_duplicates_are_refused_at_load() {
    let tmp = tempfile::tempdir().unwrap();
    let bert = model_dir("bert").display().to_string();
    let run = |body: &str| {
        let cfg = tmp.path().join("g.toml");
        std::fs::write(&cfg, format!("name = \"x\"\nmodels = [\"{bert}\"]\n{body}")).unwrap();
        let o = fairnc(&[
            "experiment",
            "--config",
            cfg.to_str().unwrap(),
            "--output",
            tmp.path().join("o").to_str().unwrap(),
        ]);
        assert!(!o.status.success(), "{body}");
        let e = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
        assert!(!e.contains("panicked"), "{e}");
        e
    };
    let grid = "seeds = [0]\n[methods]\ncda = [0]\n[debias]\n";
    for (setting, want) in [
        ("batch_size = 0", "g.toml:7: [debias] batch_size = 0: must be at least 1"),
        ("steps = 0", "g.toml:7: [debias] steps = 0: must be at least 1"),
        ("max_texts = 0", "g.toml:7: [debias] max_texts = 0: must be at least 1"),
        ("max_len = 1", "g.toml:7: [debias] max_len = 1: must be at least 2"),
        ("lr = -1.0", "g.toml:7: [debias] lr = -1: must be a finite number above 0"),
        ("lr = nan", "g.toml:7: [debias] lr = NaN: must be a finite number above 0"),
        ("lr = inf", "g.toml:7: [debias] lr = inf: must be a finite number above 0"),
        ("batch_size = -4", "g.toml:7: `batch_size = -4`: "),
        ("bathc_size = 4", "g.toml:7: `bathc_size = 4`: unknown field `bathc_size`"),
    ] {
        let e = run(&format!("{grid}{setting}\n"));
        assert!(e.contains(want), "{setting}: {e}");
    }
    let e = run("seeds = [0]\n[methods]\ncda = [0]\n[audit]\nmax_texts = 0\n");
    assert!(e.contains("g.toml:7: [audit] max_texts = 0: must be at least 1"), "{e}");
    let e = run("seeds = [0, 1, 0]\n[methods]\nnone = [0]\n");
    assert!(e.contains("g.toml:3: seed 0 is listed twice"), "{e}");
    let e = run("seeds = [0]\n[methods]\nnone = [0]\n[glue]\ntasks = [\"sst2\"]\nglue_dir = \"no/such/glue\"\n");
    assert!(e.contains("g.toml: [glue] glue_dir no/such/glue: no such directory"), "{e}");
    std::fs::write(
        tmp.path().join("two.toml"),
        format!("name = \"x\"\nmodels = [\"{bert}\",\n \"{bert}\"]\nseeds = [0]\n[methods]\nnone = [0]\n"),
    )
    .unwrap();
    let o = fairnc(&[
        "experiment",
        "--config",
        tmp.path().join("two.toml").to_str().unwrap(),
        "--output",
        tmp.path().join("o").to_str().unwrap(),
    ]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("two.toml:3: model")
            && String::from_utf8_lossy(&o.stderr).contains("is listed twice"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A rerun into the same output with a changed `[debias]` setting is refused, naming the cell
/// directory and the setting, and changes nothing; `--overwrite` redoes the cells it concerns
/// (the debiased ones), not the others.
#[test]
fn changed_settings_are_refused_or_redone() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = fixture("collapse/corpus.txt").display().to_string();
    let cfg = tmp.path().join("g.toml");
    let write = |steps: u64| {
        std::fs::write(&cfg, format!("name = \"x\"\nmodels = [\"{}\"]\nseeds = [0]\n[methods]\nnone = [0]\ncda = [0]\n[debias]\nsteps = {steps}\nbatch_size = 4\ncorpus = \"{corpus}\"\n[audit]\nquick = true\nmax_texts = 50\n", model_dir("bert").display())).unwrap()
    };
    let out = tmp.path().join("out");
    let run = |extra: &[&str]| {
        let mut args = vec!["experiment", "--config", cfg.to_str().unwrap(), "--output", out.to_str().unwrap()];
        args.extend(extra);
        fairnc(&args)
    };
    write(2);
    let o = run(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cell = |id: &str| {
        out.join(std::fs::read_dir(&out).unwrap().flatten().find(|e| e.path().is_dir()).unwrap().file_name()).join(id)
    };
    let (none, cda) = (cell("none-l0-s0/result.json"), cell("cda-l0-s0/result.json"));
    let stamp = |p: &std::path::Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let (none_before, cda_before) = (stamp(&none), stamp(&cda));
    let summary_before = std::fs::read(out.join("summary.json")).unwrap();

    write(3);
    let o = run(&[]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        e.contains("cda-l0-s0: this cell was run with other settings: `[debias] steps` was 2, now 3")
            && e.contains("pass --overwrite"),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert_eq!((stamp(&none), stamp(&cda)), (none_before, cda_before), "a refused rerun changes nothing");
    assert_eq!(std::fs::read(out.join("summary.json")).unwrap(), summary_before);

    let o = run(&["--overwrite"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stamp(&none), none_before, "the none cell does not debias: its settings did not change");
    assert_ne!(stamp(&cda), cda_before, "the cda cell was redone");
    let log = std::fs::read_to_string(cell("cda-l0-s0/debias/log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 3, "the redone cell trained 3 steps afresh:\n{log}");
    // Same settings again: nothing to redo, nothing refused.
    let o = run(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stamp(&none), none_before);
    let cfg = tmp.path().join("m.toml");
    std::fs::write(&cfg, "name = \"x\"\nmodels = [\"no/such/model\"]\nseeds = [0]\n[methods]\nnone = [0]\n").unwrap();
    let o = fairnc(&["experiment", "--config", cfg.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("m.toml:2: model \"no/such/model\""), "{e}");
    std::fs::write(&cfg, "name = \"x\"\nmodels = [\"a\"\n").unwrap();
    let o = fairnc(&["experiment", "--config", cfg.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("m.toml:"), "{}", String::from_utf8_lossy(&o.stderr));
}
