//! Times on the command line (`--since`, `--until`): RFC 3339 and journalctl's relative words.
//!
//! Accepted, all in UTC (the log's times are UTC and this crate reads no time zone database):
//! - RFC 3339: `2026-12-01T10:00:00Z`, `2026-12-01T10:00:00.25+01:00` (`T` or a space; `Z`,
//!   `z` or an offset; a fraction of up to 9 digits); also without the zone
//!   (`2026-12-01 10:00:00`, `2026-12-01T10:00`) and a bare date (`2026-12-01`, midnight),
//!   both taken as UTC;
//! - `now`, `today` (midnight), `yesterday` (midnight the day before), `tomorrow`;
//! - `N UNIT ago` and `-N UNIT` (`10 min ago`, `2 hours ago`, `-90s`), UNIT one of `s`, `sec`,
//!   `second`, `m`, `min`, `minute`, `h`, `hour`, `d`, `day`, `w`, `week` (and plurals);
//!   `+N UNIT` (`N UNIT` from now).

use std::time::{SystemTime, UNIX_EPOCH};

const NANOS: i128 = 1_000_000_000;
const DAY: i128 = 86_400 * NANOS;

/// A time given on the command line, as nanoseconds since the Unix epoch (UTC); a time before
/// the epoch is 0 and one past what a `u64` holds is `u64::MAX` (records cannot be there).
pub(crate) fn parse(text: &str) -> Result<u64, String> {
    parse_at(text, now_nanos()).map(clamp).ok_or_else(|| {
        format!(
            "cannot read {text:?} as a time; expected RFC 3339 (2026-12-01T10:00:00Z, \
                 2026-12-01 10:00:00.5+01:00, 2026-12-01) or a relative time (now, today, \
                 yesterday, \"10 min ago\", \"2 hours ago\", -30s)"
        )
    })
}

fn clamp(nanos: i128) -> u64 {
    u64::try_from(nanos.max(0)).unwrap_or(u64::MAX)
}

fn now_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i128::try_from(since.as_nanos()).unwrap_or(i128::MAX)
        })
}

/// `text` as nanoseconds since the epoch, with `now` the current time.
pub(crate) fn parse_at(text: &str, now: i128) -> Option<i128> {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    let midnight = now.div_euclid(DAY) * DAY;
    match lower.as_str() {
        "now" => return Some(now),
        "today" => return Some(midnight),
        "yesterday" => return Some(midnight - DAY),
        "tomorrow" => return Some(midnight + DAY),
        _ => {}
    }
    if let Some(ago) = lower.strip_suffix("ago") {
        return Some(now - span(ago)?);
    }
    if let Some(back) = lower.strip_prefix('-') {
        return Some(now - span(back)?);
    }
    if let Some(ahead) = lower.strip_prefix('+') {
        return Some(now + span(ahead)?);
    }
    absolute(text.as_bytes())
}

/// `10 min`, `2hours`, `1 day`: a span in nanoseconds.
fn span(text: &str) -> Option<i128> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 12 {
        return None;
    }
    let count: i128 = text[..digits].parse().ok()?;
    let unit = match text[digits..].trim() {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 7 * 86_400,
        _ => return None,
    };
    Some(count * unit * NANOS)
}

/// `YYYY-MM-DD[(T| )HH:MM[:SS[.F]]][Z|±HH:MM]`.
fn absolute(b: &[u8]) -> Option<i128> {
    let mut at = 0;
    let year = number(b, &mut at, 4)?;
    expect(b, &mut at, b'-')?;
    let month = number(b, &mut at, 2)?;
    expect(b, &mut at, b'-')?;
    let day = number(b, &mut at, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut nanos = days_from_civil(year, month, day) * DAY;
    if at == b.len() {
        return Some(nanos);
    }
    if !matches!(b[at], b'T' | b't' | b' ') {
        return None;
    }
    at += 1;
    let hour = number(b, &mut at, 2)?;
    expect(b, &mut at, b':')?;
    let minute = number(b, &mut at, 2)?;
    let mut second = 0;
    if b.get(at) == Some(&b':') {
        at += 1;
        second = number(b, &mut at, 2)?;
    }
    // 60: a leap second, as RFC 3339 allows; it is read as the next second.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    nanos += ((hour * 60 + minute) * 60 + second) * NANOS;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        let mut scale = NANOS;
        let mut fraction = 0;
        while let Some(&digit) = b.get(at).filter(|d| d.is_ascii_digit()) {
            if at - start >= 9 {
                return None;
            }
            scale /= 10;
            fraction += i128::from(digit - b'0') * scale;
            at += 1;
        }
        if at == start {
            return None;
        }
        nanos += fraction;
    }
    match b.get(at) {
        None => Some(nanos),
        Some(b'Z' | b'z') if at + 1 == b.len() => Some(nanos),
        Some(&sign @ (b'+' | b'-')) => {
            at += 1;
            let hours = number(b, &mut at, 2)?;
            expect(b, &mut at, b':')?;
            let minutes = number(b, &mut at, 2)?;
            if at != b.len() || hours > 23 || minutes > 59 {
                return None;
            }
            let offset = (hours * 60 + minutes) * 60 * NANOS;
            // 10:00+01:00 is 09:00Z.
            Some(if sign == b'+' {
                nanos - offset
            } else {
                nanos + offset
            })
        }
        Some(_) => None,
    }
}

fn number(b: &[u8], at: &mut usize, digits: usize) -> Option<i128> {
    let field = b.get(*at..*at + digits)?;
    if !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    *at += digits;
    Some(
        field
            .iter()
            .fold(0, |value, &d| value * 10 + i128::from(d - b'0')),
    )
}

fn expect(b: &[u8], at: &mut usize, byte: u8) -> Option<()> {
    (b.get(*at) == Some(&byte)).then(|| *at += 1)
}

fn days_in_month(year: i128, month: i128) -> i128 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i128, month: i128, day: i128) -> i128 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::{DAY, NANOS, parse_at};

    const NOW: i128 = 1_700_000_000 * NANOS + 123; // 2023-11-14T22:13:20Z

    #[test]
    fn rfc3339_with_fraction_and_offset() {
        assert_eq!(parse_at("1970-01-01T00:00:00Z", NOW), Some(0));
        assert_eq!(
            parse_at("2023-11-14T22:13:20.123456789Z", NOW),
            Some(1_700_000_000_123_456_789)
        );
        assert_eq!(
            parse_at("2023-11-14T23:13:20.5+01:00", NOW),
            Some(1_700_000_000 * NANOS + NANOS / 2)
        );
        assert_eq!(
            parse_at("2023-11-14 21:13:20-01:00", NOW),
            Some(1_700_000_000 * NANOS)
        );
        assert_eq!(
            parse_at("2023-11-14", NOW),
            Some(1_700_000_000 * NANOS - (22 * 3600 + 13 * 60 + 20) * NANOS)
        );
        assert_eq!(parse_at("2024-02-29T00:00:00Z", NOW), Some(19_782 * DAY));
        for bad in [
            "2023-02-29",
            "2023-13-01",
            "2023-11-14T24:00Z",
            "2023-11-14T10:00:00.Z",
            "2023-11-14T10:00:00.1234567890Z",
            "2023-11-14T10:00:00Zjunk",
            "20231114",
            "",
            "10 parsecs ago",
            "ago",
        ] {
            assert_eq!(parse_at(bad, NOW), None, "{bad}");
        }
    }

    #[test]
    fn relative_times() {
        let midnight = NOW.div_euclid(DAY) * DAY;
        assert_eq!(parse_at("now", NOW), Some(NOW));
        assert_eq!(parse_at("today", NOW), Some(midnight));
        assert_eq!(parse_at("Yesterday", NOW), Some(midnight - DAY));
        assert_eq!(parse_at("10 min ago", NOW), Some(NOW - 600 * NANOS));
        assert_eq!(parse_at("2 hours ago", NOW), Some(NOW - 7200 * NANOS));
        assert_eq!(parse_at("1 day ago", NOW), Some(NOW - DAY));
        assert_eq!(parse_at("-90s", NOW), Some(NOW - 90 * NANOS));
        assert_eq!(parse_at("+1h", NOW), Some(NOW + 3600 * NANOS));
    }
}
