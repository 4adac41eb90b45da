//! Helpers shared by the fuzz targets.
//!
//! Inputs that carry several values put the short ones first, one per line, and the body last,
//! so that seed files stay readable: `fields(data, 2)` on `a\nb\nrest` gives `["a", "b"]` and
//! `rest`. Missing lines are `None`.

/// The first `n` lines of `data` (each `None` when absent or not UTF-8), and everything after.
pub fn fields(data: &[u8], n: usize) -> (Vec<Option<&str>>, &[u8]) {
    let mut rest = data;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        match rest.iter().position(|b| *b == b'\n') {
            Some(at) => {
                out.push(std::str::from_utf8(&rest[..at]).ok());
                rest = &rest[at + 1..];
            }
            None => {
                out.push(None);
            }
        }
    }
    (out, rest)
}

/// Whether `text` shows `secret`. Short values are skipped: they occur in any text by chance.
pub fn shows(text: &str, secret: &str) -> bool {
    secret.chars().count() >= 8 && text.contains(secret)
}
