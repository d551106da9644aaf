//! Cron schedules: never a panic; an accepted schedule prints as text that parses to the
//! same schedule, and its next run (from any time in ±1000 years) is later than the start.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_types::schedule::Schedule;

/// About 1000 years in milliseconds.
const SPAN_MS: i64 = 1000 * 366 * 86_400_000;

fuzz_target!(|data: &[u8]| {
    let (at, text) = match data.split_first_chunk::<8>() {
        Some((at, text)) => (i64::from_le_bytes(*at) % SPAN_MS, text),
        None => (0, data),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(schedule) = Schedule::parse(text) else {
        return;
    };
    let again = Schedule::parse(&schedule.to_string()).expect("printed schedule parses");
    assert_eq!(again, schedule);
    if let Some(next) = schedule.next_after(at) {
        assert!(next > at, "next run {next} not after {at}");
    }
});
