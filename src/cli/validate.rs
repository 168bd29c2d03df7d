//! Value parsers for numeric flags: a value out of range is refused while the command line is
//! parsed, so that clap's one-line error names the flag, instead of the value reaching the
//! library (a batch size of 0 divided by zero; a learning rate of −1 ran gradient ascent).
//! Each returns the reason without the flag; clap prefixes "invalid value 'X' for '--flag'".

fn number<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.trim().parse().map_err(|_| format!("expected {what}"))
}

/// An integer ≥ 1: counts, sizes, limits and steps, where 0 would do nothing or divide by zero.
pub fn positive_usize(s: &str) -> Result<usize, String> {
    match number::<usize>(s, "a positive integer")? {
        0 => Err("expected a positive integer (at least 1)".into()),
        n => Ok(n),
    }
}

/// As [`positive_usize`], for step counts.
pub fn positive_u64(s: &str) -> Result<u64, String> {
    match number::<u64>(s, "a positive integer")? {
        0 => Err("expected a positive integer (at least 1)".into()),
        n => Ok(n),
    }
}

/// A sequence length in tokens: at least 2, since a sequence of one token holds only its
/// special token (masked LMs) or has nothing to predict (causal LMs).
pub fn max_len(s: &str) -> Result<usize, String> {
    match number::<usize>(s, "a length in tokens (at least 2)")? {
        n if n < 2 => Err("expected a length in tokens of at least 2".into()),
        n => Ok(n),
    }
}

/// A finite number for which `ok` holds, else `expected` (NaN and ±inf never pass).
fn real(s: &str, ok: impl Fn(f64) -> bool, expected: &str) -> Result<f64, String> {
    match number::<f64>(s, expected)? {
        x if x.is_finite() && ok(x) => Ok(x),
        _ => Err(format!("expected {expected}")),
    }
}

/// A finite number > 0: learning rates, clipping norms, scales.
pub fn positive_f64(s: &str) -> Result<f64, String> {
    real(s, |x| x > 0.0, "a finite number greater than 0")
}

/// A finite number ≥ 0: λ of a regularizer, weight decay.
pub fn non_negative_f64(s: &str) -> Result<f64, String> {
    real(s, |x| x >= 0.0, "a finite number of at least 0")
}

/// A fraction strictly between 0 and 1 (a held-out part that is neither empty nor everything).
pub fn open_fraction(s: &str) -> Result<f64, String> {
    real(s, |x| x > 0.0 && x < 1.0, "a fraction strictly between 0 and 1")
}

/// Shard `i/n` of a computation: 0 ≤ i < n.
pub fn shard(s: &str) -> Result<(usize, usize), String> {
    let (i, n) = s.split_once('/').ok_or("expected i/n with 0 ≤ i < n, e.g. 0/4")?;
    let i: usize = i.trim().parse().map_err(|_| "expected i/n: i is not a non-negative integer")?;
    let n: usize = n.trim().parse().map_err(|_| "expected i/n: n is not a positive integer")?;
    if n == 0 || i >= n {
        return Err("expected i/n with 0 ≤ i < n".into());
    }
    Ok((i, n))
}

/// A warm-up longer than the run never reaches the learning rate asked for.
pub fn check_warmup(warmup: u64, steps: u64) -> anyhow::Result<()> {
    if warmup > steps {
        anyhow::bail!(
            "--warmup {warmup} is more than --steps {steps}: the learning rate would never reach --lr; pass --warmup N with N ≤ {steps}"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_enforced_at_their_edges() {
        assert_eq!(positive_usize("1"), Ok(1));
        assert!(positive_usize("0").is_err() && positive_usize("-1").is_err() && positive_usize("x").is_err());
        assert_eq!(positive_u64("3"), Ok(3));
        assert!(positive_u64("0").is_err());
        assert_eq!(max_len("2"), Ok(2));
        assert!(max_len("1").is_err() && max_len("0").is_err());
        assert_eq!(positive_f64("2e-5"), Ok(2e-5));
        for bad in ["0", "-1", "nan", "inf", "-inf", "lr"] {
            assert!(positive_f64(bad).is_err(), "{bad}");
        }
        assert_eq!(non_negative_f64("0"), Ok(0.0));
        for bad in ["-0.1", "nan", "inf"] {
            assert!(non_negative_f64(bad).is_err(), "{bad}");
        }
        assert_eq!(open_fraction("0.2"), Ok(0.2));
        for bad in ["0", "1", "1.5", "-0.2", "nan"] {
            assert!(open_fraction(bad).is_err(), "{bad}");
        }
        assert_eq!(shard("2/3"), Ok((2, 3)));
        for bad in ["3/3", "0/0", "1", "a/2", "1/b"] {
            assert!(shard(bad).is_err(), "{bad}");
        }
        assert!(check_warmup(10, 10).is_ok() && check_warmup(11, 10).is_err());
    }
}
