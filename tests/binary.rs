//! The server binary as an operator starts it: a bad setting stops it with one line naming the
//! variable, and its log carries no colour codes when it goes to a file or a pipe.

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
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
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
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
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
