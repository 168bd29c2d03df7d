//! Bad input, as a hostile user types it: every case exits non-zero with one line naming the
//! flag, file or step (never a panic), and nothing a user keeps is lost.

mod common;

use common::*;
use std::path::Path;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Runs `args` and checks the failure: non-zero exit, no panic, one line holding every needle.
/// Returns the line.
fn refused(args: &[&str], needles: &[&str]) -> String {
    refused_env(args, needles, &[])
}

fn refused_env(args: &[&str], needles: &[&str], env: &[(&str, &Path)]) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fairnc"));
    cmd.args(args).env("FAIRNC_NO_PROGRESS", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    let err = stderr(&o);
    assert!(!o.status.success(), "{args:?} succeeded: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    // Warnings may precede it; the error itself is the last line, and only one starts with "error".
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{args:?}: not one error line: {err}");
    assert_eq!(err.trim_end().lines().last(), Some(errors[0]), "{args:?}: the error is not the last line: {err}");
    for n in needles {
        assert!(errors[0].contains(n), "{args:?}: {n:?} not in {:?}", errors[0]);
    }
    errors[0].to_string()
}

fn ok(args: &[&str]) -> std::process::Output {
    let o = fairnc(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    o
}

fn corpus() -> String {
    fixture("collapse/corpus.txt").display().to_string()
}

/// Every numeric flag out of range is refused while parsing, naming the flag: before the
/// fix, `--batch-size 0` panicked (division by zero) and `--lr -1` trained by gradient ascent.
#[test]
fn numeric_flags_out_of_range_are_refused_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out").display().to_string();
    let bert = model_dir("bert").display().to_string();
    let glue_dir = tmp.path().display().to_string();
    let file = tmp.path().join("in.txt").display().to_string();
    std::fs::write(&file, "the doctor said that he would be late .\n").unwrap();
    let debias = |flag: &str, value: &str| {
        vec![
            "debias".to_string(),
            "--model".into(),
            bert.clone(),
            "--method".into(),
            "cda".into(),
            "--output".into(),
            out.clone(),
            flag.into(),
            value.into(),
        ]
    };
    let adapt = |flag: &str, value: &str| {
        vec![
            "adapt".to_string(),
            "--model".into(),
            bert.clone(),
            "--output".into(),
            out.clone(),
            flag.into(),
            value.into(),
        ]
    };
    let glue = |flag: &str, value: &str| {
        vec![
            "glue".to_string(),
            "--model".into(),
            bert.clone(),
            "--glue-dir".into(),
            glue_dir.clone(),
            "--output".into(),
            out.clone(),
            flag.into(),
            value.into(),
        ]
    };
    let collapse = |flag: &str, value: &str| {
        vec![
            "collapse".to_string(),
            "--model".into(),
            bert.clone(),
            "--corpus".into(),
            corpus(),
            "--output".into(),
            out.clone(),
            flag.into(),
            value.into(),
        ]
    };
    let hidden = |flag: &str, value: &str| {
        vec![
            "hidden".to_string(),
            "--model".into(),
            bert.clone(),
            "--input".into(),
            file.clone(),
            "--output".into(),
            format!("{out}.safetensors"),
            flag.into(),
            value.into(),
        ]
    };
    let eval = |flag: &str, value: &str| {
        vec![
            "eval".to_string(),
            "--model".into(),
            bert.clone(),
            "--output".into(),
            out.clone(),
            flag.into(),
            value.into(),
        ]
    };
    let mut cases: Vec<Vec<String>> = Vec::new();
    for (flag, values) in [
        ("--batch-size", vec!["0", "-1"]),
        ("--lr", vec!["0", "-1", "nan", "inf"]),
        ("--nc3", vec!["-0.5", "nan", "inf"]),
        ("--weight-decay", vec!["-0.01", "nan"]),
        ("--max-grad-norm", vec!["0", "-1", "inf"]),
        ("--grad-accum", vec!["0"]),
        ("--max-len", vec!["0", "1"]),
        ("--max-texts", vec!["0"]),
        ("--steps", vec!["0"]),
        ("--checkpoint-every", vec!["0"]),
    ] {
        cases.extend(values.iter().map(|v| debias(flag, v)));
    }
    for (flag, v) in [("--batch-size", "0"), ("--steps", "0"), ("--lr", "0"), ("--lr", "-1"), ("--head-lr-scale", "0")]
    {
        cases.push(adapt(flag, v));
    }
    for (flag, v) in
        [("--batch-size", "0"), ("--epochs", "0"), ("--lr", "-0.00002"), ("--max-len", "1"), ("--max-train", "0")]
    {
        cases.push(glue(flag, v));
    }
    for (flag, v) in [
        ("--heldout", "0"),
        ("--heldout", "1"),
        ("--heldout", "1.5"),
        ("--heldout", "-0.2"),
        ("--heldout", "nan"),
        ("--shard", "3/3"),
        ("--shard", "0/0"),
        ("--shard", "1"),
        ("--min-count", "0"),
        ("--block", "0"),
        ("--max-texts", "0"),
        ("--max-len", "1"),
        ("--batch-size", "0"),
        ("--cdnv-power", "3"),
    ] {
        cases.push(collapse(flag, v));
    }
    for (flag, v) in [("--max-len", "0"), ("--max-len", "1"), ("--batch-size", "0")] {
        cases.push(hidden(flag, v));
    }
    for (flag, v) in [("--crows-limit", "0"), ("--stereoset-limit", "0"), ("--batch-size", "0")] {
        cases.push(eval(flag, v));
    }
    cases.push(vec![
        "fill-mask".into(),
        "--model".into(),
        bert.clone(),
        "the [MASK] is late .".into(),
        "--top-k".into(),
        "0".into(),
    ]);
    cases.push(vec![
        "audit".into(),
        "--model".into(),
        bert.clone(),
        "--output".into(),
        out.clone(),
        "--max-texts".into(),
        "0".into(),
    ]);
    for args in &cases {
        // The flag under test is the last but one.
        let flag = args[args.len() - 2].as_str();
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        // clap: "invalid value 'X' for '--flag <FLAG>': <reason>".
        refused(&a, &[&format!("'{flag} <"), "invalid value"]);
    }
    // A negative value reaches the flag's check instead of reading as an unknown option.
    let line = refused(&debias("--lr", "-1").iter().map(String::as_str).collect::<Vec<_>>(), &["--lr"]);
    assert!(line.contains("greater than 0"), "{line}");
    refused(
        &["debias", "--model", &bert, "--method", "cda", "--output", &out, "--lr=-inf"],
        &["'--lr <", "finite number greater than 0"],
    );
    // An exponent is not a "negative number" to clap: the value still reaches the check.
    refused(
        &["debias", "--model", &bert, "--method", "cda", "--output", &out, "--lr", "-2e-5"],
        &["'--lr <", "finite number greater than 0"],
    );
    // Nothing was created for any of them.
    assert!(!Path::new(&out).exists());
}

/// Checks that need two flags, and clap's own errors, in one line.
#[test]
fn flag_combinations_and_usage_errors_are_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out").display().to_string();
    let bert = model_dir("bert").display().to_string();
    refused(
        &["debias", "--model", &bert, "--method", "cda", "--steps", "10", "--warmup", "11", "--output", &out],
        &["--warmup 11 is more than --steps 10"],
    );
    // adapt's default warm-up (50 steps) with a shorter run.
    refused(&["adapt", "--model", &bert, "--steps", "20", "--output", &out], &["--warmup 50 is more than --steps 20"]);
    refused(&["debias", "--model", &bert, "--method", "cda"], &["required", "--output"]);
    refused(
        &["debias", "--model", &bert, "--method", "cda", "--resume", "--overwrite", "--output", &out],
        &["--overwrite", "--resume"],
    );
    let file = tmp.path().join("file");
    std::fs::write(&file, "keep").unwrap();
    refused(
        &["debias", "--model", &bert, "--method", "cda", "--output", file.to_str().unwrap()],
        &["--output", "is a file, not a directory"],
    );
    refused(
        &["hidden", "--model", &bert, "--input", file.to_str().unwrap(), "--output", tmp.path().to_str().unwrap()],
        &["--output", "is a directory", "hidden.safetensors"],
    );
    assert!(!Path::new(&out).exists());
}

/// A debias directory: a killed run is told to --resume, a finished one to --overwrite, other
/// settings are named; --overwrite removes only the run's own files and refuses a directory
/// that is not a run (before the fix it deleted the whole directory).
#[test]
fn debias_output_directories_are_never_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = out.to_str().unwrap();
    let bert = model_dir("bert").display().to_string();
    let c = corpus();
    let args = [
        "debias",
        "--model",
        &bert,
        "--method",
        "cda",
        "--corpus",
        &c,
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--checkpoint-every",
        "1",
        "--output",
        o,
    ];
    ok(&args);
    assert!(out.join("model/config.json").exists() && out.join("loss.png").exists());
    refused(&args, &[o, "finished run with the same settings", "--overwrite"]);
    // A killed run has checkpoints but no model yet.
    std::fs::remove_dir_all(out.join("model")).unwrap();
    refused(&args, &[o, "unfinished run with the same settings", "pass --resume"]);
    let mut other = args.to_vec();
    other.extend(["--lr", "1e-4"]);
    refused(&other, &[o, "other settings", "`lr` was 0.00002, now 0.0001"]);

    // --overwrite keeps what the run did not write.
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    std::fs::create_dir_all(out.join("data")).unwrap();
    std::fs::write(out.join("data/x.csv"), "1").unwrap();
    std::fs::write(out.join("log.jsonl"), "{\"step\": 99}\n").unwrap();
    let mut again = other.clone();
    again.push("--overwrite");
    ok(&again);
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
    assert_eq!(std::fs::read_to_string(out.join("data/x.csv")).unwrap(), "1");
    // The stale log was replaced, not appended to.
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    let steps: Vec<u64> =
        log.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, [1, 2], "{log}");
    assert!(out.join("model/config.json").exists());

    // A directory that is not a run is refused, --overwrite or not, and left as it was.
    let mine = tmp.path().join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("thesis.tex"), "years").unwrap();
    let m = mine.to_str().unwrap();
    for extra in [&[][..], &["--overwrite"][..]] {
        let mut a = args.to_vec();
        *a.last_mut().unwrap() = m;
        a.extend_from_slice(extra);
        refused(&a, &[m, "not a debias run", "thesis.tex"]);
    }
    assert_eq!(std::fs::read_to_string(mine.join("thesis.tex")).unwrap(), "years");
    assert_eq!(std::fs::read_dir(&mine).unwrap().count(), 1);
}

/// The README: a NaN or infinite loss stops the run naming the step and the term. A learning
/// rate of 1e30 sends the weights to ±1e30 after one step; the second forward pass overflows.
#[test]
fn a_diverging_run_names_the_step_and_the_term() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let bert = model_dir("bert").display().to_string();
    let c = corpus();
    let line = refused(
        &[
            "debias",
            "--model",
            &bert,
            "--method",
            "cda",
            "--corpus",
            &c,
            "--steps",
            "4",
            "--batch-size",
            "4",
            "--lr",
            "1e30",
            "--output",
            out.to_str().unwrap(),
        ],
        &["non-finite", "at step 2"],
    );
    assert!(line.contains("(terms: mlm") || line.contains("(parameters: "), "{line}");
    assert!(!out.join("model").exists());
}

/// `collapse` into a directory holding another finished run refuses without --overwrite
/// (before the fix it silently replaced the results); the same run again reuses its statistics.
#[test]
fn collapse_refuses_to_replace_another_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("nc");
    let o = out.to_str().unwrap();
    let bert = model_dir("bert").display().to_string();
    let gpt2 = model_dir("gpt2").display().to_string();
    let c = corpus();
    let base = ["collapse", "--model", &bert, "--corpus", &c, "--output", o];
    ok(&base);
    let first = std::fs::read(out.join("collapse.json")).unwrap();
    ok(&base);
    assert_eq!(
        std::fs::read(out.join("collapse.json")).unwrap(),
        first,
        "the same run again must give the same result"
    );
    let mut p2 = base.to_vec();
    p2.extend(["--cdnv-power", "2"]);
    refused(&p2, &[o, "finished collapse run with other settings", "metric", "--overwrite"]);
    let other = ["collapse", "--model", &gpt2, "--corpus", &c, "--output", o];
    refused(&other, &[o, "other settings", "model"]);
    assert_eq!(std::fs::read(out.join("collapse.json")).unwrap(), first);
    let mut replace = other.to_vec();
    replace.push("--overwrite");
    ok(&replace);
    assert_ne!(std::fs::read(out.join("collapse.json")).unwrap(), first);

    // Shards: another shard's statistics are not replaced either.
    let s = tmp.path().join("s");
    let s = s.to_str().unwrap();
    ok(&["collapse", "--model", &bert, "--corpus", &c, "--block", "20", "--shard", "0/2", "--output", s]);
    refused(
        &["collapse", "--model", &bert, "--corpus", &c, "--block", "20", "--shard", "1/2", "--output", s],
        &[s, "stats.safetensors of another computation"],
    );
    // And a merge does not write over a different run.
    refused(&["collapse", "merge", "--output", o, s], &[o, "--overwrite"]);
}

/// A plot cut short by a full disk leaves the previous plot (or none), never a truncated file
/// or a temporary one.
#[test]
fn plots_are_written_atomically() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("nc");
    let o = out.to_str().unwrap();
    let bert = model_dir("bert").display().to_string();
    let c = corpus();
    let args = ["collapse", "--model", &bert, "--corpus", &c, "--output", o];
    ok(&args);
    let png = std::fs::read(out.join("nc3_cosines.png")).unwrap();
    let svg = std::fs::read(out.join("nc3_cosines.svg")).unwrap();
    for name in ["nc3_cosines.png", "nc3_cosines.svg"] {
        refused_env(
            &args,
            &[name, "cannot write", "No space left on device"],
            &[("FAIRNC_DISK_FULL_UNDER", &out.join(name))],
        );
        assert_eq!(std::fs::read(out.join("nc3_cosines.png")).unwrap(), png);
        assert_eq!(std::fs::read(out.join("nc3_cosines.svg")).unwrap(), svg);
        let left: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }
    // A first write that fails leaves no plot at all.
    let fresh = tmp.path().join("fresh");
    refused_env(
        &["collapse", "--model", &bert, "--corpus", &c, "--output", fresh.to_str().unwrap()],
        &["nc3_cosines.png", "No space left on device"],
        &[("FAIRNC_DISK_FULL_UNDER", &fresh.join("nc3_cosines.png"))],
    );
    assert!(!fresh.join("nc3_cosines.png").exists());
}
