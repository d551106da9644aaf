//! What the cloud provider tests stand on: moto's EC2 server (PyPI, installed by
//! `scripts/install-deps`), a fake of Hetzner Cloud's API that checks every request against
//! the published API description vendored in `fixtures/`, a "server" that is a network
//! namespace of this machine (bridge and namespace names start `wmc`, addresses
//! 10.198.63.0/24), and an executor of the cloud-config modules the drivers use.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use mesh_provider::NetPlan;
use serde_json::{Value, json};

use crate::harness::stop_child;
use crate::provider_lab::{Lab, quiet, sh};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The moto version `scripts/install-deps` installs, read from the script itself.
fn moto_dir() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install-deps");
    let text = std::fs::read_to_string(&script).unwrap();
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("MOTO_VERSION="))
        .expect("MOTO_VERSION= in scripts/install-deps")
        .trim();
    let dir = PathBuf::from(format!("/var/cache/widemesh/moto-{version}"));
    assert!(
        dir.join("installed").exists(),
        "moto {version} is not installed in {}: run scripts/install-deps",
        dir.display()
    );
    dir
}

/// The Python of moto's venv (it has PyYAML, which reads the cloud-config here).
pub fn python() -> PathBuf {
    moto_dir().join("bin/python")
}

/// `moto_server` on a free loopback port, killed when dropped.
pub struct Moto {
    child: Child,
    pub url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// `env` such as INITIAL_NO_AUTH_ACTION_COUNT=0 (moto then checks credentials).
    pub fn start(env: &[(&str, &str)]) -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::Builder::new()
            .prefix("wmc-moto-")
            .tempdir()
            .unwrap();
        let log = dir.path().join("moto.log");
        let out = File::create(&log).unwrap();
        let child = Command::new(moto_dir().join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut m = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(
            &format!("127.0.0.1:{port}").parse().unwrap(),
            Duration::from_millis(200),
        )
        .is_err()
        {
            assert!(
                Instant::now() < deadline && m.child.try_wait().unwrap().is_none(),
                "moto_server did not start: {}",
                m.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        m
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(10));
    }
}

// ---- The Hetzner Cloud fake ----

/// The vendored description: operations and request schemas (see its `origin`).
pub fn hcloud_description() -> Value {
    serde_json::from_str(include_str!("fixtures/hcloud-api-1.0.3.json")).unwrap()
}

/// The label-value pattern of the description's `labels` schema, checked by hand (the tests
/// have no regex engine): `^(()|[a-z0-9A-Z]|([a-z0-9A-Z][a-z0-9A-Z\._-]{0,61}[a-z0-9A-Z]))$`.
const LABEL_PATTERN: &str = r"^(()|[a-z0-9A-Z]|([a-z0-9A-Z][a-z0-9A-Z\._-]{0,61}[a-z0-9A-Z]))$";

fn label_value_ok(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    let inner = |c: char| alnum(c) || matches!(c, '.' | '_' | '-');
    let cs: Vec<char> = s.chars().collect();
    match cs.len() {
        0 => true,
        1 => alnum(cs[0]),
        n if n <= 63 => alnum(cs[0]) && alnum(cs[n - 1]) && cs[1..n - 1].iter().all(|&c| inner(c)),
        _ => false,
    }
}

/// Checks `v` against `schema` (the subset of JSON Schema the description's request schemas
/// use: type, properties, required, items, additionalProperties, enum, pattern, nullable,
/// $ref). A property the schema does not name is refused: the driver must send nothing the
/// API does not know. Any other keyword it meets fails the check rather than being ignored.
pub fn check_schema(doc: &Value, schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return check_schema(doc, &doc["schemas"][name], v, at, errs);
    }
    if v.is_null() && schema["nullable"] == true {
        return;
    }
    let ty = schema["type"].as_str().unwrap_or("");
    let ok = match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "" => true,
        other => {
            errs.push(format!("{at}: unknown schema type {other}"));
            false
        }
    };
    if !ok {
        errs.push(format!("{at}: {v} is not of type {ty}"));
        return;
    }
    for key in schema.as_object().unwrap().keys() {
        let known = [
            "type",
            "properties",
            "required",
            "items",
            "additionalProperties",
            "enum",
            "pattern",
            "nullable",
            "description",
            "example",
            "title",
            "format",
            "default",
        ];
        if !known.contains(&key.as_str()) {
            errs.push(format!("{at}: the fake cannot check schema keyword {key}"));
        }
    }
    if let Some(e) = schema["enum"].as_array()
        && !e.contains(v)
    {
        errs.push(format!("{at}: {v} is not one of {e:?}"));
    }
    if let Some(p) = schema["pattern"].as_str() {
        assert_eq!(p, LABEL_PATTERN, "a pattern the fake cannot check");
        if !label_value_ok(v.as_str().unwrap_or("")) {
            errs.push(format!("{at}: {v} does not match {p}"));
        }
    }
    if let Some(obj) = v.as_object() {
        for r in schema["required"].as_array().into_iter().flatten() {
            if !obj.contains_key(r.as_str().unwrap()) {
                errs.push(format!("{at}: required {r} is missing"));
            }
        }
        for (k, val) in obj {
            let sub = if let Some(s) = schema["properties"].get(k) {
                s
            } else if schema["additionalProperties"].is_object() {
                &schema["additionalProperties"]
            } else {
                errs.push(format!("{at}: {k} is not in the description"));
                continue;
            };
            check_schema(doc, sub, val, &format!("{at}.{k}"), errs);
        }
    }
    if let (Some(items), Some(a)) = (schema.get("items"), v.as_array()) {
        for (i, x) in a.iter().enumerate() {
            check_schema(doc, items, x, &format!("{at}[{i}]"), errs);
        }
    }
}

/// What the fake holds and saw.
#[derive(Default)]
pub struct FakeState {
    pub token: String,
    pub servers: Vec<Value>,
    pub next_id: u64,
    /// Servers the project may have (`resource_limit_exceeded` beyond).
    pub limit: usize,
    /// Every request: (method, path, query, body).
    pub requests: Vec<(String, String, String, Value)>,
    /// Requests that do not match the description.
    pub failures: Vec<String>,
}

pub const LOCATIONS: &[&str] = &["fsn1", "nbg1", "hel1", "ash", "hil", "sin"];
pub const SERVER_TYPES: &[&str] = &["cx22", "cx32", "cpx11", "cpx21", "cax11", "ccx13"];

/// A fake of Hetzner Cloud's API on a loopback port, in its own thread's runtime.
pub struct HetznerFake {
    pub url: String,
    pub state: Arc<Mutex<FakeState>>,
    _rt: tokio::runtime::Runtime,
}

fn hc_error(status: u16, code: &str, message: &str, details: Value) -> (u16, Value) {
    (
        status,
        json!({"error": {"code": code, "message": message, "details": details}}),
    )
}

fn page_meta(n: usize) -> Value {
    json!({"pagination": {"page": 1, "per_page": 50, "previous_page": null, "next_page": null, "last_page": 1, "total_entries": n}})
}

/// Whether a server's labels match a label selector (`key`, `key=value`, `key==value`,
/// `key!=value`, comma-separated: all must hold).
fn selects(labels: &Value, selector: &str) -> bool {
    selector.split(',').all(|term| {
        let term = term.trim();
        if let Some((k, v)) = term.split_once("!=") {
            labels[k].as_str() != Some(v)
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            labels[k].as_str() == Some(v)
        } else {
            labels.get(term).is_some()
        }
    })
}

impl HetznerFake {
    pub fn start(token: &str, limit: usize) -> HetznerFake {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(Mutex::new(FakeState {
            token: token.into(),
            next_id: 1000,
            limit,
            ..Default::default()
        }));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let st = state.clone();
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: axum::http::HeaderMap,
                  body: axum::body::Bytes| {
                let st = st.clone();
                async move {
                    let (status, v) = handle(&st, &method, &uri, &headers, &body);
                    (
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        v.to_string(),
                    )
                }
            },
        );
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HetznerFake {
            url,
            state,
            _rt: rt,
        }
    }

    pub fn failures(&self) -> Vec<String> {
        self.state.lock().unwrap().failures.clone()
    }
}

/// Checks one request against the description, then answers it as Hetzner Cloud would.
fn handle(
    st: &Mutex<FakeState>,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> (u16, Value) {
    let desc = hcloud_description();
    let mut s = st.lock().unwrap();
    let path = uri.path().strip_prefix("/v1").unwrap_or("").to_string();
    let query: Vec<(String, String)> = url_pairs(uri.query().unwrap_or(""));
    let body_v: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).unwrap_or_else(|_| Value::String("<not JSON>".into()))
    };
    s.requests.push((
        method.to_string(),
        path.clone(),
        uri.query().unwrap_or("").to_string(),
        body_v.clone(),
    ));
    let at = format!("{method} {}", uri);
    // The operation, by method and path template.
    let op = desc["operations"].as_array().unwrap().iter().find(|op| {
        op["method"] == method.as_str() && {
            let t: Vec<&str> = op["path"].as_str().unwrap().split('/').collect();
            let p: Vec<&str> = path.split('/').collect();
            t.len() == p.len()
                && t.iter().zip(&p).all(|(t, p)| {
                    if t.starts_with('{') {
                        p.parse::<u64>().is_ok()
                    } else {
                        t == p
                    }
                })
        }
    });
    let Some(op) = op.cloned() else {
        s.failures
            .push(format!("{at}: no such operation in the description"));
        return hc_error(404, "not_found", "no such route", json!({}));
    };
    for (k, v) in &query {
        match op["query"].get(k) {
            None => s.failures.push(format!(
                "{at}: query parameter {k} is not in the description"
            )),
            Some(p) => {
                if p["type"] == "integer" && v.parse::<u64>().is_err() {
                    s.failures.push(format!("{at}: {k}={v} is not an integer"));
                }
                if let Some(e) = p["enum"].as_array()
                    && !e.iter().any(|x| x == v.as_str())
                {
                    s.failures
                        .push(format!("{at}: {k}={v} is not one of {e:?}"));
                }
            }
        }
    }
    match op["body"].as_str() {
        Some(schema) => {
            if headers
                .get(axum::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                != Some("application/json")
            {
                s.failures
                    .push(format!("{at}: the body is not application/json"));
            }
            let mut errs = Vec::new();
            check_schema(&desc, &desc["schemas"][schema], &body_v, "body", &mut errs);
            s.failures
                .extend(errs.into_iter().map(|e| format!("{at}: {e}")));
        }
        None if !body.is_empty() => s
            .failures
            .push(format!("{at}: a body where none is described")),
        None => {}
    }
    // Authentication, as the API does it: a bearer token.
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {}", s.token) {
        return hc_error(401, "unauthorized", "unable to authenticate", json!({}));
    }
    let q: BTreeMap<String, String> = query.into_iter().collect();
    let op_id = op["operationId"].as_str().unwrap();
    match op_id {
        "listLocations" => {
            let l: Vec<Value> = LOCATIONS
                .iter()
                .enumerate()
                .map(|(i, n)| json!({"id": i + 1, "name": n}))
                .collect();
            (200, json!({"locations": l, "meta": page_meta(l.len())}))
        }
        "listServerTypes" => {
            let t: Vec<Value> = SERVER_TYPES
                .iter()
                .enumerate()
                .map(|(i, n)| json!({"id": i + 1, "name": n}))
                .collect();
            (200, json!({"server_types": t, "meta": page_meta(t.len())}))
        }
        "listServers" => {
            let sel = q.get("label_selector").cloned().unwrap_or_default();
            let list: Vec<Value> = s
                .servers
                .iter()
                .filter(|x| sel.is_empty() || selects(&x["labels"], &sel))
                .cloned()
                .collect();
            (200, json!({"servers": list, "meta": page_meta(list.len())}))
        }
        "createServer" => {
            let loc = body_v["location"].as_str().unwrap_or("");
            let ty = body_v["server_type"].as_str().unwrap_or("");
            if !LOCATIONS.contains(&loc) {
                return hc_error(
                    400,
                    "invalid_input",
                    "invalid input in field 'location'",
                    json!({"fields": [{"name": "location", "messages": ["location not found"]}]}),
                );
            }
            if !SERVER_TYPES.contains(&ty) {
                return hc_error(
                    400,
                    "invalid_input",
                    "invalid input in field 'server_type'",
                    json!({"fields": [{"name": "server_type", "messages": ["server type not found"]}]}),
                );
            }
            if s.servers.len() >= s.limit {
                return hc_error(
                    403,
                    "resource_limit_exceeded",
                    &format!("server limit of {} reached", s.limit),
                    json!({"limits": [{"name": "server_limit"}]}),
                );
            }
            s.next_id += 1;
            let id = s.next_id;
            let server = json!({
                "id": id,
                "name": body_v["name"],
                "status": "initializing",
                "labels": body_v["labels"],
                "server_type": {"name": ty},
                "datacenter": {"location": {"name": loc}},
                "image": {"name": body_v["image"]},
                "public_net": {"ipv4": {"ip": format!("203.0.113.{}", id % 250)}},
                "private_net": [],
            });
            s.servers.push(server.clone());
            let action =
                json!({"id": id, "command": "create_server", "status": "running", "progress": 0});
            (
                201,
                json!({"server": server, "action": action, "next_actions": [], "root_password": null}),
            )
        }
        "deleteServer" => {
            let id: u64 = path.rsplit('/').next().unwrap().parse().unwrap();
            let before = s.servers.len();
            s.servers.retain(|x| x["id"] != id);
            if s.servers.len() == before {
                return hc_error(404, "not_found", "server not found", json!({}));
            }
            (
                200,
                json!({"action": {"id": id, "command": "delete_server", "status": "running", "progress": 0}}),
            )
        }
        other => hc_error(
            500,
            "server_error",
            &format!("the fake does not do {other}"),
            json!({}),
        ),
    }
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    let dec = |s: &str| {
        let s = s.replace('+', " ");
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%'
                && i + 2 < b.len()
                && let Some(x) = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(x);
                i += 3;
                continue;
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}

// ---- A server: a network namespace on a bridge of its own ----

/// One namespace at 10.198.63.2 on bridge `wmc<id>b` at 10.198.63.1; agents' directories under
/// `root`. Dropping it stops any agent left in `root` and removes the namespace and bridge.
pub struct NsServer {
    pub bridge: String,
    pub ns: String,
    pub ip: String,
    pub gateway: String,
    pub root: PathBuf,
    pub dir: tempfile::TempDir,
}

/// The agents' networking on the namespace server.
pub fn cloud_net() -> NetPlan {
    NetPlan {
        net_prefix: "cx".into(),
        subnet_pool: "10.245.0.0/16".into(),
    }
}

impl NsServer {
    pub fn new() -> NsServer {
        let id = format!(
            "{}{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = tempfile::Builder::new().prefix("wmc-").tempdir().unwrap();
        let s = NsServer {
            bridge: format!("wmc{id}b"),
            ns: format!("wmc-{id}"),
            ip: "10.198.63.2".into(),
            gateway: "10.198.63.1".into(),
            root: dir.path().join("servers"),
            dir,
        };
        assert!(s.bridge.len() <= 15);
        let host_end = format!("wmc{id}h");
        sh(&["ip", "link", "add", &s.bridge, "type", "bridge"]);
        sh(&["ip", "addr", "add", "10.198.63.1/24", "dev", &s.bridge]);
        sh(&["ip", "link", "set", &s.bridge, "up"]);
        sh(&["ip", "netns", "add", &s.ns]);
        sh(&[
            "ip", "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &s.ns,
        ]);
        sh(&["ip", "link", "set", &host_end, "master", &s.bridge, "up"]);
        for args in [
            &["ip", "link", "set", "lo", "up"][..],
            &["ip", "addr", "add", "10.198.63.2/24", "dev", "eth0"],
            &["ip", "link", "set", "eth0", "up"],
            &["ip", "route", "add", "default", "via", "10.198.63.1"],
        ] {
            sh(&[&["ip", "netns", "exec", &s.ns][..], args].concat());
        }
        s
    }

    /// Runs `argv` in the server's network namespace (as cloud-init would, as root, from /),
    /// bounded by `limit`: its output, or why it failed.
    pub fn run(&self, argv: &[String], limit: Duration) -> Result<String, String> {
        let log = self.dir.path().join("runcmd.log");
        let out = File::create(&log).unwrap();
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns))
            .args(argv)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                return if status.success() {
                    Ok(text)
                } else {
                    Err(format!("{argv:?} failed ({status}): {text}"))
                };
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{argv:?} ran over {}s", limit.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for NsServer {
    fn drop(&mut self) {
        for rack in std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            for server in std::fs::read_dir(rack.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                Lab::stop_agent(&self.ns, &server.path(), Some(&cloud_net()));
            }
        }
        quiet(&["ip", "netns", "del", &self.ns]);
        quiet(&["ip", "link", "del", &self.bridge]);
    }
}

/// What running a cloud-config did: the files written and those left out.
#[derive(Debug, Default)]
pub struct Ran {
    pub written: Vec<String>,
    pub skipped: Vec<String>,
    pub output: String,
}

/// Runs a `#cloud-config` document on `server` as cloud-init's `write_files` and `runcmd`
/// modules would: the only two the drivers use (any other key fails the test). The YAML is
/// read by PyYAML (moto's venv), the parser cloud-init itself uses. Files under `root` are
/// written with their permissions; a systemd unit is recorded and left out (the namespace
/// servers have no systemd, and the installer starts the supervisor with setsid when
/// /run/systemd/system is absent); any other path fails the test.
pub fn run_cloud_config(doc: &str, server: &NsServer, root: &Path) -> Ran {
    assert!(doc.starts_with("#cloud-config\n"), "{doc}");
    let out = crate::harness::output_with_stdin(
        Command::new(python()).args([
            "-c",
            "import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ]),
        doc.as_bytes(),
    );
    assert!(
        out.status.success(),
        "PyYAML cannot read the user data: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in v.as_object().unwrap().keys() {
        assert!(
            k == "write_files" || k == "runcmd",
            "the user data uses cloud-init module {k}, which this executor does not run"
        );
    }
    let mut ran = Ran::default();
    let b64 = base64::engine::general_purpose::STANDARD;
    for f in v["write_files"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap();
        assert_eq!(f["encoding"], "b64", "{f}");
        assert_eq!(f["owner"], "root:root", "{f}");
        let content = b64.decode(f["content"].as_str().unwrap()).unwrap();
        let mode = u32::from_str_radix(f["permissions"].as_str().unwrap(), 8).unwrap();
        if Path::new(path).starts_with(root) {
            let p = Path::new(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, &content).unwrap();
            std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .unwrap();
            ran.written.push(path.to_string());
        } else if path.starts_with("/etc/systemd/system/") {
            ran.skipped.push(path.to_string());
        } else {
            panic!("the user data writes {path}, outside the agent's directory");
        }
    }
    assert!(
        !Path::new("/run/systemd/system").exists(),
        "this machine runs systemd: the installer would use it, not the namespace's setsid"
    );
    for cmd in v["runcmd"].as_array().unwrap() {
        let argv: Vec<String> = match cmd {
            Value::String(s) => vec!["sh".into(), "-c".into(), s.clone()],
            Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
            other => panic!("runcmd entry {other}"),
        };
        match server.run(&argv, Duration::from_secs(120)) {
            Ok(o) => ran.output.push_str(&o),
            Err(e) => panic!("runcmd failed: {e}"),
        }
    }
    ran
}
