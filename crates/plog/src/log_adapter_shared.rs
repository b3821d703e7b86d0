//! What the `log` and `tracing` adapters share.

/// `text` cut to at most `max` bytes at a character boundary.
#[cfg_attr(not(any(feature = "log", feature = "tracing")), allow(dead_code))]
pub(crate) fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    #[test]
    fn cuts_at_char_boundaries() {
        assert_eq!(super::cut("aé", 2), "a");
        assert_eq!(super::cut("aé", 3), "aé");
        assert_eq!(super::cut("", 0), "");
    }
}
