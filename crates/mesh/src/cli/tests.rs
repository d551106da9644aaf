//! The command tree: clap's own consistency checks, and the documented syntax parses.

use clap::{CommandFactory, Parser};

use super::{Cli, Command};

#[test]
fn the_command_tree_is_consistent() {
    Cli::command().debug_assert();
}

fn parse(line: &str) -> Cli {
    let args = std::iter::once("mesh").chain(line.split(' '));
    Cli::try_parse_from(args).unwrap_or_else(|e| panic!("`mesh {line}`: {e}"))
}

fn usage_error(line: &str) {
    let args = std::iter::once("mesh").chain(line.split(' '));
    assert!(
        Cli::try_parse_from(args).is_err(),
        "`mesh {line}` should not parse"
    );
}

#[test]
fn the_documented_commands_parse() {
    for line in [
        "deploy",
        "deploy --buildpack",
        "deploy --dockerfile",
        "deployments list",
        "deployments show v2",
        "services list",
        "env create shop",
        "env create shop --rack a,b",
        "env ls",
        "env delete shop",
        "env update my-environment --rack my-old-rack,my-new-rack",
        "logs --since 1h",
        "logs -f",
        "create stack --buildpack",
        "create stack app --dockerfile",
        "stack config list",
        "stack config set MESSAGE=hi",
        "stack config set --file MESSAGE=./message.txt",
        "stack config set --stdin MESSAGE=-",
        "stack buildpacks set-builder heroku/buildpacks:20",
        "stack set-release-command -- rails db:migrate",
        "stack set-release-command --clear",
        "config set RAILS_ENV=production",
        "config set --region eu A=1",
        "config unset A B --rack r1",
        "svc update worker --command app",
        "service update web --command app",
        "svc create -n emailsender --schedule @hourly -- node send-emails.js",
        "svc config set web A=1",
        "svc config resolved web --rack r1",
        "endpoint create app.example.com",
        "endpoint publish app.example.com --service web --path /api",
        "certificate list",
        "certificate upload ssl.cert ca.cert ssl.key",
        "cert upload full.pem",
        "rack create my-rack --provider p --region r",
        "rack list",
        "rack delete my-rack --yes",
        "rack upgrade my-rack",
        "rack resize my-rack --size s-2vcpu-4gb",
        "provider add p --kind ssh --secret-file private_key=/k --secret user=root",
        "token create ci --role admin",
        "token create dev --role developer --env shop --env staging --expires 30d",
        "events --limit 5",
        "completions zsh",
        "link --env shop --stack app",
        "up --listen 127.0.0.1:0 --data-dir /tmp/x",
        "server --database-url postgres://u@h/db",
    ] {
        parse(line);
    }
}

fn flags(line: &str) -> anyhow::Result<super::Flags> {
    parse(line).flags()
}

#[test]
fn target_flags_go_anywhere_after_the_command_and_before_it() {
    let cli = parse("svc list --env shop -s app --json");
    let f = cli.flags().unwrap();
    assert_eq!(f.one_env().unwrap().as_deref(), Some("shop"));
    assert_eq!(f.stack.as_deref(), Some("app"));
    assert!(cli.global.json);
    let f = flags("svc --env shop list").unwrap();
    assert_eq!(f.one_env().unwrap().as_deref(), Some("shop"));
    let f = flags("-e shop config list").unwrap();
    assert_eq!(f.one_env().unwrap().as_deref(), Some("shop"));
    let f = flags("-e shop -s app stack config list").unwrap();
    assert_eq!(f.stack.as_deref(), Some("app"));
    let f = flags("token create dev --role developer --env shop -e staging").unwrap();
    assert_eq!(f.env, ["shop", "staging"]);
    assert!(f.one_env().is_err(), "one environment only elsewhere");
    usage_error("config list --env a --env b");
}

/// The `--help` text of `mesh <line>`.
fn help(line: &str) -> String {
    let mut cmd = Cli::command();
    cmd.build(); // propagates the flags of `svc` to `svc create` and so on
    let mut sub = &mut cmd;
    for name in line.split(' ') {
        sub = sub
            .find_subcommand_mut(name)
            .unwrap_or_else(|| panic!("no subcommand {name} in `mesh {line}`"));
    }
    sub.render_long_help().to_string()
}

#[test]
fn env_and_stack_are_offered_only_where_they_mean_something() {
    for line in [
        "up",
        "server",
        "agent",
        "router",
        "login",
        "whoami",
        "rack",
        "rack list",
        "provider",
        "token list",
        "token delete",
        "events",
        "env ls",
        "env create",
        "env delete",
    ] {
        let h = help(line);
        assert!(
            !h.contains("--env"),
            "`mesh {line} --help` offers --env:\n{h}"
        );
        assert!(
            !h.contains("--stack"),
            "`mesh {line} --help` offers --stack:\n{h}"
        );
    }
    for line in ["certificate list", "env show", "token create"] {
        let h = help(line);
        assert!(
            h.contains("--env"),
            "`mesh {line} --help` lacks --env:\n{h}"
        );
        assert!(
            !h.contains("--stack"),
            "`mesh {line} --help` offers --stack:\n{h}"
        );
    }
    for line in [
        "deploy",
        "rollback",
        "config set",
        "stack config list",
        "svc create",
        "services list",
        "endpoint publish",
        "deployments list",
        "logs",
        "instances",
        "run",
        "exec",
        "link",
        "create stack",
    ] {
        let h = help(line);
        assert!(
            h.contains("--env"),
            "`mesh {line} --help` lacks --env:\n{h}"
        );
        assert!(
            h.contains("--stack"),
            "`mesh {line} --help` lacks --stack:\n{h}"
        );
    }
    let top = help("deploy");
    assert!(top.contains("--json"), "--json stays global");
}

#[test]
fn target_flags_are_refused_after_commands_they_mean_nothing_to() {
    usage_error("up --env shop");
    usage_error("rack list --stack app");
    usage_error("certificate list --stack app");
    usage_error("token list --env shop");
    // Before the command they act like MESH_ENV / MESH_STACK: ignored where meaningless, so a
    // script that puts them before every command keeps working.
    assert_eq!(flags("-e shop up").unwrap(), super::Flags::default());
    let f = flags("-e shop -s app env show").unwrap();
    assert_eq!((f.env, f.stack), (vec!["shop".to_string()], None));
}

#[test]
fn usage_mistakes_are_clap_errors() {
    usage_error("deploy --buildpack --dockerfile");
    usage_error("svc create");
    usage_error("svc update web");
    usage_error("svc scale web");
    usage_error("config set --region eu --rack r A=1");
    usage_error("stack set-release-command");
    usage_error("env update shop");
    usage_error("up --listen nowhere");
}

#[test]
fn roles_are_told_apart() {
    assert!(parse("up").command.is_role());
    assert!(parse("server").command.is_role());
    assert!(!parse("env ls").command.is_role());
    assert!(matches!(
        parse("instances").command,
        Command::Instances { .. }
    ));
}

#[test]
fn router_limits_reach_the_router_options() {
    let Command::Up(up) = parse(
        "up --router-max-body-size 2 --router-header-timeout 3 --router-response-timeout 4 --router-client-timeout 5",
    )
    .command
    else {
        panic!("not up");
    };
    let o = up.router_limits.options();
    assert_eq!(o.max_request_body_bytes, 2 * 1024 * 1024);
    assert_eq!(o.header_read_timeout, std::time::Duration::from_secs(3));
    assert_eq!(o.response_head_timeout, std::time::Duration::from_secs(4));
    assert_eq!(o.client_timeout, std::time::Duration::from_secs(5));
    let Command::Up(up) = parse("up").command else {
        panic!("not up");
    };
    let d = mesh_router::RouterOptions::default();
    let o = up.router_limits.options();
    assert_eq!(
        (
            o.max_request_body_bytes,
            o.header_read_timeout,
            o.response_head_timeout,
            o.client_timeout
        ),
        (
            d.max_request_body_bytes,
            d.header_read_timeout,
            d.response_head_timeout,
            d.client_timeout
        ),
        "the flags' defaults are the router's"
    );
    parse("router --api-url http://x --token t --router-client-timeout 9");
    parse("agent --api-url http://x --token t --http-listen 127.0.0.1:80 --router-max-body-size 1");
    usage_error("up --router-max-body-size 0");
    let Command::Up(up) = parse("up --router-workers 1").command else {
        panic!("not up");
    };
    assert_eq!(up.router_limits.options().workers, 1);
    usage_error("up --router-workers -1");
}

#[test]
fn trusted_proxies_reach_every_router_role() {
    let Command::Up(up) = parse(
        "up --router-trusted-proxies 10.0.0.0/8 2001:db8::/32 --router-trusted-proxies 192.0.2.7,198.51.100.0/24",
    )
    .command
    else {
        panic!("not up");
    };
    let got: Vec<String> = up
        .router_limits
        .options()
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        got,
        [
            "10.0.0.0/8",
            "2001:db8::/32",
            "192.0.2.7/32",
            "198.51.100.0/24"
        ]
    );
    let Command::Up(up) = parse("up").command else {
        panic!("not up");
    };
    assert!(up.router_limits.options().trusted_proxies.is_empty());
    parse("router --api-url http://x --token t --router-trusted-proxies 10.1.0.0/16");
    parse(
        "agent --api-url http://x --token t --http-listen 127.0.0.1:80 --router-trusted-proxies ::1",
    );
    usage_error("up --router-trusted-proxies 10.1.2.3/8");
    usage_error("up --router-trusted-proxies 10.0.0.0/33");
    usage_error("up --router-trusted-proxies proxy.example");
    usage_error("up --router-trusted-proxies");
    usage_error("up --router-response-timeout -1");
}

#[test]
fn access_log_takes_off_stderr_or_a_file_on_every_router_role() {
    use mesh_router::AccessLog;
    let access_log = |line: &str| match parse(line).command {
        Command::Up(up) => up.router_limits.access_log,
        Command::Router(r) => r.router_limits.access_log,
        Command::Agent(a) => a.router_limits.access_log,
        _ => panic!("not a router role: {line}"),
    };
    assert_eq!(access_log("up"), AccessLog::Stderr, "stderr by default");
    assert_eq!(access_log("up --access-log off"), AccessLog::Off);
    assert_eq!(access_log("up --access-log stderr"), AccessLog::Stderr);
    assert_eq!(
        access_log("up --access-log /var/log/mesh/access.log"),
        AccessLog::File("/var/log/mesh/access.log".into())
    );
    assert_eq!(
        access_log("router --api-url http://x --token t --access-log off"),
        AccessLog::Off
    );
    assert_eq!(
        access_log(
            "agent --api-url http://x --token t --http-listen 127.0.0.1:80 --access-log a.log"
        ),
        AccessLog::File("a.log".into())
    );
    usage_error("up --access-log");
    usage_error("up --access-log=");
}
