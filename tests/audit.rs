//! `fairnc audit --quick` on a tiny fixture model: every part runs, and the report, the joined
//! JSON, the summary CSV and the plots have the structure users and `experiment` rely on. A
//! bare encoder gets CrowS-Pairs and StereoSet listed as skipped, with the command that fixes it.

mod common;

use common::*;

#[test]
fn quick_audit_writes_a_complete_report() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("audit");
    let bert = model_dir("bert").display().to_string();
    let o = fairnc(&["audit", "--model", &bert, "--quick", "--output", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "report.md",
        "report.html",
        "audit.json",
        "summary.csv",
        "seat_effects.png",
        "seat_effects.svg",
        "stereoset_ss.png",
        "collapse/nc3_cosines.png",
        "collapse/classes.csv",
        "eval/crows.csv",
        "eval/seat.csv",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let a: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("audit.json")).unwrap()).unwrap();
    assert!(a["collapse"]["metrics"]["duality_std"].as_f64().unwrap().is_finite());
    assert_eq!(a["eval"]["seat"].as_object().unwrap().len(), 7, "6 gender tests and the averages");
    assert!(a["eval"]["crows"]["overall"]["metric"].is_number() && a["eval"]["stereoset"]["overall"]["ss"].is_number());
    let skipped = a["skipped"].as_array().unwrap();
    let parts: Vec<&str> = skipped.iter().map(|s| s["part"].as_str().unwrap()).collect();
    assert_eq!(
        parts,
        ["StereoSet intersentence", "SEAT race and religion"],
        "the fixture has no next-sentence head, and SEAT race and religion need sent-bias's files: {skipped:?}"
    );
    assert!(skipped[0]["reason"].as_str().unwrap().contains("next-sentence head"), "{skipped:?}");
    assert!(skipped[1]["fix"].as_str().unwrap().contains("--seat-dir"), "{skipped:?}");
    // A masked LM's defaults run the peers' measures too.
    assert!(a["eval"]["becpro"]["overall"]["mean_male"].is_number(), "BEC-Pro ran");
    assert!(a["eval"]["aul"]["crows"]["overall"]["aula"].is_number(), "AUL/AULA ran");
    assert!(a["eval"]["mlm_bias"]["stereoset"]["overall"]["crr"].is_number(), "mlm-bias ran");
    // Every 50-is-unbiased score also as its distance from 50.
    let crows = a["eval"]["crows"]["overall"]["metric"].as_f64().unwrap();
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert!(csv.contains(&format!("crows,overall_from_50,{}\n", (crows - 50.0).abs())), "{csv}");
    assert!(csv.contains("stereoset,ss_from_50,") && csv.contains("stereoset,ss_gender_from_50,"), "{csv}");
    let aul = a["eval"]["aul"]["crows"]["overall"]["aul"].as_f64().unwrap();
    assert!(csv.contains(&format!("aul,crows_overall_aul_from_50,{}\n", (aul - 50.0).abs())), "{csv}");
    for row in ["mlm-bias,crows_overall_crr_from_50,", "mlm-bias,stereoset_overall_dpa,", "becpro,overall_wilcoxon_p,"]
    {
        assert!(csv.contains(row), "summary.csv lacks {row}:\n{csv}");
    }
    // The per-pair browser: the largest gaps, both sentences, largest |gap| first.
    let gaps = a["largest_gaps"]["crows"].as_array().unwrap();
    assert!(!gaps.is_empty() && gaps.len() <= fairnc::audit::GAP_ROWS);
    let abs: Vec<f64> = gaps.iter().map(|g| g["gap"].as_f64().unwrap().abs()).collect();
    assert!(abs.windows(2).all(|w| w[0] >= w[1]), "sorted by |gap|: {abs:?}");
    assert!(!gaps[0]["stereotypical"].as_str().unwrap().is_empty() && gaps[0]["anti_stereotypical"].is_string());
    assert!(!a["largest_gaps"]["stereoset"].as_array().unwrap().is_empty());
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for section in [
        "## Headline",
        "## Fairness geometry (neural collapse)",
        "## SEAT",
        "## CrowS-Pairs",
        "## StereoSet (intrasentence)",
        "## BEC-Pro",
        "## AUL / AULA",
        "## mlm-bias: CRR / CRRA / ΔP / ΔPA",
        "UNC3",
        "![SEAT effect sizes",
        "## The pairs behind the scores",
        "from 50)",
    ] {
        assert!(md.contains(section), "report lacks {section}:\n{md}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 3, "three inlined plots");
    assert!(!html.contains("src=\""), "the page is self-contained");
    assert_eq!(html.matches("<table class=\"sortable\">").count(), 2, "CrowS-Pairs and StereoSet browsers");
    assert!(html.contains("<script>") && html.contains(&format!("<td>{}</td>", gaps[0]["id"].as_str().unwrap())));
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert!(
        csv.starts_with("part,metric,value\n")
            && csv.contains("nc,duality_std,")
            && csv.contains("stereoset,icat,")
            && csv.contains("seat,avg_abs_effect_gender,"),
        "{csv}"
    );
}

#[test]
fn bare_encoder_skips_the_lm_benchmarks_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    // The fixture BERT without its MLM head: a bare encoder.
    let bare = copy_dir(&model_dir("bert"));
    let m = load(&model_dir("bert"));
    let kept: Vec<(String, candle_core::Tensor)> = m
        .params
        .vars
        .iter()
        .filter(|(n, _)| !fairnc::model::layout::is_head_param(n))
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    fairnc::model::weights::save_tensors_with_metadata(
        &kept,
        &bare.path().join("model.safetensors"),
        [("format".to_string(), "pt".to_string())].into(),
    )
    .unwrap();
    let out = tmp.path().join("a");
    let o = fairnc(&["audit", "--model", bare.path().to_str().unwrap(), "--quick", "--output", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("audit.json")).unwrap()).unwrap();
    let skipped = a["skipped"].as_array().unwrap();
    let parts: Vec<&str> = skipped.iter().map(|s| s["part"].as_str().unwrap()).collect();
    assert_eq!(
        parts,
        [
            "CrowS-Pairs",
            "StereoSet",
            "StereoSet intersentence",
            "BEC-Pro",
            "AUL/AULA",
            "mlm-bias (CRR/ΔP)",
            "SEAT race and religion"
        ],
        "{skipped:?}"
    );
    assert!(skipped[0]["fix"].as_str().unwrap().contains("fairnc adapt"));
    assert!(a["eval"]["crows"].is_null() && a["eval"]["seat"].is_object());
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("Skipped:") && md.contains("no pretrained LM head"), "{md}");
}

/// The audit loads its model once and hands it to every part (NC statistics, SEAT, CrowS-Pairs,
/// StereoSet); no part loads it again or reads another part's files back.
#[test]
fn an_audit_loads_its_model_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let bert = model_dir("bert").display().to_string();
    let cfg = fairnc::audit::AuditConfig { quick: true, ..Default::default() };
    let before = fairnc::model::loads_on_this_thread();
    let a = fairnc::audit::load_and_run(&bert, &cfg, &tmp.path().join("a"), &fairnc::util::progress::Silent).unwrap();
    assert_eq!(fairnc::model::loads_on_this_thread() - before, 1, "models loaded by one audit");
    assert!(a.eval.crows.is_some() && a.eval.stereoset.is_some() && a.eval.seat.is_some());
    assert!(a.collapse.metrics.duality_std.is_some_and(f64::is_finite));
    // The typed result is what audit.json holds.
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("a/audit.json")).unwrap()).unwrap();
    assert_eq!(written, serde_json::to_value(&a).unwrap());
}

/// `--measures` chooses the benchmarks (NC is always measured); with sent-bias's files SEAT runs
/// its race and religion tests too; a name that is not a benchmark is a one-line error naming
/// the flag.
#[test]
fn measures_choose_the_benchmarks_and_seat_files_add_race_and_religion() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("a");
    let bert = model_dir("bert").display().to_string();
    let seat = shared_data().join("seat");
    let o = fairnc(&[
        "audit",
        "--model",
        &bert,
        "--quick",
        "--measures",
        "seat",
        "--seat-dir",
        seat.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("audit.json")).unwrap()).unwrap();
    assert!(a["eval"]["crows"].is_null() && a["eval"]["stereoset"].is_null(), "not chosen");
    assert!(a["skipped"].as_array().unwrap().is_empty(), "nothing chosen was skipped");
    let avg = a["eval"]["seat"]["avg_abs_effect"].as_object().unwrap();
    let types: Vec<&String> = avg.keys().collect();
    assert_eq!(types, ["gender", "race", "religion"], "{avg:?}");
    assert!(a["collapse"]["metrics"]["duality_std"].is_number(), "NC is always measured");

    let o = fairnc(&["audit", "--model", &bert, "--measures", "seat,winobias", "--output", out.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--measures") && err.contains("winobias") && err.lines().count() == 1, "{err}");
}

/// A masked LM that keeps its next-sentence head gets StereoSet intersentence and the
/// leaderboard's combined score; a causal LM asked for a masked-only measure gets it skipped
/// with the reason, not a number.
#[test]
fn intersentence_runs_where_it_applies_and_masked_only_measures_skip_on_a_causal_lm() {
    let tmp = tempfile::tempdir().unwrap();
    let nsp = model_dir("bert_nsp").display().to_string();
    let out = tmp.path().join("nsp");
    let o = fairnc(&[
        "audit",
        "--model",
        &nsp,
        "--quick",
        "--measures",
        "stereoset,stereoset-inter",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("audit.json")).unwrap()).unwrap();
    assert!(a["skipped"].as_array().unwrap().is_empty(), "{}", a["skipped"]);
    let combined = a["eval"]["stereoset_intersentence"]["combined"]["ss"].as_f64().unwrap();
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert!(csv.contains(&format!("stereoset-inter,combined_ss,{combined}\n")), "{csv}");
    assert!(std::fs::read_to_string(out.join("report.md")).unwrap().contains("## StereoSet (intersentence)"));

    let gpt2 = model_dir("gpt2").display().to_string();
    let out = tmp.path().join("gpt2");
    let o =
        fairnc(&["audit", "--model", &gpt2, "--quick", "--measures", "aul,becpro", "--output", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("audit.json")).unwrap()).unwrap();
    let skipped = a["skipped"].as_array().unwrap();
    let parts: Vec<&str> = skipped.iter().map(|s| s["part"].as_str().unwrap()).collect();
    assert_eq!(parts, ["AUL/AULA", "BEC-Pro"], "{skipped:?}");
    assert!(skipped[0]["reason"].as_str().unwrap().contains("causal LM"), "{skipped:?}");
    assert!(a["eval"]["aul"].is_null() && a["eval"]["becpro"].is_null());
}
