//! Where a model runs and in which float type: `--device cpu|cuda[:N]|metal` and
//! `--dtype f32|bf16|f16`, and the same as stage-config fields (`device = "cuda:0"`).
//!
//! A GPU device needs a binary built with the matching Cargo feature (`cuda`, `metal`); asking
//! for one without it is refused while the value is parsed, with how to rebuild.

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A device by name: parsed (and checked against the build's features) before anything loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    #[default]
    Cpu,
    /// A CUDA GPU by ordinal (`cuda` = `cuda:0`).
    Cuda(usize),
    Metal,
}

const EXPECTED: &str = "expected cpu, cuda, cuda:N or metal";

impl std::str::FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let spec = match s.trim() {
            "cpu" => DeviceSpec::Cpu,
            "cuda" => DeviceSpec::Cuda(0),
            "metal" => DeviceSpec::Metal,
            other => match other.strip_prefix("cuda:") {
                Some(n) => DeviceSpec::Cuda(
                    n.parse().map_err(|_| format!("expected a GPU number after \"cuda:\" (got {n:?})"))?,
                ),
                None => return Err(format!("{EXPECTED} (got {other:?})")),
            },
        };
        spec.check_built()?;
        Ok(spec)
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceSpec::Metal => write!(f, "metal"),
        }
    }
}

impl DeviceSpec {
    /// Refuses a GPU this binary has no support for, saying how to rebuild.
    fn check_built(self) -> Result<(), String> {
        let missing = match self {
            DeviceSpec::Cuda(_) if !cfg!(feature = "cuda") => Some(("CUDA", "cuda")),
            DeviceSpec::Metal if !cfg!(feature = "metal") => Some(("Metal", "metal")),
            _ => None,
        };
        match missing {
            Some((name, feature)) => Err(format!(
                "this binary was built without {name} support; rebuild with `cargo build --release --features {feature}`"
            )),
            None => Ok(()),
        }
    }

    /// The candle device (opening the GPU).
    pub fn device(self) -> Result<Device> {
        self.check_built().map_err(|e| anyhow::anyhow!("device {self}: {e}"))?;
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => Device::new_cuda(n).with_context(|| format!("device {self}: cannot open the GPU")),
            DeviceSpec::Metal => Device::new_metal(0).with_context(|| format!("device {self}: cannot open the GPU")),
        }
    }
}

/// The float type of the weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    #[default]
    F32,
    Bf16,
    F16,
}

impl Dtype {
    pub fn dtype(self) -> DType {
        match self {
            Dtype::F32 => DType::F32,
            Dtype::Bf16 => DType::BF16,
            Dtype::F16 => DType::F16,
        }
    }
}

/// [`crate::model::LoadOptions`] with the device and dtype of a stage config.
pub fn load_options(device: DeviceSpec, dtype: Dtype, seed: u64) -> Result<crate::model::LoadOptions> {
    Ok(crate::model::LoadOptions { device: device.device()?, dtype: dtype.dtype(), seed, ..Default::default() })
}

/// [`crate::model::LanguageModel::load`], refusing a dtype the loader did not give the weights
/// (a loader that keeps f32 whatever it is asked would otherwise measure f32 under a bf16 label).
pub fn load(dir: &std::path::Path, opts: &crate::model::LoadOptions) -> Result<crate::model::LanguageModel> {
    let model = crate::model::LanguageModel::load(dir, opts)?;
    let got = model.classifier().dtype();
    if got != opts.dtype {
        anyhow::bail!(
            "{}: --dtype {}: the weights were loaded as {} instead",
            dir.display(),
            format!("{:?}", opts.dtype).to_lowercase(),
            format!("{got:?}").to_lowercase()
        );
    }
    Ok(model)
}

/// `--device` and `--dtype`, for every command that loads a model.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub struct RuntimeArgs {
    /// Where the model runs: cpu, cuda (= cuda:0), cuda:N or metal (GPUs need a binary built
    /// with `--features cuda` / `--features metal`).
    #[arg(long, default_value = "cpu", value_parser = |s: &str| s.parse::<DeviceSpec>())]
    pub device: DeviceSpec,
    /// Float type of the weights and activations.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: Dtype,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_print_back() {
        assert_eq!("cpu".parse(), Ok(DeviceSpec::Cpu));
        for (s, shown) in [("cpu", "cpu"), ("cuda", "cuda:0"), ("cuda:3", "cuda:3"), ("metal", "metal")] {
            match s.parse::<DeviceSpec>() {
                Ok(d) => assert_eq!(d.to_string(), shown),
                // Only a GPU this build lacks is refused, and the message says how to rebuild.
                Err(e) => assert!(s != "cpu" && e.contains("built without") && e.contains("--features"), "{s}: {e}"),
            }
        }
        assert_eq!(serde_json::to_value(DeviceSpec::Cpu).unwrap(), "cpu");
        assert_eq!(serde_json::from_value::<DeviceSpec>("cpu".into()).unwrap(), DeviceSpec::Cpu);
    }

    #[test]
    fn a_bad_device_says_what_is_expected() {
        assert_eq!("tpu".parse::<DeviceSpec>().unwrap_err(), "expected cpu, cuda, cuda:N or metal (got \"tpu\")");
        assert_eq!("cuda:x".parse::<DeviceSpec>().unwrap_err(), "expected a GPU number after \"cuda:\" (got \"x\")");
        assert!("cuda:-1".parse::<DeviceSpec>().is_err());
        let e = serde_json::from_value::<DeviceSpec>("gpu".into()).unwrap_err().to_string();
        assert!(e.contains("expected cpu, cuda, cuda:N or metal"), "{e}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_rebuild() {
        assert_eq!(
            "cuda:1".parse::<DeviceSpec>().unwrap_err(),
            "this binary was built without CUDA support; rebuild with `cargo build --release --features cuda`"
        );
        let e = DeviceSpec::Cuda(0).device().unwrap_err().to_string();
        assert!(e.starts_with("device cuda:0: this binary was built without CUDA support"), "{e}");
    }

    #[cfg(not(feature = "metal"))]
    #[test]
    fn metal_without_the_feature_says_how_to_rebuild() {
        assert!("metal".parse::<DeviceSpec>().unwrap_err().contains("without Metal support"));
    }

    #[test]
    fn dtypes_map_to_candle() {
        assert_eq!(Dtype::default().dtype(), DType::F32);
        assert_eq!(serde_json::from_value::<Dtype>("bf16".into()).unwrap().dtype(), DType::BF16);
        assert_eq!(serde_json::to_value(Dtype::F16).unwrap(), "f16");
        assert!(serde_json::from_value::<Dtype>("int8".into()).is_err());
    }
}
