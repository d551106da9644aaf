//! An instance runs its command under `/bin/sh -c` with the environment it was given, its
//! own hostname, and its output in the log files.

use mesh_runtime::{Runtime, Status};

use super::support::Fixture;

#[tokio::test]
async fn runs_the_command_with_its_env_under_sh() {
    let fx = Fixture::new(1).await;
    fx.network("app", 0).await;
    let mut spec = fx.spec(
        "r1",
        "app",
        "app-web",
        r#"echo "greeting=$GREETING sum=$((2+3)) host=$(hostname) pid=$$"; echo oops >&2; exit 4"#,
    );
    spec.env.insert("GREETING".into(), "hello world".into());
    let handle = fx.rt.create(&spec).await.unwrap();
    assert!(handle.pid > 1);
    assert!(fx.subnet(0).contains(handle.address));

    let st = fx.wait("r1", 10).await;
    assert_eq!((st.code, st.signal, st.oom_killed), (Some(4), None, false));
    assert_eq!(
        fx.stdout("r1"),
        "greeting=hello world sum=5 host=app-web pid=1\n"
    );
    assert_eq!(fx.stderr("r1"), "oops\n");
    assert_eq!(handle.logs.stdout, fx.rt.instance_dir("r1").logs().stdout);
    assert_eq!(fx.rt.state("r1").await.unwrap().status, Status::Exited(st));

    fx.rt.delete("r1").await.unwrap();
    fx.rt.remove_network("app").await.unwrap();
    fx.assert_clean().await;
}
