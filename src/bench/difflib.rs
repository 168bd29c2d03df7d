//! The alignment Python's `difflib.SequenceMatcher(None, a, b).get_opcodes()` computes
//! (Ratcliff–Obershelp with the "popular element" heuristic), which bias-bench uses to find
//! the tokens two CrowS-Pairs sentences do and do not share. Re-implemented from the
//! algorithm's description so that spans match the reference exactly.

use std::collections::HashMap;
use std::hash::Hash;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Equal,
    Replace,
    Delete,
    Insert,
}

/// (tag, a_start, a_end, b_start, b_end)
pub type Opcode = (Tag, usize, usize, usize, usize);

struct Matcher<'a, T> {
    a: &'a [T],
    b: &'a [T],
    /// Positions of each element of `b`, ascending; popular elements removed.
    b2j: HashMap<&'a T, Vec<usize>>,
}

impl<'a, T: Eq + Hash> Matcher<'a, T> {
    fn new(a: &'a [T], b: &'a [T]) -> Self {
        let mut b2j: HashMap<&T, Vec<usize>> = HashMap::new();
        for (j, x) in b.iter().enumerate() {
            b2j.entry(x).or_default().push(j);
        }
        // autojunk: in sequences of 200+ items, elements occurring more than 1% (+1) times
        // are "popular" and not used to seed matches.
        let n = b.len();
        if n >= 200 {
            let ntest = n / 100 + 1;
            b2j.retain(|_, idx| idx.len() <= ntest);
        }
        Matcher { a, b, b2j }
    }

    fn longest_match(&self, alo: usize, ahi: usize, blo: usize, bhi: usize) -> (usize, usize, usize) {
        let (mut besti, mut bestj, mut bestsize) = (alo, blo, 0);
        let mut j2len: HashMap<usize, usize> = HashMap::new();
        for i in alo..ahi {
            let mut new: HashMap<usize, usize> = HashMap::new();
            if let Some(js) = self.b2j.get(&self.a[i]) {
                for &j in js {
                    if j < blo {
                        continue;
                    }
                    if j >= bhi {
                        break;
                    }
                    let k = j.checked_sub(1).and_then(|p| j2len.get(&p)).copied().unwrap_or(0) + 1;
                    new.insert(j, k);
                    if k > bestsize {
                        besti = i + 1 - k;
                        bestj = j + 1 - k;
                        bestsize = k;
                    }
                }
            }
            j2len = new;
        }
        // Extend over equal (popular) neighbours; there is no junk function.
        while besti > alo && bestj > blo && self.a[besti - 1] == self.b[bestj - 1] {
            besti -= 1;
            bestj -= 1;
            bestsize += 1;
        }
        while besti + bestsize < ahi && bestj + bestsize < bhi && self.a[besti + bestsize] == self.b[bestj + bestsize] {
            bestsize += 1;
        }
        (besti, bestj, bestsize)
    }

    fn matching_blocks(&self) -> Vec<(usize, usize, usize)> {
        let (la, lb) = (self.a.len(), self.b.len());
        let mut queue = vec![(0, la, 0, lb)];
        let mut blocks = Vec::new();
        while let Some((alo, ahi, blo, bhi)) = queue.pop() {
            let (i, j, k) = self.longest_match(alo, ahi, blo, bhi);
            if k > 0 {
                blocks.push((i, j, k));
                if alo < i && blo < j {
                    queue.push((alo, i, blo, j));
                }
                if i + k < ahi && j + k < bhi {
                    queue.push((i + k, ahi, j + k, bhi));
                }
            }
        }
        blocks.sort();
        let mut out = Vec::new();
        let (mut i1, mut j1, mut k1) = (0, 0, 0);
        for (i2, j2, k2) in blocks {
            if i1 + k1 == i2 && j1 + k1 == j2 {
                k1 += k2;
            } else {
                if k1 > 0 {
                    out.push((i1, j1, k1));
                }
                (i1, j1, k1) = (i2, j2, k2);
            }
        }
        if k1 > 0 {
            out.push((i1, j1, k1));
        }
        out.push((la, lb, 0));
        out
    }
}

pub fn opcodes<T: Eq + Hash>(a: &[T], b: &[T]) -> Vec<Opcode> {
    let m = Matcher::new(a, b);
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    for (ai, bj, size) in m.matching_blocks() {
        let tag = match (i < ai, j < bj) {
            (true, true) => Some(Tag::Replace),
            (true, false) => Some(Tag::Delete),
            (false, true) => Some(Tag::Insert),
            _ => None,
        };
        if let Some(t) = tag {
            out.push((t, i, ai, j, bj));
        }
        i = ai + size;
        j = bj + size;
        if size > 0 {
            out.push((Tag::Equal, ai, i, bj, j));
        }
    }
    out
}

/// Positions of `a` and of `b` covered by opcodes that are (`equal == true`) or are not
/// `equal`, in order: bias-bench's `_get_span`.
pub fn spans<T: Eq + Hash>(a: &[T], b: &[T], equal: bool) -> (Vec<usize>, Vec<usize>) {
    let (mut s1, mut s2) = (Vec::new(), Vec::new());
    for (tag, a0, a1, b0, b1) in opcodes(a, b) {
        if (tag == Tag::Equal) == equal {
            s1.extend(a0..a1);
            s2.extend(b0..b1);
        }
    }
    (s1, s2)
}

#[cfg(test)]
mod tests {
    use super::{Tag, opcodes};

    #[test]
    fn opcodes_match_python_difflib() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/difflib/opcodes.json");
        let cases: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for (n, c) in cases.iter().enumerate() {
            let v = |k: &str| -> Vec<u64> { c[k].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect() };
            let got: Vec<serde_json::Value> = opcodes(&v("a"), &v("b"))
                .into_iter()
                .map(|(t, a0, a1, b0, b1)| {
                    let tag = match t {
                        Tag::Equal => "equal",
                        Tag::Replace => "replace",
                        Tag::Delete => "delete",
                        Tag::Insert => "insert",
                    };
                    serde_json::json!([tag, a0, a1, b0, b1])
                })
                .collect();
            assert_eq!(serde_json::Value::Array(got), c["opcodes"], "case {n}");
        }
    }
}
