//! Sizes as people write them (`8M`, `1.5G`), for the command line and the console alike.

/// A size that could not be read, and what a valid one looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("{0:?} is not a size (e.g. 8M, 512K, 1G)")]
    NotANumber(String),
    #[error("{text:?}: unknown unit {unit:?} (use K, M, G or T)")]
    UnknownUnit { text: String, unit: String },
    #[error("{0:?} is negative")]
    Negative(String),
}

/// `8388608`, `8M`, `8MiB`, `1.5G`: binary units.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .trim()
        .parse()
        .map_err(|_| SizeError::NotANumber(text.to_owned()))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => {
            return Err(SizeError::UnknownUnit {
                text: text.to_owned(),
                unit: other.to_owned(),
            })
        }
    };
    if number < 0.0 {
        return Err(SizeError::Negative(text.to_owned()));
    }
    Ok((number * factor as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units_and_refusals_say_what_is_valid() {
        assert_eq!(parse_size("8388608"), Ok(8 << 20));
        assert_eq!(parse_size("8M"), Ok(8 << 20));
        assert_eq!(parse_size(" 8MiB "), Ok(8 << 20));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert!(parse_size("eight")
            .unwrap_err()
            .to_string()
            .contains("e.g. 8M"));
        assert!(parse_size("8X")
            .unwrap_err()
            .to_string()
            .contains("use K, M, G or T"));
        assert_eq!(parse_size("-1K"), Err(SizeError::Negative("-1K".into())));
    }
}
