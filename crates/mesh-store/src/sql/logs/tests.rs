use super::*;

#[test]
fn old_lines_go_from_the_front_until_a_young_one() {
    let oldest = [(5, 10), (7, 10), (20, 10), (6, 10)];
    // Lines before 10 go; the young third line stops the drop even though the fourth is old.
    assert_eq!(prune_count(&oldest, 10, 0), (2, 20));
    assert_eq!(prune_count(&oldest, 0, 0), (0, 0));
}

#[test]
fn excess_bytes_go_oldest_first_until_within_budget() {
    let oldest = [(100, 10), (101, 10), (102, 10)];
    assert_eq!(prune_count(&oldest, 0, 1), (1, 10));
    assert_eq!(prune_count(&oldest, 0, 10), (1, 10));
    assert_eq!(prune_count(&oldest, 0, 11), (2, 20));
    // More excess than the rows looked at: all of them, the rest at the next batch.
    assert_eq!(prune_count(&oldest, 0, 1000), (3, 30));
}

#[test]
fn insert_numbers_every_placeholder() {
    let sql = insert_sql(2);
    assert!(
        sql.contains("($1, $2, $3, $4, $5, $6, $7, $8, $9, $10), ($11, "),
        "{sql}"
    );
    assert!(sql.ends_with("$20) RETURNING id"), "{sql}");
}

#[test]
fn a_line_counts_its_text_instance_and_overhead() {
    let line = LogLine {
        at: 0,
        environment: Name::parse("shop").unwrap(),
        stack: Name::parse("app").unwrap(),
        service: Name::parse("web").unwrap(),
        instance: "w1".into(),
        stream: LogStream::Stdout,
        text: "hello".into(),
        offset: 1,
        rack: None,
    };
    assert_eq!(size(&line), 7 + LINE_OVERHEAD);
}
