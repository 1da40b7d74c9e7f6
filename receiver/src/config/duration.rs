//! Durations as written on the command line and in the configuration file
//! (`50us`, `500ms`, `30s`, `5m`, `1h`).

use std::time::Duration;

pub fn parse(text: &str) -> Result<Duration, String> {
    let (number, unit) =
        text.split_at(text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len()));
    let nanos_per_unit: u64 = match unit {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" | "" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use ns, us, ms, s, m or h)")),
    };
    let bad = || format!("{text:?} is not a duration like 50us, 500ms, 30s or 5m");
    // Whole numbers convert exactly (a threshold of 49152ns must stay 49152).
    if let Ok(whole) = number.parse::<u64>() {
        return whole.checked_mul(nanos_per_unit).map(Duration::from_nanos).ok_or_else(bad);
    }
    let value: f64 = number.parse().map_err(|_| bad())?;
    Duration::try_from_secs_f64(value * nanos_per_unit as f64 / 1e9).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_exactly() {
        assert_eq!(parse("49152ns"), Ok(Duration::from_nanos(49_152)));
        assert_eq!(parse("50us"), Ok(Duration::from_micros(50)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1_500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert!(parse("3 days").is_err());
        assert!(parse("99999999999999999999h").is_err());
    }
}
