//! Durations and sizes as operators write them, parsed once here for both binaries: the
//! daemon's configuration (`[retention] max_age = "90d"`) and mediatorctl's arguments
//! (`--for 7d`, `--older-than 30d`) accept the same spellings.

/// Seconds in each duration unit, by suffix.
const DURATION_UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("s", 1),
    ("m", 60),
    ("h", 3_600),
    ("d", 86_400),
    ("w", 604_800),
];

/// Bytes in each size unit, by suffix (binary multiples; `K`, `M`, `G` mean the same).
const SIZE_UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("B", 1),
    ("K", 1 << 10),
    ("KiB", 1 << 10),
    ("M", 1 << 20),
    ("MiB", 1 << 20),
    ("G", 1 << 30),
    ("GiB", 1 << 30),
    ("T", 1 << 40),
    ("TiB", 1 << 40),
];

/// Splits "90m" into (90, "m") and scales the number by its unit.
fn scaled(s: &str, units: &[(&str, u64)], what: &str, example: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a {what} like {example}"))?;
    let unit = unit.trim();
    let Some((_, mul)) = units.iter().find(|(u, _)| *u == unit) else {
        let known: Vec<&str> = units
            .iter()
            .map(|(u, _)| *u)
            .filter(|u| !u.is_empty())
            .collect();
        return Err(format!(
            "unknown unit '{unit}' in '{s}' (use {})",
            known.join(", ")
        ));
    };
    n.checked_mul(*mul)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// Parses "90", "90s", "10m", "1h", "2d", "1w" into seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    scaled(s, DURATION_UNITS, "duration", "90s, 10m, 1h or 2d")
}

/// Parses "4096", "512K", "64MiB", "1G" into bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    scaled(s, SIZE_UNITS, "size", "4096, 512K, 64MiB or 1GiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("10m"), Ok(600));
        assert_eq!(parse_duration(" 2d "), Ok(172_800));
        assert_eq!(parse_duration("1w"), Ok(604_800));
        assert!(parse_duration("1y")
            .unwrap_err()
            .contains("unknown unit 'y'"));
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
        assert!(parse_duration("999999999999999999w")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512K"), Ok(512 * 1024));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert!(parse_size("1GB").unwrap_err().contains("unknown unit"));
        assert!(parse_size("MiB").is_err());
    }
}
