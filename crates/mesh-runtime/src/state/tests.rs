use super::*;

#[test]
fn layout_paths() {
    let l = Layout::new("/d");
    assert_eq!(l.runc_root(), Path::new("/d/runc"));
    assert_eq!(l.network("shop"), Path::new("/d/networks/shop.json"));
    let i = l.instance("web-1");
    assert_eq!(i.rootfs(), Path::new("/d/instances/web-1/bundle/rootfs"));
    assert_eq!(i.upper(), Path::new("/d/instances/web-1/layer/upper"));
    assert_eq!(i.logs().stdout, Path::new("/d/instances/web-1/stdout.log"));
}

#[test]
fn json_records_are_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.json");
    assert_eq!(read_json::<Vec<u32>>(&p).unwrap(), None);
    write_json(&p, &vec![1u32, 2]).unwrap();
    assert_eq!(read_json::<Vec<u32>>(&p).unwrap(), Some(vec![1, 2]));
    assert!(!p.with_extension("json.tmp").exists());
    std::fs::write(&p, "{").unwrap();
    let e = read_json::<Vec<u32>>(&p).unwrap_err().to_string();
    assert!(e.contains("x.json"), "{e}");
}

#[test]
fn listing_a_missing_dir_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    assert!(list_dir(&dir.path().join("nope")).unwrap().is_empty());
    std::fs::create_dir(dir.path().join("b")).unwrap();
    std::fs::create_dir(dir.path().join("a")).unwrap();
    assert_eq!(list_dir(dir.path()).unwrap(), ["a", "b"]);
}
