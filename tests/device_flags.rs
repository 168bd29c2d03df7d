//! `--device` / `--dtype` on every command that loads a model, and as stage-config fields: a bad
//! value is a one-line error naming the flag (or the field), a GPU this build lacks says how to
//! rebuild, and cpu/f32 run as before.

mod common;

use common::*;

const COMMANDS: [&str; 10] =
    ["audit", "experiment", "glue", "debias", "adapt", "collapse", "eval", "hidden", "fill-mask", "info"];

fn one_line_error(args: &[&str]) -> String {
    let o = fairnc(args);
    assert!(!o.status.success(), "{args:?} succeeded");
    let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    err
}

#[test]
fn bad_values_name_the_flag_on_every_command() {
    for cmd in COMMANDS {
        let e = one_line_error(&[cmd, "--device", "tpu"]);
        assert!(e.contains("'--device <DEVICE>'") && e.contains("expected cpu, cuda, cuda:N or metal"), "{cmd}: {e}");
        let e = one_line_error(&[cmd, "--device", "cuda:x"]);
        assert!(e.contains("'--device <DEVICE>'") && e.contains("GPU number"), "{cmd}: {e}");
        let e = one_line_error(&[cmd, "--dtype", "int8"]);
        assert!(e.contains("'--dtype <DTYPE>'") && e.contains("f32, bf16, f16"), "{cmd}: {e}");
    }
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_says_how_to_rebuild() {
    for cmd in COMMANDS {
        let e = one_line_error(&[cmd, "--device", "cuda"]);
        assert!(e.contains("built without CUDA support") && e.contains("--features cuda"), "{cmd}: {e}");
    }
}

#[test]
fn cpu_and_f32_load_as_before() {
    let gpt2 = model_dir("gpt2");
    let o = fairnc(&["info", "--model", gpt2.to_str().unwrap(), "--device", "cpu", "--dtype", "f32", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn stage_configs_take_device_and_dtype_fields() {
    use fairnc::util::device::{DeviceSpec, Dtype};
    let mut v = serde_json::to_value(fairnc::audit::AuditConfig::default()).unwrap();
    assert_eq!((&v["device"], &v["dtype"]), (&"cpu".into(), &"f32".into()), "{v}");
    v["dtype"] = "bf16".into();
    let cfg: fairnc::audit::AuditConfig = serde_json::from_value(v.clone()).unwrap();
    assert_eq!((cfg.device, cfg.dtype), (DeviceSpec::Cpu, Dtype::Bf16));
    v["device"] = "tpu".into();
    let e = serde_json::from_value::<fairnc::audit::AuditConfig>(v).unwrap_err().to_string();
    assert!(e.contains("expected cpu, cuda, cuda:N or metal (got \"tpu\")"), "{e}");
    // Configs written before the fields existed read as cpu / f32.
    let mut old = serde_json::to_value(fairnc::train::DebiasConfig::default()).unwrap();
    old.as_object_mut().unwrap().retain(|k, _| k != "device" && k != "dtype");
    let cfg: fairnc::train::DebiasConfig = serde_json::from_value(old).unwrap();
    assert_eq!(cfg, fairnc::train::DebiasConfig::default());
    let glue = serde_json::to_value(fairnc::bench::glue::GlueConfig::default()).unwrap();
    assert_eq!(glue["settings"]["device"], "cpu", "{glue}");
}
