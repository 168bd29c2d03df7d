//! PyTorch checkpoints (`pytorch_model.bin`, torch's zip format): where each tensor's bytes
//! lie in the mapped archive.
//!
//! The archive holds `<dir>/data.pkl`, the pickled state dict, and one entry `<dir>/data/<key>`
//! per storage. The pickle is vetted by [`super::pickle::check`] before candle's
//! `pickle::Stack` parses it into objects; from those we take, for each tensor, its storage key,
//! element type, shape, strides and offset. The values themselves are never unpickled: torch
//! stores each storage uncompressed, so they are read in place from the map.

use super::pickle;
use super::tensor_data::Elem;
use anyhow::{Context, Result, bail};
use candle_core::pickle::{Object, Stack};
use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

/// One tensor of the state dict, as its pickle describes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorEntry {
    pub name: String,
    /// The storage's key (`<dir>/data/<key>`).
    pub storage: String,
    /// `Err(class)` for a storage class we do not decode (only a problem if the tensor is used).
    pub elem: std::result::Result<Elem, String>,
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
    pub offset: usize,
}

/// A mapped torch zip checkpoint with its tensors listed.
pub struct TorchZip {
    pub map: memmap2::Mmap,
    pub tensors: Vec<TensorEntry>,
    /// Byte range in the map and CRC-32 (from the archive's directory) of each storage.
    storages: HashMap<String, (Range<usize>, u32)>,
}

/// The state dict's pickle is a few hundred bytes per tensor; a larger one is no state dict.
const MAX_PICKLE: u64 = 256 << 20;

/// torch < 1.6 (or `_use_new_zipfile_serialization=False`) wrote a bare pickle stream, whose
/// first opcode is PROTO.
fn is_legacy(bytes: &[u8]) -> bool {
    bytes.first() == Some(&0x80)
}

impl TorchZip {
    pub fn open(file: &Path) -> Result<Self> {
        let shown = file.display();
        let handle = std::fs::File::open(file).with_context(|| format!("{shown}: cannot open"))?;
        // SAFETY: read-only map, kept with the list of ranges into it; a concurrent writer
        // truncating the file is the hazard every mapped reader accepts.
        let map = unsafe { memmap2::Mmap::map(&handle) }.with_context(|| format!("{shown}: cannot map"))?;
        if !map.starts_with(b"PK\x03\x04") {
            if is_legacy(&map) {
                bail!(
                    "{shown}: PyTorch's legacy (pre-1.6, non-zip) format, which fairnc does not read; re-save it with \
                     torch.save(torch.load(path, weights_only=True), path) in torch >= 1.6, or as safetensors"
                );
            }
            bail!("{shown}: not a PyTorch checkpoint (no zip archive; torch.save writes one)");
        }
        let (tensors, storages) = list(&map).map_err(|e| anyhow::anyhow!("{shown}: {e:#}"))?;
        Ok(TorchZip { map, tensors, storages })
    }

    /// The bytes of a storage, in the map, checked against their CRC: reading in place skips
    /// the zip reader's check, and a flipped bit in a weight is otherwise silent.
    pub fn storage(&self, key: &str) -> Result<&[u8]> {
        let (range, crc) = self.storages.get(key).with_context(|| format!("no storage {key}"))?;
        let bytes = &self.map[range.clone()];
        if crc32fast::hash(bytes) != *crc {
            bail!("the data of storage {key} does not match its checksum (corrupt file?)");
        }
        Ok(bytes)
    }
}

/// The tensors of the archive in `map` and the byte ranges of their storages.
type Storages = HashMap<String, (Range<usize>, u32)>;

fn list(map: &[u8]) -> Result<(Vec<TensorEntry>, Storages)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(map))
        .map_err(|e| anyhow::anyhow!("not a valid PyTorch zip archive ({e}); truncated or corrupt?"))?;
    let names: Vec<String> = zip.file_names().map(str::to_string).collect();
    let pickles: Vec<&String> = names.iter().filter(|n| n.ends_with("/data.pkl") || *n == "data.pkl").collect();
    let [pkl] = pickles.as_slice() else {
        bail!("the archive has {} data.pkl entries, a torch.save checkpoint one", pickles.len());
    };
    let dir = pkl.strip_suffix("data.pkl").unwrap_or_default().to_string();
    if let Ok(mut order) = zip.by_name(&format!("{dir}byteorder")) {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(&mut order, 16), &mut text)
            .context("cannot read its byteorder entry")?;
        if text.trim() != "little" {
            bail!("stored {:?}-endian; fairnc reads little-endian checkpoints", text.trim());
        }
    }
    let bytes = {
        let mut entry = zip.by_name(pkl).map_err(|e| anyhow::anyhow!("cannot read {pkl} ({e})"))?;
        if entry.size() > MAX_PICKLE {
            bail!("{pkl} claims {} bytes; a state dict's pickle is far smaller", entry.size());
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut entry, MAX_PICKLE), &mut bytes)
            .map_err(|e| anyhow::anyhow!("cannot read {pkl} ({e}); truncated or corrupt?"))?;
        bytes
    };
    pickle::check(&bytes).map_err(|r| anyhow::anyhow!("{r}"))?;
    let mut stack = Stack::empty();
    stack.read_loop(&mut bytes.as_slice()).map_err(|e| anyhow::anyhow!("cannot read the pickle ({e})"))?;
    let obj = stack.finalize().map_err(|e| anyhow::anyhow!("cannot read the pickle ({e})"))?;
    let tensors = state_dict(obj)?;
    let storages = storage_ranges(&mut zip, &dir, &tensors, map.len())?;
    Ok((tensors, storages))
}

/// The byte range of every storage the tensors use: uncompressed entries inside the file.
fn storage_ranges(
    zip: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
    dir: &str,
    tensors: &[TensorEntry],
    file_len: usize,
) -> Result<Storages> {
    let mut out = HashMap::new();
    for t in tensors {
        if out.contains_key(&t.storage) {
            continue;
        }
        if t.storage.is_empty() || t.storage.contains(['/', '\\', '\0']) || t.storage.starts_with('.') {
            bail!("tensor {} names storage {:?}, not a plain entry name", t.name, t.storage);
        }
        let path = format!("{dir}data/{}", t.storage);
        let entry = zip
            .by_name(&path)
            .map_err(|e| anyhow::anyhow!("tensor {} is stored in {path}, which the archive lacks ({e})", t.name))?;
        if entry.compression() != zip::CompressionMethod::Stored {
            bail!("{path} is compressed ({}); torch.save stores tensor data uncompressed", entry.compression());
        }
        let start = usize::try_from(entry.data_start()).ok();
        let end = start.zip(usize::try_from(entry.size()).ok()).and_then(|(s, n)| s.checked_add(n));
        match (start, end) {
            (Some(s), Some(e)) if e <= file_len => {
                out.insert(t.storage.clone(), (s..e, entry.crc32()));
            }
            _ => bail!("{path} runs past the end of the file (truncated?)"),
        }
    }
    Ok(out)
}

/// The tensors of an unpickled state dict. candle's reader turns `OrderedDict()` into a dict
/// and merges the `_metadata` that `BUILD` sets into it; entries that are not tensors are
/// skipped, as torch's `load_state_dict` skips `_metadata`.
fn state_dict(obj: Object) -> Result<Vec<TensorEntry>> {
    let Object::Dict(items) = obj else {
        bail!("the pickle holds no state dict (a dict of tensors) but {}", kind(&obj));
    };
    let mut out = Vec::new();
    let mut others = 0;
    for (key, value) in items {
        let Object::Unicode(name) = key else { continue };
        match tensor(value).with_context(|| format!("tensor {name}"))? {
            Some(t) => out.push(TensorEntry { name, ..t }),
            None => others += 1,
        }
    }
    if out.is_empty() {
        bail!(
            "the pickle's dict holds no tensors ({others} other entries; a training checkpoint holds the state dict under a key: save that alone)"
        );
    }
    Ok(out)
}

fn kind(obj: &Object) -> &'static str {
    match obj {
        Object::Dict(_) => "a dict",
        Object::Reduce { .. } | Object::Build { .. } => "an object",
        Object::Tuple(_) | Object::List(_) => "a sequence",
        _ => "a plain value",
    }
}

fn is_class(obj: &Object, module: &str, name: &str) -> bool {
    matches!(obj, Object::Class { module_name, class_name } if module_name == module && class_name == name)
}

fn int(obj: &Object, what: &str) -> Result<usize> {
    let v = match obj {
        Object::Int(i) => *i as i64,
        Object::Long(i) => *i,
        _ => bail!("its {what} is not an integer"),
    };
    usize::try_from(v).map_err(|_| anyhow::anyhow!("its {what} is negative ({v})"))
}

fn ints(obj: &Object, what: &str) -> Result<Vec<usize>> {
    match obj {
        Object::Tuple(items) => items.iter().map(|o| int(o, what)).collect(),
        _ => bail!("its {what} is not a tuple"),
    }
}

/// A `_rebuild_tensor_v2(storage, offset, size, stride, ...)` value (possibly wrapped in
/// `_rebuild_parameter`), or `None` for a value that is no tensor.
fn tensor(value: Object) -> Result<Option<TensorEntry>> {
    let Object::Reduce { callable, args } = value else { return Ok(None) };
    let Object::Tuple(mut args) = *args else { return Ok(None) };
    if is_class(&callable, "torch._utils", "_rebuild_parameter") {
        if args.is_empty() {
            bail!("_rebuild_parameter without arguments");
        }
        return tensor(args.swap_remove(0));
    }
    if !is_class(&callable, "torch._utils", "_rebuild_tensor_v2") {
        return Ok(None);
    }
    if args.len() < 4 {
        bail!("_rebuild_tensor_v2 with {} arguments, torch writes 6", args.len());
    }
    let offset = int(&args[1], "storage offset")?;
    let shape = ints(&args[2], "size")?;
    let strides = ints(&args[3], "stride")?;
    if shape.len() != strides.len() {
        bail!("its size has {} dimensions and its stride {}", shape.len(), strides.len());
    }
    let Object::PersistentLoad(pid) = std::mem::replace(&mut args[0], Object::None) else {
        bail!("its storage is not a persistent id");
    };
    // ('storage', torch.<Type>Storage, key, location, numel)
    let Object::Tuple(pid) = *pid else { bail!("its storage id is not a tuple") };
    let (Some(Object::Unicode(tag)), Some(Object::Class { module_name, class_name }), Some(Object::Unicode(key))) =
        (pid.first(), pid.get(1), pid.get(2))
    else {
        bail!("its storage id is not ('storage', class, key, ...)");
    };
    if tag != "storage" || module_name != "torch" {
        bail!("its storage id is not ('storage', class, key, ...)");
    }
    let elem = match class_name.as_str() {
        "FloatStorage" => Ok(Elem::F32),
        "HalfStorage" => Ok(Elem::F16),
        "BFloat16Storage" => Ok(Elem::BF16),
        "DoubleStorage" => Ok(Elem::F64),
        "LongStorage" => Ok(Elem::I64),
        "IntStorage" => Ok(Elem::I32),
        "ShortStorage" => Ok(Elem::I16),
        "CharStorage" => Ok(Elem::I8),
        "ByteStorage" => Ok(Elem::U8),
        "BoolStorage" => Ok(Elem::Bool),
        other => Err(other.to_string()),
    };
    Ok(Some(TensorEntry { name: String::new(), storage: key.clone(), elem, shape, strides, offset }))
}
