//! GLUE: a tiny model learns an easy synthetic task through `fairnc glue` (far above chance),
//! pairs and regression run end to end, `--compare` puts a base beside, and bad task files
//! fail with the file named. Metric values are tested in `util::stats`.

mod common;

use common::*;
use std::path::Path;

const POS: [&str; 4] = ["doctor", "teacher", "farmer", "engineer"];
const NEG: [&str; 4] = ["nurse", "librarian", "student", "banker"];
const REST: [&str; 6] = ["wrote code", "drank coffee", "went home", "took the phone", "said that", "was late"];

fn synthetic(dir: &Path) {
    let sst = dir.join("SST-2");
    std::fs::create_dir_all(&sst).unwrap();
    let mut k = 0;
    for (split, n) in [("train", 96), ("dev", 48)] {
        let mut s = String::from("sentence\tlabel\n");
        for _ in 0..n {
            let label = k % 2;
            let who = if label == 1 { POS[(k / 2) % 4] } else { NEG[(k / 2) % 4] };
            s.push_str(&format!("the {who} {}\t{label}\n", REST[(k * 7) % 6]));
            k += 1;
        }
        std::fs::write(sst.join(format!("{split}.tsv")), s).unwrap();
    }
    // STS-B: a pair scores 5 when both sentences name the same person, else 0.
    let sts = dir.join("STS-B");
    std::fs::create_dir_all(&sts).unwrap();
    for split in ["train", "dev"] {
        let mut s = String::from("index\tgenre\tsentence1\tsentence2\tscore\n");
        for i in 0..24 {
            let a = POS[i % 4];
            let b = if i % 2 == 0 { a } else { NEG[i % 4] };
            s.push_str(&format!(
                "{i}\tx\tthe {a} went home\tthe {b} was late\t{}\n",
                if i % 2 == 0 { "5.000" } else { "0.000" }
            ));
        }
        std::fs::write(sts.join(format!("{split}.tsv")), s).unwrap();
    }
}

#[test]
fn a_tiny_model_learns_an_easy_task_and_the_report_compares() {
    let tmp = tempfile::tempdir().unwrap();
    let glue = tmp.path().join("glue");
    synthetic(&glue);
    let bert = model_dir("bert").display().to_string();
    let out = tmp.path().join("out");
    let o = fairnc(&[
        "glue",
        "--model",
        &bert,
        "--glue-dir",
        glue.to_str().unwrap(),
        "--tasks",
        "sst2,stsb",
        "--seeds",
        "0,1",
        "--epochs",
        "8",
        "--lr",
        "3e-3",
        "--batch-size",
        "16",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("glue.json")).unwrap()).unwrap();
    let tasks = v["model"]["tasks"].as_array().unwrap();
    let acc = tasks[0]["mean"]["accuracy"].as_f64().unwrap();
    assert!(acc >= 0.9, "synthetic SST-2 accuracy {acc}");
    assert_eq!(tasks[0]["runs"].as_array().unwrap().len(), 2);
    assert!(tasks[1]["mean"]["pearson"].as_f64().unwrap().is_finite());
    let md = std::fs::read_to_string(out.join("glue.md")).unwrap();
    assert!(md.contains("| sst2 | accuracy |") && md.contains("| stsb | spearman |"), "{md}");

    // A finished run is reused; --compare with that directory adds the base column.
    let out2 = tmp.path().join("out2");
    let o = fairnc(&[
        "glue",
        "--model",
        &bert,
        "--glue-dir",
        glue.to_str().unwrap(),
        "--tasks",
        "sst2",
        "--seeds",
        "0",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--compare",
        out.to_str().unwrap(),
        "--output",
        out2.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(out2.join("glue.md")).unwrap();
    assert!(md.contains("(base) | Δ |"), "{md}");
}

#[test]
fn bad_glue_input_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let glue = tmp.path().join("glue");
    synthetic(&glue);
    let bert = model_dir("bert").display().to_string();
    let run = |tasks: &str| {
        let o = fairnc(&[
            "glue",
            "--model",
            &bert,
            "--glue-dir",
            glue.to_str().unwrap(),
            "--tasks",
            tasks,
            "--seeds",
            "0",
            "--epochs",
            "1",
            "--output",
            tmp.path().join("o").to_str().unwrap(),
        ]);
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    assert!(run("rte").contains("no rte task directory"));
    assert!(run("mnli").contains("unknown GLUE task \"mnli\""));
    std::fs::write(glue.join("SST-2/dev.tsv"), "sentence\tlabel\nthe doctor\t7\n").unwrap();
    let e = run("sst2");
    assert!(e.contains("SST-2/dev.tsv:2: label \"7\" is not one of 0, 1"), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "{e}");
}

/// The shared GLUE copies parse: every task's train and dev (QNLI has dev only), CoLA without a
/// header, MRPC with its byte-order mark.
#[test]
fn shared_glue_data_parses() {
    use fairnc::data::glue::Task;
    let dir = shared_data().join("glue/glue_data");
    assert!(
        dir.is_dir(),
        "{}: missing; this test needs the shared GLUE copies (the GLUE benchmark's glue_data/ folder, one directory per task)",
        dir.display()
    );
    for task in Task::ALL {
        for split in ["train", "dev"] {
            let path = task.split_path(&dir, split);
            // The shared copy of QNLI has its dev split only; every other split must be there.
            if task == Task::Qnli && split == "train" {
                assert!(!path.exists(), "{}: now present; parse it here too", path.display());
                continue;
            }
            assert!(path.is_file(), "{}: missing from the shared GLUE copies", path.display());
            let n = task.load(&dir, split).unwrap_or_else(|e| panic!("{e:#}")).len();
            eprintln!("{} {split}: {n}", task.name());
            assert!(n > 0);
        }
    }
    for (task, n) in [(Task::Cola, 1043), (Task::Sst2, 872), (Task::Mrpc, 408), (Task::Rte, 277), (Task::Stsb, 1500)] {
        assert_eq!(task.load(&dir, "dev").unwrap().len(), n, "{}", task.name());
    }
}

/// Every family fine-tunes on a pair task (segment ids where the model has them; GPT-2 reads
/// its last real token) and a single-sentence task, with finite scores.
#[test]
fn every_family_runs_pairs_and_singles() {
    let tmp = tempfile::tempdir().unwrap();
    let glue = tmp.path().join("glue");
    synthetic(&glue);
    // The decoders pool their last token, as GPT-2 does.
    for family in FAMILIES.into_iter().chain(["llama", "gpt_neox", "opt"]) {
        let out = tmp.path().join(family);
        let o = fairnc(&[
            "glue",
            "--model",
            model_dir(family).to_str().unwrap(),
            "--glue-dir",
            glue.to_str().unwrap(),
            "--tasks",
            "sst2,stsb",
            "--seeds",
            "0",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--output",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{family}: {}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("glue.json")).unwrap()).unwrap();
        let tasks = v["model"]["tasks"].as_array().unwrap();
        assert!(tasks[0]["mean"]["accuracy"].as_f64().unwrap().is_finite(), "{family}");
        // The predicted scores vary, so both correlations are numbers; with one seed the std
        // over seeds is undefined: null, not 0.
        let stsb = &tasks[1];
        for metric in ["pearson", "spearman"] {
            assert!(
                stsb["mean"][metric].as_f64().is_some_and(|r| (-1.0..=1.0).contains(&r)),
                "{family} {metric}: {stsb}"
            );
            assert_eq!(stsb["std"].get(metric), Some(&serde_json::Value::Null), "{family} {metric}: {stsb}");
        }
        assert_eq!(tasks[0]["std"].get("accuracy"), Some(&serde_json::Value::Null), "{family}: {}", tasks[0]);
    }
}

/// A correlation that does not exist (every gold score of the dev split equal) is reported as
/// null, in the run and in the mean, not as a number.
#[test]
fn undefined_correlation_is_null() {
    let tmp = tempfile::tempdir().unwrap();
    let glue = tmp.path().join("glue");
    synthetic(&glue);
    let mut dev = String::from("index\tgenre\tsentence1\tsentence2\tscore\n");
    for i in 0..8 {
        dev.push_str(&format!("{i}\tx\tthe {} went home\tthe {} was late\t2.500\n", POS[i % 4], NEG[i % 4]));
    }
    std::fs::write(glue.join("STS-B/dev.tsv"), dev).unwrap();
    let out = tmp.path().join("out");
    let o = fairnc(&[
        "glue",
        "--model",
        model_dir("bert").to_str().unwrap(),
        "--glue-dir",
        glue.to_str().unwrap(),
        "--tasks",
        "stsb",
        "--seeds",
        "0",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("glue.json")).unwrap()).unwrap();
    let stsb = &v["model"]["tasks"][0];
    for metric in ["pearson", "spearman"] {
        assert_eq!(stsb["mean"].get(metric), Some(&serde_json::Value::Null), "{metric}: {stsb}");
        assert_eq!(stsb["runs"][0]["metrics"].get(metric), Some(&serde_json::Value::Null), "{metric}: {stsb}");
    }
}

/// A rerun into the same output with another lr or GLUE directory is refused, naming the run
/// directory and the setting; `--overwrite` redoes it. The library refuses a batch size of 0
/// (it divided by zero) and a seed listed twice, whatever the command line checked.
#[test]
fn changed_settings_are_refused_or_redone_and_bad_settings_are_errors() {
    use fairnc::bench::glue::{GlueConfig, GlueSettings, TaskRun};
    use fairnc::data::glue::Task;
    use fairnc::util::progress::Silent;
    let tmp = tempfile::tempdir().unwrap();
    let glue = tmp.path().join("glue");
    synthetic(&glue);
    let other = tmp.path().join("glue2");
    synthetic(&other);
    let bert = model_dir("bert").display().to_string();
    let out = tmp.path().join("out");
    let run = |lr: &str, dir: &Path, extra: &[&str]| {
        let mut args = vec![
            "glue",
            "--model",
            &bert,
            "--glue-dir",
            dir.to_str().unwrap(),
            "--tasks",
            "sst2",
            "--seeds",
            "0",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--lr",
            lr,
            "--output",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        fairnc(&args)
    };
    let o = run("3e-3", &glue, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let result = out.join("runs/sst2-seed0/result.json");
    let before = std::fs::read_to_string(&result).unwrap();
    let stamp = std::fs::metadata(&result).unwrap().modified().unwrap();
    for (lr, dir, want) in [("1e-3", &glue, "`lr` was 0.003, now 0.001"), ("3e-3", &other, "`glue_dir` was ")] {
        let o = run(lr, dir, &[]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{lr}: reused the old result");
        assert!(
            e.contains("runs/sst2-seed0: this run was made with other settings: ")
                && e.contains(want)
                && e.contains("pass --overwrite"),
            "{e}"
        );
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        assert_eq!(std::fs::metadata(&result).unwrap().modified().unwrap(), stamp, "a refused rerun changes nothing");
    }
    // The same settings reuse the run; --overwrite redoes a changed one.
    assert!(run("3e-3", &glue, &[]).status.success());
    assert_eq!(std::fs::read_to_string(&result).unwrap(), before);
    let o = run("1e-3", &glue, &["--overwrite"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_ne!(std::fs::metadata(&result).unwrap().modified().unwrap(), stamp, "redone");
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("runs/sst2-seed0/settings.json")).unwrap()).unwrap();
    assert_eq!(recorded["lr"].as_f64(), Some(1e-3));

    let dir = model_dir("bert");
    let name = dir.to_str().unwrap();
    let config = |settings: GlueSettings, seeds: &[u64]| GlueConfig {
        glue_dir: glue.clone(),
        tasks: vec![Task::Sst2],
        seeds: seeds.to_vec(),
        settings,
    };
    let zero = GlueSettings { batch_size: 0, epochs: 1, ..GlueSettings::default() };
    let e = fairnc::bench::glue::run(name, &config(zero.clone(), &[0]), &tmp.path().join("zero"), false, &Silent)
        .unwrap_err();
    assert_eq!(format!("{e:#}"), "GLUE settings: batch size must be at least 1");
    let job =
        TaskRun { model_name: "bert", model_dir: &dir, glue_dir: &glue, task: Task::Sst2, seed: 0, settings: &zero };
    let e = job.run(&tmp.path().join("zero"), false, &Silent).unwrap_err();
    assert_eq!(format!("{e:#}"), "GLUE settings: batch size must be at least 1");
    let nan = GlueSettings { lr: f64::NAN, ..GlueSettings::default() };
    assert!(
        format!(
            "{:#}",
            fairnc::bench::glue::run(name, &config(nan, &[0]), &tmp.path().join("nan"), false, &Silent).unwrap_err()
        )
        .contains("lr must be a finite number above 0")
    );
    let e = fairnc::bench::glue::run(
        name,
        &config(GlueSettings::default(), &[0, 1, 0]),
        &tmp.path().join("dup"),
        false,
        &Silent,
    )
    .unwrap_err();
    assert_eq!(format!("{e:#}"), "seed 0 is listed twice: each seed is one run, counted once");
    assert!(
        !tmp.path().join("zero").exists() && !tmp.path().join("dup").exists(),
        "nothing written for refused settings"
    );
}
