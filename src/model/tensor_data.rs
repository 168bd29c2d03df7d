//! Stored tensor bytes → a parameter tensor in the compute dtype, in one copy.
//!
//! Both checkpoint readers map their file and hand us the bytes of one tensor; we decode them
//! straight into the `Vec` that becomes the tensor's storage (`Var::from_vec` takes it without
//! copying), then give the mapped pages back to the kernel. Loading a checkpoint therefore
//! costs its parameters once, not the file plus a decoded copy plus candle's copy into a `Var`.

use anyhow::bail;
use candle_core::{DType, Device, Tensor, Var};
use rayon::prelude::*;

/// How a stored tensor's elements are encoded (little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Elem {
    F32,
    F16,
    BF16,
    F64,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl Elem {
    pub fn width(self) -> usize {
        match self {
            Elem::F64 | Elem::I64 => 8,
            Elem::F32 | Elem::I32 => 4,
            Elem::F16 | Elem::BF16 | Elem::I16 => 2,
            Elem::I8 | Elem::U8 | Elem::Bool => 1,
        }
    }
}

/// The dtypes parameters may be kept in: f32 computes exactly as the references do; bf16 and
/// f16 halve the memory. Anything else is refused before a file is read.
pub fn check_dtype(dtype: DType) -> anyhow::Result<()> {
    match dtype {
        DType::F32 | DType::BF16 | DType::F16 => Ok(()),
        other => bail!("weights cannot be kept in {other:?}: fairnc computes in f32, bf16 or f16"),
    }
}

/// One tensor's elements inside a mapped file.
pub struct View<'a> {
    pub elem: Elem,
    /// The stored bytes: the tensor itself (safetensors) or its whole storage (torch).
    pub bytes: &'a [u8],
    pub shape: &'a [usize],
    /// Element strides and offset into `bytes`; `None` for a row-major tensor at offset 0.
    pub strides: Option<(&'a [usize], usize)>,
}

/// Why a tensor's bytes could not become a parameter; the caller names file and tensor.
#[derive(Debug, PartialEq)]
pub enum Problem {
    /// Shape and strides reach outside the stored bytes (or view more elements than stored).
    OutOfBounds { elements: u128, stored: usize },
    /// The stored value is NaN or infinite.
    NonFinite { nan: bool },
    /// A finite stored value does not fit the compute dtype (e.g. 1e5 in f16).
    Overflow { value: f64, dtype: DType },
    /// The device refused the values.
    Store(String),
}

impl Problem {
    /// The message after `FILE: tensor NAME`.
    pub fn describe(&self) -> String {
        match self {
            Problem::OutOfBounds { elements, stored } => format!(
                "has a shape and strides that address {elements} elements, outside the {stored} its storage holds"
            ),
            Problem::NonFinite { nan } => format!(
                "holds {}; the model's outputs would not be numbers",
                if *nan { "NaN" } else { "an infinite value" }
            ),
            Problem::Overflow { value, dtype } => {
                format!("holds {value:e}, beyond the range of {dtype:?}; load the model in f32 or bf16")
            }
            Problem::Store(e) => format!("cannot be stored ({e})"),
        }
    }
}

/// Reading one element as f32 (or f64, for messages), by encoding.
trait Source {
    const WIDTH: usize;
    fn get(b: &[u8]) -> f32;
}

macro_rules! source {
    ($name:ident, $width:expr, |$b:ident| $read:expr) => {
        struct $name;
        impl Source for $name {
            const WIDTH: usize = $width;
            #[inline(always)]
            fn get($b: &[u8]) -> f32 {
                $read
            }
        }
    };
}

source!(SF32, 4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
source!(SF16, 2, |b| half::f16::from_le_bytes([b[0], b[1]]).to_f32());
source!(SBF16, 2, |b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32());
// f64 → f32 → bf16/f16 rounds twice; weights stored in f64 are rare and the difference is a
// tie-breaking ulp.
source!(SF64, 8, |b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32);
source!(SI64, 8, |b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32);
source!(SI32, 4, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32);
source!(SI16, 2, |b| i16::from_le_bytes([b[0], b[1]]) as f32);
source!(SI8, 1, |b| b[0] as i8 as f32);
source!(SU8, 1, |b| b[0] as f32);

/// The element at `i` of the stored bytes, exactly, for messages.
fn get_f64(elem: Elem, bytes: &[u8], i: usize) -> f64 {
    let w = elem.width();
    let b = &bytes[i * w..(i + 1) * w];
    match elem {
        Elem::F64 => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        Elem::F32 => SF32::get(b) as f64,
        Elem::F16 => SF16::get(b) as f64,
        Elem::BF16 => SBF16::get(b) as f64,
        Elem::I64 => i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f64,
        Elem::I32 => SI32::get(b) as f64,
        Elem::I16 => SI16::get(b) as f64,
        Elem::I8 => SI8::get(b) as f64,
        Elem::U8 | Elem::Bool => SU8::get(b) as f64,
    }
}

/// A compute dtype's element.
trait Target: candle_core::WithDType + Send + Sync + Copy {
    fn from_f32(x: f32) -> Self;
    fn finite(self) -> bool;
}

impl Target for f32 {
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        x
    }
    fn finite(self) -> bool {
        self.is_finite()
    }
}

impl Target for half::bf16 {
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        half::bf16::from_f32(x) // round to nearest even, as torch's `.to(torch.bfloat16)`
    }
    fn finite(self) -> bool {
        self.is_finite()
    }
}

impl Target for half::f16 {
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        half::f16::from_f32(x)
    }
    fn finite(self) -> bool {
        self.is_finite()
    }
}

/// Where output element `i` lies in the stored elements.
struct Index<'a> {
    shape: &'a [usize],
    strides: &'a [usize],
    offset: usize,
}

impl Index<'_> {
    #[inline]
    fn at(&self, mut i: usize) -> usize {
        let mut j = self.offset;
        for (&d, &s) in self.shape.iter().zip(self.strides).rev() {
            j += (i % d) * s;
            i /= d;
        }
        j
    }
}

/// Checks the view against its bytes; returns the row-major element count and, for a
/// strided view that is not plain row-major, its index map (a row-major one is reduced to a
/// slice).
fn plan<'a>(v: &View<'a>) -> Result<(usize, &'a [u8], Option<Index<'a>>), Problem> {
    let w = v.elem.width();
    let stored = v.bytes.len() / w;
    let n128: u128 = v.shape.iter().map(|&d| d as u128).product();
    let Some((strides, offset)) = v.strides else {
        if n128 != stored as u128 || !v.bytes.len().is_multiple_of(w) {
            return Err(Problem::OutOfBounds { elements: n128, stored });
        }
        return Ok((stored, v.bytes, None));
    };
    // A view with more elements than its storage would be a broadcast (stride 0); allocating
    // it could need far more memory than the file, so it is refused, as is any reach past the end.
    let last: u128 = offset as u128
        + v.shape.iter().zip(strides).map(|(&d, &s)| (d as u128).saturating_sub(1) * s as u128).sum::<u128>();
    if strides.len() != v.shape.len() || n128 > stored as u128 || (n128 > 0 && last >= stored as u128) {
        return Err(Problem::OutOfBounds { elements: n128.max(last + 1), stored });
    }
    let n = n128 as usize;
    let mut row_major = true;
    let mut expect = 1usize;
    for (&d, &s) in v.shape.iter().zip(strides).rev() {
        row_major &= d <= 1 || s == expect;
        expect *= d;
    }
    if row_major {
        return Ok((n, &v.bytes[offset.min(stored) * w..(offset.min(stored) + n) * w], None));
    }
    Ok((n, v.bytes, Some(Index { shape: v.shape, strides, offset })))
}

fn convert<S: Source, T: Target>(bytes: &[u8], n: usize, index: Option<&Index>) -> Vec<T> {
    const MIN: usize = 1 << 14;
    match index {
        None => bytes.par_chunks_exact(S::WIDTH).with_min_len(MIN).map(|b| T::from_f32(S::get(b))).collect(),
        Some(ix) => (0..n)
            .into_par_iter()
            .with_min_len(MIN)
            .map(|i| {
                let j = ix.at(i) * S::WIDTH;
                T::from_f32(S::get(&bytes[j..j + S::WIDTH]))
            })
            .collect(),
    }
}

fn decode<T: Target>(v: &View, dtype: DType) -> Result<Vec<T>, Problem> {
    let (n, bytes, index) = plan(v)?;
    let ix = index.as_ref();
    let out: Vec<T> = match v.elem {
        Elem::F32 => convert::<SF32, T>(bytes, n, ix),
        Elem::F16 => convert::<SF16, T>(bytes, n, ix),
        Elem::BF16 => convert::<SBF16, T>(bytes, n, ix),
        Elem::F64 => convert::<SF64, T>(bytes, n, ix),
        Elem::I64 => convert::<SI64, T>(bytes, n, ix),
        Elem::I32 => convert::<SI32, T>(bytes, n, ix),
        Elem::I16 => convert::<SI16, T>(bytes, n, ix),
        Elem::I8 => convert::<SI8, T>(bytes, n, ix),
        Elem::U8 | Elem::Bool => convert::<SU8, T>(bytes, n, ix),
    };
    // One pass over the weights costs far less than a forward pass and turns NaN scores into
    // an error at load; checking the decoded values also catches what the dtype cannot hold.
    if let Some(i) = out.par_iter().with_min_len(1 << 14).position_any(|x| !x.finite()) {
        let stored = get_f64(v.elem, bytes, index.as_ref().map_or(i, |ix| ix.at(i)));
        return Err(if stored.is_finite() {
            Problem::Overflow { value: stored, dtype }
        } else {
            Problem::NonFinite { nan: stored.is_nan() }
        });
    }
    Ok(out)
}

/// The tensor, in `dtype`, created as a variable so that making it a parameter copies nothing.
pub fn load(v: &View, dtype: DType, device: &Device) -> Result<Tensor, Problem> {
    fn var<T: Target>(v: &View, dtype: DType, device: &Device) -> Result<Tensor, Problem> {
        let data = decode::<T>(v, dtype)?;
        let var = Var::from_vec(data, v.shape.to_vec(), device).map_err(|e| Problem::Store(e.to_string()))?;
        Ok(var.into_inner())
    }
    match dtype {
        DType::F32 => var::<f32>(v, dtype, device),
        DType::BF16 => var::<half::bf16>(v, dtype, device),
        DType::F16 => var::<half::f16>(v, dtype, device),
        other => Err(Problem::Store(format!("{other:?} is not a compute dtype"))),
    }
}

/// Hands the mapped pages behind `bytes` back to the kernel once they are decoded, so that the
/// file's pages and the decoded parameters are not resident together.
pub fn release(map: &memmap2::Mmap, bytes: &[u8]) {
    let start = (bytes.as_ptr() as usize).wrapping_sub(map.as_ptr() as usize);
    if bytes.is_empty() || start.checked_add(bytes.len()).is_none_or(|end| end > map.len()) {
        return;
    }
    // SAFETY: the map is a read-only shared file mapping: after MADV_DONTNEED a later read
    // faults the same bytes back in from the file (the hazard of a concurrent writer is the
    // one every mapped reader accepts); nothing is written through it. The advice is only a
    // hint, so its failure is ignored.
    #[cfg(unix)]
    let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, bytes.len()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn run(v: &View, dtype: DType) -> std::result::Result<Vec<f32>, Problem> {
        load(v, dtype, &Device::Cpu).map(|t| t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap())
    }

    #[test]
    fn every_encoding_decodes_to_every_compute_dtype() {
        let vals = [0.5f32, -2.0, 3.0, 1.0];
        let cases: Vec<(Elem, Vec<u8>)> = vec![
            (Elem::F32, f32s(&vals)),
            (Elem::F16, vals.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect()),
            (Elem::BF16, vals.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect()),
            (Elem::F64, vals.iter().flat_map(|x| (*x as f64).to_le_bytes()).collect()),
        ];
        for (elem, bytes) in &cases {
            for dtype in [DType::F32, DType::BF16, DType::F16] {
                let v = View { elem: *elem, bytes, shape: &[2, 2], strides: None };
                assert_eq!(run(&v, dtype).unwrap(), vals, "{elem:?} → {dtype:?}");
            }
        }
        let ints: Vec<u8> = [3i64, -1].iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(
            run(&View { elem: Elem::I64, bytes: &ints, shape: &[2], strides: None }, DType::F32).unwrap(),
            [3.0, -1.0]
        );
        let t =
            load(&View { elem: Elem::F32, bytes: &cases[0].1, shape: &[4], strides: None }, DType::BF16, &Device::Cpu);
        let t = t.unwrap();
        assert!(t.is_variable() && t.dtype() == DType::BF16);
    }

    #[test]
    fn strided_views_read_their_elements_and_stay_inside_the_storage() {
        // Storage 0..12; a transposed [3, 2] view of rows [2, 3] starting at element 6.
        let bytes = f32s(&(0..12).map(|x| x as f32).collect::<Vec<_>>());
        let v = View { elem: Elem::F32, bytes: &bytes, shape: &[3, 2], strides: Some((&[1, 3], 6)) };
        assert_eq!(run(&v, DType::F32).unwrap(), [6.0, 9.0, 7.0, 10.0, 8.0, 11.0]);
        // Row-major with an offset: a slice.
        let v = View { elem: Elem::F32, bytes: &bytes, shape: &[2, 2], strides: Some((&[2, 1], 8)) };
        assert_eq!(run(&v, DType::F32).unwrap(), [8.0, 9.0, 10.0, 11.0]);
        // Past the end, and a broadcast claiming 10¹² elements of a 12-element storage.
        let v = View { elem: Elem::F32, bytes: &bytes, shape: &[2, 2], strides: Some((&[2, 1], 9)) };
        assert!(matches!(run(&v, DType::F32), Err(Problem::OutOfBounds { .. })));
        let v = View { elem: Elem::F32, bytes: &bytes, shape: &[1 << 20, 1 << 20], strides: Some((&[0, 0], 0)) };
        assert!(matches!(run(&v, DType::F32), Err(Problem::OutOfBounds { .. })));
        let v = View { elem: Elem::F32, bytes: &bytes, shape: &[5], strides: None };
        assert!(matches!(run(&v, DType::F32), Err(Problem::OutOfBounds { .. })));
    }

    #[test]
    fn non_finite_and_overflowing_values_are_found_in_every_dtype() {
        // Far past one parallel block, with the bad value last, so every block is looked at.
        let mut v = vec![0.5f32; 100_000];
        for (bad, want) in
            [(f32::NAN, Problem::NonFinite { nan: true }), (f32::INFINITY, Problem::NonFinite { nan: false })]
        {
            *v.last_mut().unwrap() = bad;
            let b = f32s(&v);
            for dtype in [DType::F32, DType::BF16, DType::F16] {
                let view = View { elem: Elem::F32, bytes: &b, shape: &[v.len()], strides: None };
                assert_eq!(run(&view, dtype).unwrap_err(), want, "{dtype:?}");
            }
            let h: Vec<u8> = v.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect();
            let view = View { elem: Elem::BF16, bytes: &h, shape: &[v.len()], strides: None };
            assert_eq!(run(&view, DType::F32).unwrap_err(), want);
        }
        // 1e5 is finite in f32 and bf16 but not in f16.
        *v.last_mut().unwrap() = 1e5;
        let b = f32s(&v);
        let view = View { elem: Elem::F32, bytes: &b, shape: &[v.len()], strides: None };
        assert!(run(&view, DType::BF16).is_ok());
        assert_eq!(run(&view, DType::F16).unwrap_err(), Problem::Overflow { value: 1e5, dtype: DType::F16 });
        // Integer tensors are never flagged.
        let ints = vec![0xffu8; 16];
        assert!(run(&View { elem: Elem::I64, bytes: &ints, shape: &[2], strides: None }, DType::F32).is_ok());
    }

    #[test]
    fn only_float_compute_dtypes_are_accepted() {
        for ok in [DType::F32, DType::BF16, DType::F16] {
            check_dtype(ok).unwrap();
        }
        for bad in [DType::F64, DType::U8, DType::I64] {
            assert!(check_dtype(bad).is_err());
        }
    }
}
