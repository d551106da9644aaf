use std::collections::HashMap;
use std::io;

use super::*;

fn files(map: &[(&str, &str)]) -> impl Fn(&Path) -> io::Result<String> {
    let map: HashMap<String, String> = map
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |p: &Path| {
        map.get(p.to_str().unwrap())
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "No such file or directory"))
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn no_stdin() -> impl FnMut() -> io::Result<String> {
    || panic!("stdin must not be read")
}

fn collect(
    pairs: &[&str],
    file_args: &[&str],
    stdin: Option<&str>,
    fs: &[(&str, &str)],
    input: Option<&str>,
) -> Result<Vec<(String, String)>> {
    let (pairs, file_args) = (strings(pairs), strings(file_args));
    let args = ValueArgs {
        pairs: &pairs,
        files: &file_args,
        stdin,
    };
    let input = input.map(str::to_string);
    let mut read = move || match &input {
        Some(s) => Ok(s.clone()),
        None => panic!("stdin must not be read"),
    };
    let out = collect_config(&args, &files(fs), &mut read)?;
    Ok(out.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn literal_values_split_at_the_first_equals_sign() {
    let got = collect(&["MESSAGE=Hello World", "URL=a=b=c"], &[], None, &[], None).unwrap();
    assert_eq!(got, pairs(&[("MESSAGE", "Hello World"), ("URL", "a=b=c")]));
}

#[test]
fn a_key_without_a_value_is_refused_clearly() {
    let err = collect(&["MESSAGE"], &[], None, &[], None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "\"MESSAGE\" has no value: write MESSAGE=VALUE (to remove a variable use `config unset MESSAGE`)"
    );
}

#[test]
fn invalid_keys_and_empty_values_are_refused() {
    let err = collect(&["1X=a"], &[], None, &[], None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("config key \"1X\" is invalid"), "{err}");
    let err = collect(&["A-B=a"], &[], None, &[], None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("config key \"A-B\" is invalid"), "{err}");
    let err = collect(&["EMPTY="], &[], None, &[], None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("config value of EMPTY is empty"), "{err}");
}

#[test]
fn file_values_are_read_and_lose_one_final_newline() {
    let got = collect(
        &[],
        &["MESSAGE=./message.txt", "PEM=/k.pem"],
        None,
        &[
            ("./message.txt", "Hello World\n"),
            ("/k.pem", "line1\nline2\n\n"),
        ],
        None,
    )
    .unwrap();
    assert_eq!(
        got,
        pairs(&[("MESSAGE", "Hello World"), ("PEM", "line1\nline2\n")])
    );
    let err = collect(&[], &["X=/missing"], None, &[], None)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("cannot read the value of X from /missing"),
        "{err}"
    );
    let err = collect(&[], &["X"], None, &[], None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected KEY=PATH after --file"), "{err}");
}

#[test]
fn stdin_values_are_read_once() {
    let got = collect(
        &["A=1"],
        &[],
        Some("MESSAGE=-"),
        &[],
        Some("Hello World\r\n"),
    )
    .unwrap();
    assert_eq!(got, pairs(&[("A", "1"), ("MESSAGE", "Hello World")]));
    let err = collect(&[], &[], Some("MESSAGE=x"), &[], None)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("--stdin takes KEY=-"), "{err}");
}

#[test]
fn a_key_given_twice_is_refused() {
    let err = collect(&["A=1"], &["A=/f"], None, &[("/f", "2")], None)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "A is given twice");
}

#[test]
fn nothing_to_set_is_an_error() {
    let mut read = no_stdin();
    let err = collect_config(&ValueArgs::default(), &files(&[]), &mut read)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("nothing to set"), "{err}");
}

#[test]
fn unset_takes_names_only() {
    let keys = parse_keys(&strings(&["A", "B", "A"])).unwrap();
    assert_eq!(keys.len(), 2);
    let err = parse_keys(&strings(&["A=1"])).unwrap_err().to_string();
    assert!(err.contains("takes names only"), "{err}");
    assert!(parse_keys(&[]).is_err());
}

#[test]
fn secrets_keep_file_contents_verbatim() {
    let got = collect_secrets(
        &strings(&["user=root"]),
        &strings(&["private_key=/id"]),
        &files(&[("/id", "-----BEGIN KEY-----\nabc\n-----END KEY-----\n")]),
    )
    .unwrap();
    assert_eq!(got["user"], "root");
    assert!(got["private_key"].ends_with("-----END KEY-----\n"));
    let err = collect_secrets(&strings(&["novalue"]), &[], &files(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected KEY=VALUE after --secret"), "{err}");
}
