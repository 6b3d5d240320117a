//! The server binary as an operator starts it: a bad setting stops it with one line naming the
//! variable, its log carries no colour codes when it goes to a file or a pipe, SIGTERM stops it
//! without losing a request under way, `leptos-oidc check` says what to fix, and `METRICS_ADDR`
//! gives the metrics a listener of their own.

mod support;

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

const SERVER: &str = env!("CARGO_BIN_EXE_leptos-oidc");

/// The server in an empty directory (no `.env`, no `Leptos.toml`), with only these variables.
fn server(dir: &tempfile::TempDir, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(SERVER);
    command
        .env_clear()
        .current_dir(dir.path())
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[test]
fn a_bad_setting_stops_the_start_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (vars, named) in [
        (&[("OIDC_PROVIDERS", "acme,Acme")][..], "OIDC_PROVIDERS"),
        (&[("OIDC_PROVIDERS", "acme")], "OIDC_ACME_ISSUER"),
        (
            &[
                ("OIDC_PROVIDERS", "acme"),
                ("OIDC_ACME_ISSUER", "https://acme.example"),
                ("OIDC_ACME_CLIENT_ID", "a"),
            ],
            "OIDC_ACME_CLIENT_SECRET",
        ),
        (&[("OIDC_TIMEOUT_SECONDS", "soon")], "OIDC_TIMEOUT_SECONDS"),
        (&[("DATABASE_URL", "mysql://db")], "DATABASE_URL"),
        (
            &[("LEPTOS_SITE_ADDR", "nowhere")],
            "Leptos.toml or LEPTOS_*",
        ),
    ] {
        let out = server(&dir, vars).output().unwrap();
        assert!(!out.status.success(), "{vars:?} started");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{vars:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: {named}: ")),
            "{vars:?}: {stderr}"
        );
    }
}

#[test]
fn the_log_has_no_colour_codes_when_it_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut child = server(
        &dir,
        &[
            ("LEPTOS_SITE_ADDR", &addr),
            ("DATABASE_URL", "sqlite:app.db"),
            // Nothing listens there: the log gets a warning too.
            ("OIDC_ISSUER", "http://127.0.0.1:1"),
            ("OIDC_CLIENT_ID", "a"),
            ("OIDC_CLIENT_SECRET", "b"),
        ],
    )
    .spawn()
    .unwrap();
    let received = log_lines(&mut child);
    let mut seen = Vec::new();
    while let Ok(line) = received.recv_timeout(Duration::from_secs(20)) {
        seen.push(line);
        if seen.iter().any(|l| l.contains("listening on"))
            && seen.iter().any(|l| l.contains("discovery failed"))
        {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        seen.iter()
            .any(|l| l.contains(&format!("listening on http://{addr}"))),
        "{seen:#?}"
    );
    assert!(seen.iter().any(|l| l.contains("WARN")), "{seen:#?}");
    for line in &seen {
        assert!(!line.contains('\u{1b}'), "a colour code: {line:?}");
    }
}

/// A sign-in through the server at `addr`, up to the provider's answer: the callback URL to
/// ask next, and the code in it.
async fn start_sign_in(
    browser: &reqwest::Client,
    addr: &str,
    provider: &support::TestProvider,
) -> (String, String) {
    let login = browser
        .get(format!("http://{addr}/login"))
        .send()
        .await
        .unwrap();
    let authorize = login.headers()["location"].to_str().unwrap().to_owned();
    let code = provider.authorize(&authorize);
    let state = support::query_param(&authorize, "state");
    let callback = format!("http://{addr}/authorization-code/callback?code={code}&state={state}");
    (callback, code)
}

/// The lines the server writes to its standard output, as they come.
fn log_lines(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end even when nobody listens: a full pipe would stop the server.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    received
}

/// A loopback address with a free port.
fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// The binary on a free port with a provider at `issuer` and these settings; its address and
/// its log lines.
fn start_server(
    dir: &tempfile::TempDir,
    issuer: &str,
    extra: &[(&str, &str)],
) -> (std::process::Child, String, mpsc::Receiver<String>) {
    let addr = free_addr();
    let mut vars = vec![
        ("LEPTOS_SITE_ADDR", addr.as_str()),
        ("DATABASE_URL", "sqlite:app.db"),
        ("OIDC_ISSUER", issuer),
        ("OIDC_CLIENT_ID", support::CLIENT_ID),
        ("OIDC_CLIENT_SECRET", support::CLIENT_SECRET),
    ];
    vars.extend_from_slice(extra);
    let mut child = server(dir, &vars).spawn().unwrap();
    let log = log_lines(&mut child);
    (child, addr, log)
}

async fn wait_until_listening(addr: &str) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the server did not listen on {addr}");
}

fn terminate(child: &std::process::Child) {
    let done = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(done.success());
}

/// Waits for the process to end, for at most `patience`.
async fn exited(child: &mut std::process::Child, patience: Duration) -> std::process::ExitStatus {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            started.elapsed() < patience,
            "still running after {patience:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A sign-in whose callback is slow (the provider takes two seconds over the token) is under
/// way when SIGTERM comes: it completes, new connections are refused at once, and the process
/// exits.
#[test]
fn sigterm_lets_a_sign_in_under_way_finish_refuses_new_connections_and_exits() {
    support::run(async {
        let provider = support::TestProvider::start().await;
        provider.set_behaviour(support::Behaviour {
            token_delay: Some(Duration::from_secs(2)),
            ..Default::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let (mut child, addr, _) = start_server(&dir, &provider.issuer, &[]);
        wait_until_listening(&addr).await;
        let browser = support::browser();
        let (callback, _) = start_sign_in(&browser, &addr, &provider).await;
        let callback = tokio::spawn({
            let browser = browser.clone();
            async move { browser.get(callback).send().await }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        terminate(&child);

        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            tokio::net::TcpStream::connect(&addr).await.is_err(),
            "a new connection was taken after SIGTERM"
        );
        let answer = callback
            .await
            .unwrap()
            .expect("the sign-in under way was cut");
        assert_eq!(answer.status(), 302);
        assert_eq!(answer.headers()["location"], "/profile");
        assert!(exited(&mut child, Duration::from_secs(5)).await.success());
    })
}

/// With a delay, the server still answers for that long after SIGTERM, and `/readyz` says it is
/// shutting down, so that a load balancer stops sending before connections are refused.
#[test]
fn sigterm_turns_readiness_off_at_once_and_serves_through_the_delay() {
    support::run(async {
        let provider = support::TestProvider::start().await;
        let dir = tempfile::tempdir().unwrap();
        let (mut child, addr, _) =
            start_server(&dir, &provider.issuer, &[("SHUTDOWN_DELAY_SECONDS", "2")]);
        wait_until_listening(&addr).await;
        let readyz = format!("http://{addr}/readyz");
        let mut ready = reqwest::get(&readyz).await.unwrap();
        for _ in 0..50 {
            if ready.status() == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            ready = reqwest::get(&readyz).await.unwrap();
        }
        assert_eq!(ready.status(), 200);

        terminate(&child);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let during = reqwest::get(&readyz)
            .await
            .expect("refused during the delay");
        assert_eq!(during.status(), 503);
        assert_eq!(
            during.text().await.unwrap(),
            r#"{"failing":["shutting_down"],"ready":false}"#
        );
        let home = reqwest::get(format!("http://{addr}/")).await.unwrap();
        assert_eq!(
            home.status(),
            200,
            "pages are still served during the delay"
        );
        assert!(exited(&mut child, Duration::from_secs(6)).await.success());
        assert!(tokio::net::TcpStream::connect(&addr).await.is_err());
    })
}

/// `leptos-oidc check` with these variables: its exit status and its lines.
async fn check(vars: &[(&str, &str)]) -> (bool, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut vars = vars.to_vec();
    vars.push(("DATABASE_URL", "sqlite:app.db"));
    let mut command = server(&dir, &vars);
    command.arg("check");
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    (out.status.success(), lines)
}

#[test]
fn check_says_ok_for_each_item_of_a_good_configuration() {
    support::run(async {
        let provider = support::TestProvider::start().await;
        let (ok, lines) = check(&[
            ("OIDC_ISSUER", &provider.issuer),
            ("OIDC_CLIENT_ID", support::CLIENT_ID),
            ("OIDC_CLIENT_SECRET", support::CLIENT_SECRET),
        ])
        .await;
        assert!(ok, "{lines:#?}");
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(lines.iter().all(|l| l.starts_with("ok ")), "{lines:#?}");
        assert!(
            lines[2].contains(
                "SESSION_KEYS: not set; tokens in sessions are sealed with the development key in"
            ),
            "{lines:#?}"
        );
        assert!(
            lines[3].contains(&format!(
                "OIDC_ISSUER: {} answers discovery and publishes 1 signing key(s)",
                provider.issuer
            )),
            "{lines:#?}"
        );
    })
}

#[test]
fn check_names_the_variable_to_fix_and_fails() {
    support::run(async {
        let provider = support::TestProvider::start().await;
        // An issuer with a trailing slash the provider's own does not have, and a session store
        // nobody answers at.
        let with_slash = format!("{}/", provider.issuer);
        let nobody = format!("redis://{}", free_addr());
        let (ok, lines) = check(&[
            ("OIDC_ISSUER", &with_slash),
            ("OIDC_CLIENT_ID", support::CLIENT_ID),
            ("OIDC_CLIENT_SECRET", support::CLIENT_SECRET),
            ("SESSION_STORE", "redis"),
            ("REDIS_URL", &nobody),
        ])
        .await;
        assert!(!ok, "{lines:#?}");
        let line = |start: &str| {
            lines
                .iter()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("no line {start:?} in {lines:#?}"))
                .clone()
        };
        assert!(line("error REDIS_URL: ").contains("cannot connect to Redis"));
        let issuer = line("error OIDC_ISSUER: ");
        assert!(issuer.contains("unexpected issuer"), "{issuer}");
        assert!(issuer.ends_with("remove the trailing slash"), "{issuer}");
        line("ok    DATABASE_URL: ");

        // A bad setting: the one line of the server's own start.
        let (ok, lines) = check(&[("OIDC_TIMEOUT_SECONDS", "soon")]).await;
        assert!(!ok);
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert!(
            lines[0].starts_with("error OIDC_TIMEOUT_SECONDS: "),
            "{lines:#?}"
        );
    })
}

#[test]
fn an_unknown_command_is_refused_with_the_usage() {
    let dir = tempfile::tempdir().unwrap();
    let out = server(&dir, &[]).arg("chek").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("usage: leptos-oidc [check]"), "{stderr}");
}

/// With `LOG_FORMAT=json` every line of the log is a JSON object; the lines made while serving
/// a request carry its id, the caller's `X-Request-Id` when sane (and it comes back), a new one
/// otherwise.
#[test]
fn json_logs_carry_the_request_id_of_every_line_made_while_serving_it() {
    support::run(async {
        let provider = support::TestProvider::start().await;
        // Access tokens of 4 s with refresh tokens: a renewal within the test.
        provider.set_behaviour(support::Behaviour::short_tokens(4));
        let dir = tempfile::tempdir().unwrap();
        let (mut child, addr, received) = start_server(
            &dir,
            &provider.issuer,
            &[
                ("LOG_FORMAT", "json"),
                ("RUST_LOG", "warn,leptos_oidc=debug"),
            ],
        );
        wait_until_listening(&addr).await;

        // A whole sign-in; the callback with an id of the caller's.
        let url = format!("http://{addr}");
        let browser = support::browser();
        let (callback, code) = start_sign_in(&browser, &addr, &provider).await;
        let callback = browser
            .get(callback)
            .header("x-request-id", "callback-42")
            .send()
            .await
            .unwrap();
        assert_eq!(callback.status(), 302);
        assert_eq!(callback.headers()["x-request-id"], "callback-42");
        // An id that is not sane is replaced.
        let home = browser
            .get(format!("{url}/"))
            .header("x-request-id", "a b")
            .send()
            .await
            .unwrap();
        let replaced = home.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_ne!(replaced, "a b");
        // A renewal made while a page renders (the render may run on a task of its own).
        tokio::time::sleep(Duration::from_millis(3200)).await;
        let renewing = browser
            .get(format!("{url}/"))
            .header("x-request-id", "renewal-7")
            .send()
            .await
            .unwrap();
        assert_eq!(renewing.status(), 200);
        assert_eq!(provider.refresh_requests(), 1);

        tokio::time::sleep(Duration::from_millis(300)).await;
        terminate(&child);
        exited(&mut child, Duration::from_secs(5)).await;
        let logged: Vec<serde_json::Value> = received
            .try_iter()
            .map(|line| serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect();
        for line in &logged {
            for field in ["timestamp", "level", "target", "message"] {
                assert!(line.get(field).is_some(), "no {field}: {line}");
            }
        }
        let of_request = |id: &str| -> Vec<&serde_json::Value> {
            logged
                .iter()
                .filter(|l| l["span"]["request_id"] == id)
                .collect()
        };
        let callback_lines = of_request("callback-42");
        let messages: Vec<&str> = callback_lines
            .iter()
            .map(|l| l["message"].as_str().unwrap())
            .collect();
        assert!(messages.contains(&"signed in"), "{messages:?}");
        assert!(messages.contains(&"request"), "{messages:?}");
        assert!(!of_request(&replaced).is_empty(), "{logged:#?}");
        let renewal: Vec<&str> = of_request("renewal-7")
            .iter()
            .map(|l| l["message"].as_str().unwrap())
            .collect();
        assert!(renewal.contains(&"tokens renewed"), "{renewal:?}");
        // The sign-in's line says who, never the code or a token.
        let text = serde_json::to_string(&logged).unwrap();
        assert!(!text.contains(&code), "the code reached the log");
    })
}

/// With `METRICS_ADDR`, `/metrics` is served there alone, and not on the app's own address.
#[test]
fn metrics_addr_serves_the_metrics_on_a_listener_of_their_own() {
    support::run(async {
        let provider = support::TestProvider::start().await;
        let dir = tempfile::tempdir().unwrap();
        let metrics_addr = free_addr();
        let (mut child, addr, _log) =
            start_server(&dir, &provider.issuer, &[("METRICS_ADDR", &metrics_addr)]);
        wait_until_listening(&addr).await;
        wait_until_listening(&metrics_addr).await;
        let get = |url: String| async move { reqwest::get(url).await.unwrap() };

        assert_eq!(get(format!("http://{addr}/")).await.status(), 200);
        assert_eq!(get(format!("http://{addr}/metrics")).await.status(), 404);
        let metrics = get(format!("http://{metrics_addr}/metrics")).await;
        assert_eq!(metrics.status(), 200);
        let text = metrics.text().await.unwrap();
        let scrape =
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        let home = scrape.samples.iter().find(|s| {
            s.metric == "leptos_oidc_http_requests_total"
                && s.labels.get("route") == Some("/")
                && s.labels.get("status") == Some("2xx")
        });
        assert!(
            matches!(home.map(|s| &s.value), Some(prometheus_parse::Value::Untyped(n)) if *n == 1.0),
            "{text}"
        );
        terminate(&child);
        exited(&mut child, Duration::from_secs(5)).await;
    })
}

/// With `OTEL_EXPORTER_OTLP_ENDPOINT`, a whole sign-in, a renewal and a sign-out go out as
/// traces to an OTLP receiver: the callback's request span continues the caller's trace, the
/// calls to the provider and the stores are its descendants, and the provider is sent the
/// `traceparent`. Neither the JSON log nor any span carries a code, a token, the client secret
/// or the session cookie.
#[test]
fn traces_go_out_over_otlp_and_neither_they_nor_the_logs_carry_a_secret() {
    support::run(async {
        let receiver = support::otlp::OtlpReceiver::start().await;
        let provider = support::TestProvider::start().await;
        // Access tokens of 4 s with refresh tokens: a renewal within the test.
        provider.set_behaviour(support::Behaviour::short_tokens(4));
        let dir = tempfile::tempdir().unwrap();
        let (mut child, addr, log) = start_server(
            &dir,
            &provider.issuer,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url),
                ("LOG_FORMAT", "json"),
                ("RUST_LOG", "warn,leptos_oidc=debug"),
            ],
        );
        wait_until_listening(&addr).await;

        // The sign-in, its callback sent as part of a trace of the caller's.
        let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let caller_span = "00f067aa0ba902b7";
        let browser = support::browser();
        let (callback, _) = start_sign_in(&browser, &addr, &provider).await;
        let signed_in = browser
            .get(callback)
            .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(signed_in.status(), 302);
        let cookie = signed_in
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|c| c.to_str().ok()?.strip_prefix("leptos_oidc_session="))
            .map(|c| c.split(';').next().unwrap().to_owned())
            .next()
            .expect("a session cookie");
        // The renewal, on the first page viewed once the token is due; then the sign-out.
        tokio::time::sleep(Duration::from_millis(3200)).await;
        let home = browser.get(format!("http://{addr}/")).send().await.unwrap();
        let home_id = home.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(home.text().await.unwrap().contains("Welcome back"));
        let profile = browser
            .get(format!("http://{addr}/profile"))
            .send()
            .await
            .unwrap();
        let profile = profile.text().await.unwrap();
        assert_eq!(provider.refresh_requests(), 1);
        let csrf = support::csrf_token_in(&profile);
        let out = browser
            .post(format!("http://{addr}/logout"))
            .header("origin", format!("http://{addr}"))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(out.status(), 302);

        // SIGTERM: the spans still waiting are sent before the process exits.
        terminate(&child);
        assert!(exited(&mut child, Duration::from_secs(10)).await.success());
        let spans = receiver.spans();
        let hex = |id: &[u8]| id.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let callback = spans
            .iter()
            .find(|s| s.name == "GET /authorization-code/callback")
            .unwrap_or_else(|| {
                panic!(
                    "no callback span in {:?}",
                    spans.iter().map(|s| &s.name).collect::<Vec<_>>()
                )
            });
        assert_eq!(
            hex(&callback.trace_id),
            trace_id,
            "the caller's trace is not continued"
        );
        assert_eq!(hex(&callback.parent_span_id), caller_span);
        assert_eq!(
            support::otlp::attribute(callback, "http.route").as_deref(),
            Some("/authorization-code/callback")
        );
        // Every span of the trace leads up to the callback's.
        let of_trace: Vec<_> = spans
            .iter()
            .filter(|s| s.trace_id == callback.trace_id)
            .collect();
        let under_callback = |span: &&opentelemetry_proto::tonic::trace::v1::Span| {
            let mut parent = span.parent_span_id.clone();
            while let Some(up) = of_trace.iter().find(|s| s.span_id == parent) {
                if up.span_id == callback.span_id {
                    return true;
                }
                parent = up.parent_span_id.clone();
            }
            false
        };
        for name in ["default token", "default userinfo", "store call"] {
            assert!(
                of_trace.iter().any(|s| s.name == name && under_callback(s)),
                "no {name:?} span under the callback's"
            );
        }
        let sent = provider.traceparents();
        assert!(
            sent.iter()
                .any(|t| t.starts_with(&format!("00-{trace_id}-"))),
            "the provider was not sent the trace: {sent:?}"
        );
        // The renewal has its trace too.
        assert!(spans.iter().any(|s| s.name == "GET /profile"));

        // Nothing secret, anywhere.
        let mut secrets = provider.secrets();
        secrets.extend([support::CLIENT_SECRET.to_owned(), cookie, csrf]);
        assert!(secrets.len() >= 7, "{secrets:?}");
        let mut told: Vec<String> = log.try_iter().collect();
        // The renewal happened while the home page rendered (on a task of its own): its log line
        // and its spans still belong to that request.
        let renewed: serde_json::Value = told
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|line| line["message"] == "tokens renewed")
            .expect("a renewal in the log");
        assert_eq!(renewed["span"]["request_id"], home_id.as_str(), "{renewed}");
        let home_span = spans
            .iter()
            .find(|s| s.name == "GET /")
            .expect("the home page's span");
        assert!(
            spans
                .iter()
                .any(|s| s.name == "default token" && s.trace_id == home_span.trace_id),
            "the renewal's token call is not in the home page request's trace"
        );
        told.extend(spans.iter().flat_map(support::otlp::span_text));
        assert!(told.len() > 20, "{told:?}");
        for secret in &secrets {
            if let Some(line) = told.iter().find(|line| line.contains(secret.as_str())) {
                panic!("{secret:?} was told: {line}");
            }
        }
    })
}

/// `check` says how the client authenticates, whether sign-ins are pushed and tokens bound
/// (DPoP), and fails, naming the variable, when the provider will not take it: assertions
/// signed with an algorithm it does not list, PAR always at a provider without the endpoint,
/// DPoP at a provider that does not offer it.
#[test]
fn check_tells_of_client_authentication_par_and_dpop_and_what_the_provider_will_not_take() {
    support::run(async {
        let provider = support::TestProvider::start().await;
        let algs = |algs: serde_json::Value| support::Behaviour {
            // Keys of its own: the provider then advertises private_key_jwt.
            client_jwks: Some(serde_json::json!({ "keys": [] })),
            discovery:
                serde_json::json!({ "token_endpoint_auth_signing_alg_values_supported": algs })
                    .as_object()
                    .unwrap()
                    .clone(),
            ..support::Behaviour::default()
        };
        let vars = |par: &'static str| {
            vec![
                ("OIDC_ISSUER", provider.issuer.clone()),
                ("OIDC_CLIENT_ID", support::CLIENT_ID.to_owned()),
                ("OIDC_CLIENT_AUTH", "private_key_jwt".to_owned()),
                ("OIDC_PAR", par.to_owned()),
                ("OIDC_DPOP", "true".to_owned()),
            ]
        };
        let run_check = |vars: Vec<(&'static str, String)>| async move {
            let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
            check(&vars).await
        };

        provider.set_behaviour(support::Behaviour {
            dpop: true,
            ..algs(serde_json::json!(["ES256", "PS256"]))
        });
        let (ok, lines) = run_check(vars("always")).await;
        assert!(ok, "{lines:#?}");
        let said = |start: &str| lines.iter().find(|l| l.contains(start)).cloned();
        assert!(
            said("OIDC_CLIENT_AUTH: private_key_jwt: assertions signed with ES256 by key")
                .is_some(),
            "{lines:#?}"
        );
        assert!(
            said("OIDC_PAR: authorization requests are pushed to").is_some(),
            "{lines:#?}"
        );
        assert!(
            said("OIDC_DPOP: access tokens are bound to a P-256 key").is_some(),
            "{lines:#?}"
        );

        provider.set_behaviour(support::Behaviour {
            no_par_endpoint: true,
            ..algs(serde_json::json!(["PS256"]))
        });
        let (ok, lines) = run_check(vars("always")).await;
        assert!(!ok, "{lines:#?}");
        let failed = |start: &str| {
            lines
                .iter()
                .find(|l| l.starts_with("error") && l.contains(start))
                .cloned()
                .unwrap_or_else(|| panic!("no failed {start} line: {lines:#?}"))
        };
        assert!(failed("OIDC_CLIENT_AUTH:").contains("PS256"));
        assert!(failed("OIDC_PAR:").contains("OIDC_PAR is always"));
        assert!(failed("OIDC_DPOP:").contains("dpop_signing_alg_values_supported"));
    })
}
