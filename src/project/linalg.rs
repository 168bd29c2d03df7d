//! The small dense linear algebra the projection methods need, in f64: an orthonormal basis of
//! a span (what `scipy.linalg.orth` gives, up to rotation), the projection removing a span, and
//! the leading principal components of a data matrix (sklearn's `PCA`, up to sign).

/// Row-major `[n, d]` data.
pub struct Rows<'a> {
    pub data: &'a [f64],
    pub d: usize,
}

impl Rows<'_> {
    pub fn n(&self) -> usize {
        self.data.len() / self.d.max(1)
    }
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.d..(i + 1) * self.d]
    }
}

/// Dot product over eight interleaved partial sums. One running sum is a chain of dependent
/// additions the compiler may not reorder (f64 addition is not associative), so it runs one
/// lane at a time; eight independent chains vectorise (two AVX2 registers, one AVX-512).
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (a[..n].chunks_exact(8), b[..n].chunks_exact(8));
    let tail: f64 = a.remainder().iter().zip(b.remainder()).map(|(x, y)| x * y).sum();
    let mut acc = [0f64; 8];
    for (x, y) in a.zip(b) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Solves `A x = b` for a symmetric positive-definite `A [d, d]` (row-major) by Cholesky.
/// A pivot that rounding drives to zero or below is clamped, so the result stays finite.
pub fn solve_spd(a: &[f64], d: usize, b: &[f64]) -> Vec<f64> {
    let mut l = vec![0f64; d * d];
    for j in 0..d {
        let pivot = (a[j * d + j] - dot(&l[j * d..j * d + j], &l[j * d..j * d + j])).max(1e-300).sqrt();
        l[j * d + j] = pivot;
        for i in j + 1..d {
            let v = (a[i * d + j] - dot(&l[i * d..i * d + j], &l[j * d..j * d + j])) / pivot;
            l[i * d + j] = v;
        }
    }
    let mut y = vec![0f64; d];
    for i in 0..d {
        y[i] = (b[i] - dot(&l[i * d..i * d + i], &y[..i])) / l[i * d + i];
    }
    let mut x = vec![0f64; d];
    for i in (0..d).rev() {
        let s: f64 = (i + 1..d).map(|k| l[k * d + i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i * d + i];
    }
    x
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// Removes from `v` its components along the orthonormal `basis` (twice: classical
/// Gram–Schmidt with re-orthogonalisation is as accurate as a QR step).
fn orthogonalise(v: &mut [f64], basis: &[Vec<f64>]) {
    for _ in 0..2 {
        for b in basis {
            let c = dot(v, b);
            v.iter_mut().zip(b).for_each(|(x, y)| *x -= c * y);
        }
    }
}

/// Extends the orthonormal `basis` by the part of each vector outside its span; a vector
/// whose remaining part is below `1e-10` of its length (numerically inside the span, the rank
/// cut of `scipy.linalg.orth`) adds nothing. Returns how many directions were added.
pub fn extend_basis(basis: &mut Vec<Vec<f64>>, vectors: &[Vec<f64>]) -> usize {
    let before = basis.len();
    for v in vectors {
        let len = norm(v);
        if len.is_nan() || len <= 0.0 {
            continue;
        }
        let mut r = v.clone();
        orthogonalise(&mut r, basis);
        let rest = norm(&r);
        if rest > 1e-10 * len {
            r.iter_mut().for_each(|x| *x /= rest);
            basis.push(r);
        }
    }
    basis.len() - before
}

/// P = I − B Bᵀ `[d, d]` row-major: the orthogonal projection onto the complement of the
/// span of the orthonormal rows `basis` — bias-bench's `I − P_rowspace(ΣP_i)`, exact because
/// the nullspace of a sum of rowspace projections is the complement of the span of all rows.
pub fn removing(basis: &[Vec<f64>], d: usize) -> Vec<f64> {
    let mut p = vec![0f64; d * d];
    for i in 0..d {
        p[i * d + i] = 1.0;
    }
    for b in basis {
        for i in 0..d {
            let bi = b[i];
            if bi != 0.0 {
                let row = &mut p[i * d..(i + 1) * d];
                row.iter_mut().zip(b).for_each(|(x, y)| *x -= bi * y);
            }
        }
    }
    p
}

/// The `k` leading principal components of `x` (rows centred on their mean first, as sklearn's
/// PCA does), each of unit length with its largest-magnitude entry positive (sklearn's sign
/// rule), and the variance each explains. Simultaneous (block power) iteration to 1e-14.
pub fn principal_components(x: &Rows, k: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    let (n, d) = (x.n(), x.d);
    let k = k.min(d).min(n);
    let mut mean = vec![0f64; d];
    for i in 0..n {
        mean.iter_mut().zip(x.row(i)).for_each(|(m, v)| *m += v);
    }
    mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
    let centred: Vec<f64> = (0..n).flat_map(|i| x.row(i).iter().zip(&mean).map(|(v, m)| v - m)).collect();
    let c = Rows { data: &centred, d };
    // C v = Xᵀ (X v) / (n − 1), without forming C.
    let apply = |v: &[f64]| {
        let mut out = vec![0f64; d];
        for i in 0..n {
            let r = c.row(i);
            let s = dot(r, v);
            out.iter_mut().zip(r).for_each(|(o, x)| *o += s * x);
        }
        out.iter_mut().for_each(|o| *o /= (n.max(2) - 1) as f64);
        out
    };
    // A deterministic start that is not orthogonal to any data direction in practice.
    let mut vs: Vec<Vec<f64>> =
        (0..k).map(|j| (0..d).map(|i| 1.0 + ((i * 7919 + j * 104_729) % 1000) as f64 / 1000.0).collect()).collect();
    let mut basis = Vec::new();
    extend_basis(&mut basis, &vs);
    vs = basis;
    for _ in 0..20_000 {
        let next: Vec<Vec<f64>> = vs.iter().map(|v| apply(v)).collect();
        let mut nb = Vec::new();
        extend_basis(&mut nb, &next);
        if nb.len() < vs.len() {
            // The data span fewer than k directions: keep what it spans.
            vs = nb;
            break;
        }
        let change = vs.iter().zip(&nb).map(|(a, b)| 1.0 - dot(a, b).abs()).fold(0.0, f64::max);
        vs = nb;
        if change < 1e-14 {
            break;
        }
    }
    let variances = vs.iter().map(|v| dot(v, &apply(v))).collect();
    for v in &mut vs {
        let big = v.iter().copied().fold(0.0f64, |a, x| if x.abs() > a.abs() { x } else { a });
        if big < 0.0 {
            v.iter_mut().for_each(|x| *x = -*x);
        }
    }
    (vs, variances)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A = MᵀM + I for a random M: the solution satisfies A x = b to rounding, and the dot
    /// product's eight partial sums give the plain sum's value on a length that leaves a tail.
    #[test]
    fn spd_solve_and_dot_agree_with_direct_computation() {
        let mut rng = crate::util::rng::SplitMix::new(7);
        let d = 37;
        let m: Vec<f64> = (0..d * d).map(|_| rng.normal()).collect();
        let mut a = vec![0f64; d * d];
        for i in 0..d {
            for j in 0..d {
                a[i * d + j] = (0..d).map(|k| m[k * d + i] * m[k * d + j]).sum::<f64>() + f64::from(i == j);
            }
        }
        let b: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
        let x = solve_spd(&a, d, &b);
        for i in 0..d {
            let ax: f64 = (0..d).map(|j| a[i * d + j] * x[j]).sum();
            assert!((ax - b[i]).abs() < 1e-9, "row {i}: {ax} vs {}", b[i]);
        }
        let plain: f64 = m[..d].iter().zip(&b).map(|(p, q)| p * q).sum();
        assert!((dot(&m[..d], &b) - plain).abs() < 1e-12);
    }

    #[test]
    fn the_projection_removes_the_span_and_keeps_its_complement() {
        let mut basis = Vec::new();
        let added = extend_basis(&mut basis, &[vec![1.0, 1.0, 0.0], vec![2.0, 2.0, 0.0], vec![0.0, 1.0, 1.0]]);
        assert_eq!(added, 2, "the second vector is inside the span");
        let p = removing(&basis, 3);
        // (1, −1, 1) is orthogonal to both; (1, 1, 0) is removed.
        let apply = |v: [f64; 3]| (0..3).map(|i| dot(&p[i * 3..i * 3 + 3], &v)).collect::<Vec<_>>();
        let kept = apply([1.0, -1.0, 1.0]);
        assert!(kept.iter().zip([1.0, -1.0, 1.0]).all(|(a, b)| (a - b).abs() < 1e-12), "{kept:?}");
        assert!(apply([1.0, 1.0, 0.0]).iter().all(|x| x.abs() < 1e-12));
    }

    #[test]
    fn principal_component_of_points_on_a_line() {
        let data = [1.0, 2.0, 2.0, 4.0, -1.0, -2.0, 0.5, 1.0, -3.0, -6.0];
        let (pcs, var) = principal_components(&Rows { data: &data, d: 2 }, 1);
        let s = 5f64.sqrt();
        assert!((pcs[0][0] - 1.0 / s).abs() < 1e-12 && (pcs[0][1] - 2.0 / s).abs() < 1e-12, "{pcs:?}");
        assert!(var[0] > 0.0);
    }
}
