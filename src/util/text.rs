//! Small text helpers for messages.

/// The first `n` characters of `s`, with an ellipsis when cut.
pub fn preview(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if s.chars().count() > n {
        out.push('…');
    }
    out
}

/// `s` with its control characters escaped (a newline as `\n`), so that a name read from a
/// user's file cannot split the one-line error that quotes it.
pub fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn one_line_escapes_only_control_characters() {
        assert_eq!(one_line("male"), "male");
        assert_eq!(one_line("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(one_line("é \"x\""), "é \"x\"");
    }
}
