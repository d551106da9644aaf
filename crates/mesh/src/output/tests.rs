use super::*;

#[test]
fn tables_are_plain_aligned_and_unpadded_at_the_end() {
    let t = table(
        &["NAME", "RACKS"],
        vec![
            vec!["shop".into(), "local".into()],
            vec!["a-much-longer-name".into(), "r1,r2".into()],
        ],
    );
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 3, "{t}");
    assert_eq!(lines[0], "NAME                RACKS");
    assert_eq!(lines[1], "shop                local");
    assert_eq!(lines[2], "a-much-longer-name  r1,r2");
}

#[test]
fn an_empty_table_is_its_header() {
    assert_eq!(table(&["A", "B"], vec![]), "A  B");
}

#[test]
fn fields_align_their_keys() {
    let f = fields(&[
        ("name", "shop".into()),
        ("created at", "x".into()),
        ("empty", "".into()),
    ]);
    assert_eq!(f, "name        shop\ncreated at  x\nempty");
}

#[test]
fn cells_are_one_line_and_bounded() {
    assert_eq!(cell("a\nb", 10), "a\\nb");
    assert_eq!(cell("abcdefghij", 5), "abcd…");
    assert_eq!(cell("abc", 3), "abc");
}

#[test]
fn dates_are_utc_calendar_dates() {
    assert_eq!(date(0), "1970-01-01");
    assert_eq!(datetime(0), "1970-01-01 00:00:00");
    // 2024-02-29 12:34:56 UTC, a leap day.
    assert_eq!(datetime(1_709_210_096_000), "2024-02-29 12:34:56");
    assert_eq!(date(1_709_210_096_000), "2024-02-29");
    // 2000-03-01, past a century leap year.
    assert_eq!(date(951_868_800_000), "2000-03-01");
    // Before the epoch.
    assert_eq!(date(-86_400_000), "1969-12-31");
}

#[test]
fn json_is_pretty() {
    let s = json_string(&serde_json::json!({"a": [1]}));
    assert_eq!(s, "{\n  \"a\": [\n    1\n  ]\n}");
}

#[test]
fn dashes_stand_for_nothing() {
    assert_eq!(or_dash(None::<String>), "-");
    assert_eq!(or_dash(Some("")), "-");
    assert_eq!(or_dash(Some(3)), "3");
}
