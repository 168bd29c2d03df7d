//! Small text helpers for messages.

/// The first `n` characters of `s`, with an ellipsis when cut.
pub fn preview(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if s.chars().count() > n {
        out.push('…');
    }
    out
}
