//! Reading checkpoint tensors (single or sharded safetensors or PyTorch `.bin`) into trainable
//! `Var`s in the compute dtype, and writing them back in the Hugging Face layout.
//!
//! Only this module and the per-family layouts in `layout.rs` know tensor names.

use super::config::{Family, ModelConfig};
use super::layout::{ParamRole, ParamSpec};
use super::tensor_data::{self, Elem, View};
use super::torch_zip::TorchZip;
use crate::util::rng::SplitMix;
use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor, Var};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// One tensor read from disk, remembered with the file it came from (for error messages).
struct RawTensor {
    tensor: Tensor,
    file: PathBuf,
}

/// Every tensor of a checkpoint, by normalised name.
pub struct TensorFiles {
    tensors: BTreeMap<String, RawTensor>,
    /// The file named in messages about the checkpoint as a whole.
    pub primary: PathBuf,
    /// What every tensor was converted to.
    dtype: DType,
}

/// Tensors that are buffers, not parameters, in some checkpoints; never loaded or saved.
fn is_buffer(name: &str) -> bool {
    name.ends_with("position_ids")
        || name.ends_with(".attn.bias")
        || name.ends_with(".attn.masked_bias")
        // GPT-NeoX's causal-mask buffers; old Llama and NeoX files store rotary frequencies.
        || name.ends_with(".attention.bias")
        || name.ends_with(".attention.masked_bias")
        || name.ends_with("rotary_emb.inv_freq")
}

/// Tensors a checkpoint may hold that the LM does not use, kept and saved back unchanged:
/// the pooler of `*Model` / `*ForPreTraining` files and BERT's next-sentence head.
fn is_tolerated_extra(name: &str) -> bool {
    let bare = name
        .split_once('.')
        .filter(|(first, _)| matches!(*first, "bert" | "roberta" | "distilbert" | "transformer" | "model" | "gpt_neox"))
        .map_or(name, |(_, rest)| rest);
    bare.starts_with("pooler.") || name.starts_with("cls.seq_relationship.")
}

/// The layer number in a tensor name such as `bert.encoder.layer.3.output.dense.weight`.
fn layer_index(name: &str) -> Option<usize> {
    let parts: Vec<&str> = name.split('.').collect();
    parts.windows(2).find(|w| matches!(w[0], "layer" | "h" | "layers")).and_then(|w| w[1].parse().ok())
}

/// The first five names and how many more.
fn first_few(names: &[&str]) -> String {
    let shown = names.iter().take(5).copied().collect::<Vec<_>>().join(", ");
    if names.len() > 5 { format!("{shown} and {} more", names.len() - 5) } else { shown }
}

/// When the file's layers disagree with the config's layer count, say so: the usual cause.
fn layer_hint(cfg: &ModelConfig, file_layers: &std::collections::BTreeSet<usize>) -> String {
    match file_layers.last() {
        Some(&last) if last + 1 != cfg.num_layers => {
            format!(" (config.json says {} layer(s); the weights have layers up to {last})", cfg.num_layers)
        }
        _ => String::new(),
    }
}

/// Old TensorFlow-converted BERT files call LayerNorm parameters gamma/beta.
fn normalise_name(name: &str) -> String {
    if let Some(stem) = name.strip_suffix(".gamma") {
        format!("{stem}.weight")
    } else if let Some(stem) = name.strip_suffix(".beta") {
        format!("{stem}.bias")
    } else {
        name.to_string()
    }
}

/// The weight files a checkpoint directory may hold, in the order transformers prefers them.
const WEIGHT_FILES: [(&str, Format); 4] = [
    ("model.safetensors", Format::Safetensors),
    ("model.safetensors.index.json", Format::SafetensorsIndex),
    ("pytorch_model.bin", Format::Torch),
    ("pytorch_model.bin.index.json", Format::TorchIndex),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Safetensors,
    SafetensorsIndex,
    Torch,
    TorchIndex,
}

impl TensorFiles {
    /// [`Self::open_as`] in f32.
    pub fn open(dir: &Path, device: &Device) -> Result<Self> {
        Self::open_as(dir, device, DType::F32)
    }

    /// Reads the first of `model.safetensors`, the shards listed in
    /// `model.safetensors.index.json`, `pytorch_model.bin` and the shards listed in
    /// `pytorch_model.bin.index.json`, converting every tensor to `dtype` (f32, bf16 or f16).
    pub fn open_as(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        super::tensor_data::check_dtype(dtype)?;
        for (name, _) in WEIGHT_FILES {
            let path = dir.join(name);
            if path.is_dir() {
                bail!("{}: is a directory; it should be the checkpoint's weights file", path.display());
            }
        }
        let Some((path, format)) =
            WEIGHT_FILES.iter().map(|(name, f)| (dir.join(name), *f)).find(|(path, _)| path.exists())
        else {
            bail!(
                "{}: no model.safetensors or model.safetensors.index.json (nor PyTorch's pytorch_model.bin or pytorch_model.bin.index.json)",
                dir.display()
            );
        };
        let files: Vec<PathBuf> = match format {
            Format::Safetensors | Format::Torch => vec![path],
            Format::SafetensorsIndex | Format::TorchIndex => {
                let text =
                    std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
                index_shards(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))?
                    .into_iter()
                    .map(|f| dir.join(f))
                    .collect()
            }
        };
        let mut tensors = BTreeMap::new();
        for file in &files {
            match format {
                Format::Safetensors | Format::SafetensorsIndex => read_safetensors(file, device, dtype, &mut tensors)?,
                Format::Torch | Format::TorchIndex => read_torch(file, device, dtype, &mut tensors)?,
            }
        }
        Ok(TensorFiles { tensors, primary: files[0].clone(), dtype })
    }

    fn has(&self, name: &str, family: Family) -> bool {
        self.tensors.contains_key(name)
            || name.strip_prefix(family.prefix()).is_some_and(|b| self.tensors.contains_key(b))
            || alias(name, family).is_some_and(|a| self.tensors.contains_key(a))
    }

    /// The distinct layer numbers the remaining tensor names mention (`layer.3.`, `h.3.`).
    fn layer_indices(&self) -> std::collections::BTreeSet<usize> {
        self.tensors.keys().filter_map(|n| layer_index(n)).collect()
    }

    /// How many tensors the checkpoint holds (buffers not counted).
    pub fn tensor_count(&self) -> usize {
        self.tensors.len()
    }

    /// The dtype the tensors (and so the parameters) are kept in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    fn describe(&self) -> String {
        self.primary.display().to_string()
    }

    /// Finds a tensor under its canonical name or without the family prefix.
    fn take(&mut self, name: &str, family: Family) -> Option<RawTensor> {
        if let Some(t) = self.tensors.remove(name) {
            return Some(t);
        }
        if let Some(t) = name.strip_prefix(family.prefix()).and_then(|b| self.tensors.remove(b)) {
            return Some(t);
        }
        self.tensors.remove(alias(name, family)?)
    }
}

/// Another name some writers give a parameter: transformers 5 calls GPT-NeoX's output head
/// `lm_head` in memory and writes `embed_out`; a checkpoint saved from the in-memory names has
/// `lm_head.weight`.
fn alias(name: &str, family: Family) -> Option<&'static str> {
    (family == Family::GptNeoX && name == "embed_out.weight").then_some("lm_head.weight")
}
/// The steps of `ParamStore::load`, in the order it runs them.
impl TensorFiles {
    /// True when the checkpoint has no LM head at all (one is created). Head parameters are
    /// all present or all absent; a half head is a broken file.
    fn head_is_absent(&self, specs: &[ParamSpec], family: Family) -> Result<bool> {
        let head: Vec<&ParamSpec> = specs.iter().filter(|s| s.role == ParamRole::Head).collect();
        let missing: Vec<&str> = head.iter().filter(|s| !self.has(&s.name, family)).map(|s| s.name.as_str()).collect();
        let absent = !head.is_empty() && missing.len() == head.len();
        if !absent && !missing.is_empty() {
            bail!("{}: LM head is incomplete, missing {}", self.describe(), missing.join(", "));
        }
        Ok(absent)
    }

    /// Every parameter the config needs is in the file (except a head that will be created).
    fn check_all_present(&self, specs: &[ParamSpec], cfg: &ModelConfig, new_head: bool) -> Result<()> {
        let created = |s: &ParamSpec| new_head && s.role == ParamRole::Head;
        let missing: Vec<&str> =
            specs.iter().filter(|s| !created(s) && !self.has(&s.name, cfg.family)).map(|s| s.name.as_str()).collect();
        if !missing.is_empty() {
            bail!(
                "{}: {} tensor(s) the config.json needs are missing: {}{}",
                self.describe(),
                missing.len(),
                first_few(&missing),
                layer_hint(cfg, &self.layer_indices())
            );
        }
        Ok(())
    }

    /// A created head is sized by the config; bounded by the checkpoint it completes, so a
    /// small file with a huge hidden size and no layers cannot make it allocate terabytes.
    fn check_created_head_fits(&self, specs: &[ParamSpec]) -> Result<()> {
        let in_file: usize = self.tensors.values().map(|t| t.tensor.elem_count()).sum();
        for s in specs.iter().filter(|s| s.role == ParamRole::Head) {
            let n = s.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if n.is_none_or(|n| n > in_file) {
                bail!(
                    "{}: has no LM head, and the one its config implies ({} {:?}) is larger than the whole checkpoint ({in_file} values)",
                    self.describe(),
                    s.name,
                    s.shape
                );
            }
        }
        Ok(())
    }

    /// Moves each parameter out of the file into a `Var` (creating the head when `new_head`),
    /// checking its shape against the spec.
    fn take_params(
        &mut self,
        specs: &[ParamSpec],
        family: Family,
        new_head: bool,
        seed: u64,
    ) -> Result<BTreeMap<String, Var>> {
        let mut rng = SplitMix::new(seed);
        let mut vars = BTreeMap::new();
        let dtype = self.dtype();
        // Tensors that share a storage in a PyTorch file share one tensor here; two parameters
        // must not share a Var (training would tie them), so the second gets a copy.
        let mut used = std::collections::HashSet::new();
        for spec in specs {
            let tensor = match spec.role {
                ParamRole::Head if new_head => spec.init.create(&spec.shape, &mut rng)?.to_dtype(dtype)?,
                _ => {
                    let raw = self
                        .take(&spec.name, family)
                        .with_context(|| format!("{}: missing tensor {}", self.describe(), spec.name))?;
                    if raw.tensor.dims() != spec.shape.as_slice() {
                        bail!(
                            "{}: tensor {} has shape {:?}, expected {:?}",
                            raw.file.display(),
                            spec.name,
                            raw.tensor.dims(),
                            spec.shape
                        );
                    }
                    raw.tensor
                }
            };
            let tensor = if used.insert(tensor.id()) { tensor } else { tensor.copy()? };
            // The readers create every tensor as a variable: this keeps its storage, no copy.
            vars.insert(spec.name.clone(), Var::from_tensor(&tensor)?);
        }
        Ok(vars)
    }

    /// The LM decoder is tied to the word embeddings: one Var. Removes a stored copy of the
    /// decoder and returns a note when it disagrees with the embeddings.
    fn take_tied_copy(&mut self, vars: &BTreeMap<String, Var>, cfg: &ModelConfig) -> Result<Option<String>> {
        let Some((tied_name, embedding_name)) = super::layout::tied_names(cfg) else { return Ok(None) };
        let Some(raw) = self.take(tied_name, cfg.family) else { return Ok(None) };
        let emb = vars[embedding_name].as_tensor();
        // A PyTorch file's tied copy shares the embeddings' storage, read once: the same tensor.
        // Otherwise an element-wise comparison, whose u8 mask is a quarter of the matrix.
        let same = raw.tensor.id() == emb.id()
            || (raw.tensor.dims() == emb.dims() && raw.tensor.eq(emb)?.min_all()?.to_scalar::<u8>()? == 1);
        Ok((!same)
            .then(|| format!("{tied_name} differs from {embedding_name}; fairnc ties them and uses the embeddings")))
    }

    /// Anything left is a tensor this configuration does not use: weights of more layers
    /// than `num_hidden_layers` says, or of another architecture. Loading them quietly would
    /// measure a different model than the file holds, so only known leftovers pass.
    fn check_no_unused(&self, cfg: &ModelConfig) -> Result<()> {
        let unused: Vec<&str> = self.tensors.keys().map(String::as_str).filter(|n| !is_tolerated_extra(n)).collect();
        if !unused.is_empty() {
            bail!(
                "{}: {} tensor(s) are not used by the model config.json describes: {}{}",
                self.describe(),
                unused.len(),
                first_few(&unused),
                layer_hint(cfg, &self.layer_indices())
            );
        }
        Ok(())
    }

    /// The tolerated leftovers, under their canonical (family-prefixed) names, to save back.
    fn take_extras(&mut self, family: Family) -> BTreeMap<String, Tensor> {
        std::mem::take(&mut self.tensors)
            .into_iter()
            .map(|(name, raw)| {
                let name = if name.starts_with(family.prefix()) || super::layout::is_head_param(&name) {
                    name
                } else {
                    format!("{}{name}", family.prefix())
                };
                (name, raw.tensor)
            })
            .collect()
    }
}

/// The shard files a `model.safetensors.index.json` (or `pytorch_model.bin.index.json`) names, sorted and without repeats. Each
/// must be a plain file name beside the index: the index may come from the network, and a
/// name such as `../../.bashrc` or `/etc/passwd` would read or (when downloading) write
/// outside the checkpoint directory.
pub fn index_shards(index_json: &str) -> Result<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(index_json).context("not valid JSON")?;
    let map = v.get("weight_map").and_then(|m| m.as_object()).context("no \"weight_map\" object")?;
    let mut shards = Vec::new();
    for (tensor, file) in map {
        let file = file.as_str().with_context(|| format!("\"weight_map\" entry {tensor} is not a file name"))?;
        check_shard_name(file).with_context(|| format!("\"weight_map\" entry {tensor}"))?;
        shards.push(file.to_string());
    }
    shards.sort();
    shards.dedup();
    if shards.is_empty() {
        bail!("\"weight_map\" lists no files");
    }
    Ok(shards)
}

/// A shard name is one path component: not empty, not `.`/`..`, no separator, not absolute.
fn check_shard_name(name: &str) -> Result<()> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !(name.len() >= 2 && name.as_bytes()[1] == b':');
    if !plain {
        bail!(
            "shard file {name:?} is not a plain file name beside the index (no directories, no \"..\", not absolute)"
        );
    }
    Ok(())
}

/// Decodes one tensor into the map of tensors, then releases its mapped pages.
fn add_tensor(
    out: &mut BTreeMap<String, RawTensor>,
    file: &Path,
    name: &str,
    view: &View,
    map: &memmap2::Mmap,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let t = tensor_data::load(view, dtype, device)
        .map_err(|p| anyhow::anyhow!("{}: tensor {name} {}", file.display(), p.describe()))?;
    tensor_data::release(map, view.bytes);
    out.insert(normalise_name(name), RawTensor { tensor: t.clone(), file: file.to_path_buf() });
    Ok(t)
}

fn read_safetensors(file: &Path, device: &Device, dtype: DType, out: &mut BTreeMap<String, RawTensor>) -> Result<()> {
    let handle = std::fs::File::open(file).with_context(|| format!("{}: cannot open", file.display()))?;
    // SAFETY: the map is read-only and dropped before this function returns; a concurrent
    // writer truncating the file is the same hazard every safetensors reader accepts.
    let mmap = unsafe { memmap2::Mmap::map(&handle) }.with_context(|| format!("{}: cannot map", file.display()))?;
    let st = safetensors::SafeTensors::deserialize(&mmap)
        .map_err(|e| anyhow::anyhow!("{}: not a valid safetensors file ({e})", file.display()))?;
    for (name, view) in st.tensors() {
        if is_buffer(&name) {
            continue;
        }
        let elem = match view.dtype() {
            safetensors::Dtype::F32 => Elem::F32,
            safetensors::Dtype::F16 => Elem::F16,
            safetensors::Dtype::BF16 => Elem::BF16,
            safetensors::Dtype::F64 => Elem::F64,
            safetensors::Dtype::I64 => Elem::I64,
            other => bail!("{}: tensor {name} has unsupported dtype {other:?}", file.display()),
        };
        let view = View { elem, bytes: view.data(), shape: view.shape(), strides: None };
        add_tensor(out, file, &name, &view, &mmap, dtype, device)?;
    }
    Ok(())
}

/// A PyTorch zip checkpoint. Tensors that view the same bytes the same way (a tied decoder
/// saved beside the embeddings) become one tensor, decoded once.
fn read_torch(file: &Path, device: &Device, dtype: DType, out: &mut BTreeMap<String, RawTensor>) -> Result<()> {
    let ckpt = TorchZip::open(file)?;
    // (storage, encoding, shape, strides, offset): what makes two entries the same values.
    type SameView<'a> = (&'a str, Elem, &'a [usize], &'a [usize], usize);
    let mut decoded: HashMap<SameView, Tensor> = HashMap::new();
    for t in &ckpt.tensors {
        if is_buffer(&t.name) {
            continue;
        }
        let elem = match &t.elem {
            Ok(elem) => *elem,
            Err(class) => {
                bail!("{}: tensor {} is stored as torch.{class}, which fairnc does not read", file.display(), t.name)
            }
        };
        let key = (t.storage.as_str(), elem, t.shape.as_slice(), t.strides.as_slice(), t.offset);
        if let Some(same) = decoded.get(&key) {
            out.insert(normalise_name(&t.name), RawTensor { tensor: same.clone(), file: file.to_path_buf() });
            continue;
        }
        let bytes =
            ckpt.storage(&t.storage).map_err(|e| anyhow::anyhow!("{}: tensor {}: {e:#}", file.display(), t.name))?;
        let view = View { elem, bytes, shape: &t.shape, strides: Some((&t.strides, t.offset)) };
        let tensor = add_tensor(out, file, &t.name, &view, &ckpt.map, dtype, device)?;
        decoded.insert(key, tensor);
    }
    Ok(())
}

/// The trainable parameters of a model, by canonical Hugging Face name.
pub struct ParamStore {
    pub vars: BTreeMap<String, Var>,
    /// Checkpoint tensors the model does not use (e.g. BERT's pooler), written back on save.
    pub extras: BTreeMap<String, Tensor>,
    /// True when the checkpoint had no LM head and one was created.
    pub new_head: bool,
    /// Notes for the user about what loading did (ignored untied decoder, unused rows...).
    pub notes: Vec<String>,
}

impl ParamStore {
    pub fn var(&self, name: &str) -> &Var {
        self.vars.get(name).unwrap_or_else(|| panic!("layout bug: parameter {name} was not loaded"))
    }

    /// Builds the parameters `specs` describe from the checkpoint's tensors: each check runs
    /// before anything is allocated that it would have refused.
    pub fn load(files: &mut TensorFiles, specs: &[ParamSpec], cfg: &ModelConfig, seed: u64) -> Result<Self> {
        let family = cfg.family;
        let new_head = files.head_is_absent(specs, family)?;
        files.check_all_present(specs, cfg, new_head)?;
        if new_head {
            files.check_created_head_fits(specs)?;
        }
        let vars = files.take_params(specs, family, new_head, seed)?;
        let mut notes = Vec::new();
        notes.extend(files.take_tied_copy(&vars, cfg)?);
        // Some files store the decoder bias twice (as `decoder.bias` too); drop the copy.
        if let Some(dup) = super::layout::duplicate_bias_name(family) {
            files.take(dup, family);
        }
        if new_head {
            notes.push("checkpoint has no LM head: created one (transform initialised, decoder tied to the embeddings, zero bias); it is not pretrained".into());
        }
        files.check_no_unused(cfg)?;
        let extras = files.take_extras(family);
        Ok(ParamStore { vars, extras, new_head, notes })
    }

    /// Writes every parameter and extra tensor (not the tied decoder copy) as safetensors with
    /// the metadata `transformers` requires, atomically (temp file, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors: Vec<(String, Tensor)> = Vec::new();
        for (name, var) in &self.vars {
            tensors.push((name.clone(), var.as_tensor().contiguous()?));
        }
        for (name, t) in &self.extras {
            tensors.push((name.clone(), t.contiguous()?));
        }
        save_tensors(&tensors, path)
    }

    pub fn num_parameters(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }
}

/// A tensor as safetensors wants to see it.
struct Bytes {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl safetensors::View for &Bytes {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Writes named tensors (f32, bf16, f16, i64 or u32) to `path` atomically with `{"format": "pt"}` metadata.
pub fn save_tensors(tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
    save_tensors_with_metadata(tensors, path, HashMap::new())
}

/// [`save_tensors`] with extra metadata entries beside `format`.
pub fn save_tensors_with_metadata(
    tensors: &[(String, Tensor)],
    path: &Path,
    mut metadata: HashMap<String, String>,
) -> Result<()> {
    let mut owned: Vec<(String, Bytes)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t.contiguous()?;
        let (dtype, data) = match t.dtype() {
            DType::F32 => (
                safetensors::Dtype::F32,
                t.flatten_all()?.to_vec1::<f32>()?.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            // A model kept in bf16 or f16 is saved so: transformers reads either.
            DType::BF16 => (
                safetensors::Dtype::BF16,
                t.flatten_all()?.to_vec1::<half::bf16>()?.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            DType::F16 => (
                safetensors::Dtype::F16,
                t.flatten_all()?.to_vec1::<half::f16>()?.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            DType::I64 => (
                safetensors::Dtype::I64,
                t.flatten_all()?.to_vec1::<i64>()?.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            DType::U32 => (
                safetensors::Dtype::I64,
                t.flatten_all()?.to_vec1::<u32>()?.iter().flat_map(|x| (*x as i64).to_le_bytes()).collect(),
            ),
            other => bail!("cannot save tensor {name} of dtype {other:?}"),
        };
        owned.push((name.clone(), Bytes { dtype, shape: t.dims().to_vec(), data }));
    }
    metadata.insert("format".to_string(), "pt".to_string());
    let mut bytes = safetensors::serialize(owned.iter().map(|(n, b)| (n.as_str(), b)), Some(metadata))
        .map_err(|e| anyhow::anyhow!("{}: cannot serialise ({e})", path.display()))?;
    sort_header(&mut bytes).with_context(|| format!("{}: cannot order the safetensors header", path.display()))?;
    crate::util::fs::write_atomic(path, &bytes)
}

/// Rewrites the metadata of a serialised safetensors header with its keys in sorted order.
/// `safetensors::serialize` takes the metadata as a `HashMap`, whose order changes from process
/// to process; without this the same run would write different bytes each time. The tensor
/// entries keep safetensors' own order (so a checkpoint whose metadata is only `format` keeps
/// the exact bytes transformers was shown), and the same keys and values in compact JSON have
/// the same length, so the padding and every data offset stay as they are.
fn sort_header(bytes: &mut [u8]) -> Result<()> {
    const PREFIX: &[u8] = b"{\"__metadata__\":";
    let n = u64::from_le_bytes(bytes.get(..8).context("no header length")?.try_into()?) as usize;
    let header = bytes.get(8..8 + n).context("header shorter than its length")?;
    if !header.starts_with(PREFIX) {
        return Ok(());
    }
    let parsed: BTreeMap<String, serde_json::Value> = serde_json::from_slice(header)?;
    let meta: BTreeMap<String, String> =
        serde_json::from_value(parsed.get("__metadata__").cloned().context("no metadata")?)?;
    let sorted = serde_json::to_vec(&meta)?;
    let at = 8 + PREFIX.len();
    let span = bytes.get(at..at + sorted.len()).context("metadata longer than the header")?;
    // The original object occupies exactly these bytes: the same map, in another order.
    anyhow::ensure!(
        serde_json::from_slice::<BTreeMap<String, String>>(span).ok().as_ref() == Some(&meta),
        "the metadata is not where the header starts"
    );
    bytes[at..at + sorted.len()].copy_from_slice(&sorted);
    Ok(())
}

/// Reads a small safetensors file fully into named f32/i64 tensors (fixtures, `hidden` output).
pub fn load_tensors(path: &Path, device: &Device) -> Result<BTreeMap<String, Tensor>> {
    Ok(load_tensors_with_metadata(path, device)?.0)
}

/// [`load_tensors`] plus the file's metadata.
pub fn load_tensors_with_metadata(
    path: &Path,
    device: &Device,
) -> Result<(BTreeMap<String, Tensor>, HashMap<String, String>)> {
    let mut raw = BTreeMap::new();
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a valid safetensors file ({e})", path.display()))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a valid safetensors file ({e})", path.display()))?;
    for (name, view) in st.tensors() {
        let dtype = match view.dtype() {
            safetensors::Dtype::F32 => DType::F32,
            safetensors::Dtype::I64 => DType::I64,
            safetensors::Dtype::F16 => DType::F16,
            safetensors::Dtype::BF16 => DType::BF16,
            other => bail!("{}: tensor {name} has unsupported dtype {other:?}", path.display()),
        };
        raw.insert(name, Tensor::from_raw_buffer(view.data(), dtype, view.shape(), device)?);
    }
    Ok((raw, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_must_be_plain_file_names() {
        for good in ["model-00001-of-00002.safetensors", "weights.bin.safetensors"] {
            check_shard_name(good).unwrap();
        }
        for bad in ["", ".", "..", "../x", "a/b", "/etc/passwd", "a\\b", "C:x", "a\0b"] {
            assert!(check_shard_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// The same tensors and metadata give the same bytes however the metadata map iterates, and
    /// the file still reads back whole.
    #[test]
    fn saved_files_are_byte_identical_across_runs() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tensor::arange(0f32, 6., &Device::Cpu).unwrap().reshape((2, 3)).unwrap();
        let tensors = vec![("zeta".to_string(), t.clone()), ("alpha".to_string(), t.to_dtype(DType::I64).unwrap())];
        let mut files = Vec::new();
        for i in 0..4 {
            let meta: HashMap<String, String> = (0..12).map(|k| (format!("key{k}"), format!("v{k}"))).collect();
            let path = dir.path().join(format!("{i}.safetensors"));
            save_tensors_with_metadata(&tensors, &path, meta).unwrap();
            files.push(std::fs::read(&path).unwrap());
        }
        assert!(files.windows(2).all(|w| w[0] == w[1]), "the bytes differ between saves");
        let (back, meta) = load_tensors_with_metadata(&dir.path().join("0.safetensors"), &Device::Cpu).unwrap();
        assert_eq!(meta.len(), 13);
        assert_eq!(meta["format"], "pt");
        assert_eq!(back["zeta"].to_vec2::<f32>().unwrap(), t.to_vec2::<f32>().unwrap());
        assert_eq!(back["alpha"].dims(), &[2, 3]);
    }
}
