use super::*;

#[test]
fn declared_args_reads_every_form() {
    let df = "# syntax=docker/dockerfile:1\n\
              ARG BASE=debian\n\
              FROM scratch\n\
              # ARG COMMENTED\n\
              arg lower\n\
              ARG A=1 B \\\n\
              # a comment inside\n\
                  C=\"x y\"\n\
              ENV NOT_AN_ARG=1\n\
              RUN echo ARG FAKE\n";
    let got: Vec<String> = declared_args(df).into_iter().collect();
    assert_eq!(got, ["A", "B", "BASE", "C", "lower"]);
}

#[test]
fn the_escape_directive_changes_continuations() {
    let df = "# escape=`\nFROM scratch\nARG ONE `\n  TWO\nARG THREE\\\n";
    let got: Vec<String> = declared_args(df).into_iter().collect();
    // With ` as the escape, a trailing backslash is part of the word (and no valid name).
    assert_eq!(got, ["ONE", "TWO"]);
}
