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

#[test]
fn run_mount_and_other_host_reaching_options_are_refused_before_buildah() {
    for bad in [
        "FROM scratch\nRUN --mount=type=bind,from=x,source=/,target=/h cat /h/etc/shadow\n",
        "FROM scratch\nrun --mount=type=cache,id=../../../../x,target=/c true\n",
        "FROM scratch\nRUN \\\n  --mount=type=secret,id=x true\n",
        "FROM scratch\nRUN --network=host curl 127.0.0.1\n",
        "FROM scratch\nRUN --security=insecure true\n",
        "# escape=`\nFROM scratch\nRUN `\n --mount=type=tmpfs,target=/t true\n",
    ] {
        let err = check_dockerfile(bad).unwrap_err();
        assert!(err.contains("is not supported in Widemesh builds"), "{err}");
    }
    for good in [
        "FROM scratch\nRUN echo --mount is only an argument here\n",
        "FROM scratch\nCOPY --from=build /x /y\nRUN true\n",
        "FROM scratch\n# RUN --mount=type=bind in a comment\nRUN true\n",
    ] {
        assert_eq!(check_dockerfile(good), Ok(()), "{good}");
    }
}

#[test]
fn names_that_would_steer_buildah_are_reserved() {
    for name in [
        "PATH",
        "LD_PRELOAD",
        "ld_library_path",
        "BUILDAH_ISOLATION",
        "CONTAINERS_CONF",
        "STORAGE_DRIVER",
        "HTTP_PROXY",
        "https_proxy",
        "npm_config_proxy",
        "MAVEN_OPTS",
        "TMPDIR",
        "GODEBUG",
    ] {
        assert!(reserved_arg(name), "{name}");
    }
    for name in ["DATABASE_URL", "BASE", "NODE_ENV", "SECRET_KEY"] {
        assert!(!reserved_arg(name), "{name}");
    }
}
