use super::*;

const MIN: i64 = 60_000;
// 2026-11-25T00:00:00Z, a Wednesday.
const WED: i64 = 1_795_564_800_000;

#[test]
fn civil_dates_are_right() {
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(WED / 86_400_000), (2026, 11, 25));
    assert_eq!(civil_from_days(11_016), (2000, 2, 29));
}

#[test]
fn documented_examples_parse() {
    for ok in [
        "5 4 * * *",
        "5 16 * * *",
        "@hourly",
        "@every 2m",
        "@daily",
        "*/15 * * * 1-5",
        "0 9 1,15 jan-mar mon",
    ] {
        Schedule::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn malformed_schedules_say_why() {
    let cases = [
        ("* * * *", "4 fields"),
        ("60 * * * *", "out of range 0-59"),
        ("* 24 * * *", "out of range 0-23"),
        ("* * 0 * *", "out of range 1-31"),
        ("* * * 13 *", "out of range 1-12"),
        ("*/0 * * * *", "at least 1"),
        ("5-1 * * * *", "backwards"),
        ("x * * * *", "not a number"),
        ("@fortnightly", "unknown nickname"),
        ("@every", "duration after @every"),
        ("@every 2", "needs a unit"),
        ("@every 2w", "unknown unit"),
        ("", "0 fields"),
    ];
    for (bad, why) in cases {
        let e = Schedule::parse(bad).unwrap_err();
        assert!(e.contains(why), "{bad:?}: {e}");
    }
}

#[test]
fn next_fire_times() {
    let at = |s: &str, t: i64| Schedule::parse(s).unwrap().next_after(t).unwrap();
    assert_eq!(at("5 4 * * *", WED), WED + (4 * 60 + 5) * MIN);
    assert_eq!(
        at("5 4 * * *", WED + (4 * 60 + 5) * MIN),
        WED + 86_400_000 + (4 * 60 + 5) * MIN
    );
    assert_eq!(at("@hourly", WED + 1), WED + 60 * MIN);
    assert_eq!(at("@every 2m", WED + 1), WED + 2 * MIN);
    // The next Sunday (7 and 0 both mean Sunday) after Wednesday is 4 days on.
    assert_eq!(at("0 0 * * 7", WED), WED + 4 * 86_400_000);
    assert_eq!(at("0 0 * * sun", WED), WED + 4 * 86_400_000);
    // December 1st.
    assert_eq!(at("0 0 1 * *", WED), WED + 6 * 86_400_000);
    assert_eq!(at("0 0 1 dec *", WED), WED + 6 * 86_400_000);
    // Feb 29 exists only in leap years: the next one after Nov 2026 is 2028-02-29.
    let feb29 = at("0 0 29 2 *", WED);
    assert_eq!(civil_from_days(feb29 / 86_400_000), (2028, 2, 29));
}

#[test]
fn both_day_fields_restricted_means_either() {
    // The 1st of the month or any Friday: from Wednesday Nov 25, Friday Nov 27 comes first.
    let s = Schedule::parse("0 0 1 * 5").unwrap();
    assert_eq!(s.next_after(WED), Some(WED + 2 * 86_400_000));
}

#[test]
fn schedules_serialize_as_text() {
    let s: Schedule = serde_json::from_str("\"@every 90s\"").unwrap();
    assert_eq!(serde_json::to_string(&s).unwrap(), "\"@every 90s\"");
    assert!(serde_json::from_str::<Schedule>("\"bad\"").is_err());
}

/// Found by the `cron` fuzz target: a step or interval far beyond the field overflowed.
#[test]
fn huge_steps_and_intervals_neither_overflow_nor_wrap() {
    // A step past the end of the field means "the start value only".
    let s = Schedule::parse("59/4294967295 23-23/4294967295 * * *").unwrap();
    assert_eq!(s.next_after(WED), Some(WED + (23 * 60 + 59) * MIN));
    for (bad, why) in [
        ("@every 18446744073709551615s", "at most 3650d"),
        ("@every 213503982334601d", "at most 3650d"),
        ("@every 99999999999999999999d", "too large"),
    ] {
        let e = Schedule::parse(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
    assert!(Schedule::parse("@every 3650d").is_ok());
    assert!(Schedule::parse("@every 3651d").is_err());
    // Run times past the end of i64 time are None, not a wrapped time in the past.
    let every = Schedule::parse("@every 3650d").unwrap();
    assert_eq!(every.next_after(i64::MAX - 1), None);
    let hourly = Schedule::parse("@hourly").unwrap();
    assert_eq!(hourly.next_after(i64::MAX - 1), None);
}
