//! Test harness, by role: [`provider`] (a small OpenID provider of our own that each test can
//! make misbehave), [`jwt`] (its keys and signatures), [`stores`] (SQLite, PostgreSQL, Redis),
//! [`otlp`] (a trace receiver) and [`app`] (the app in-process, driven as a browser drives it).
#![allow(dead_code, unused_imports)] // each test file uses its own part of the harness

pub mod app;
pub mod jwt;
pub mod otlp;
pub mod provider;
pub mod stores;

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

pub use app::*;
pub use jwt::*;
pub use provider::*;
pub use stores::*;
/// Every test runs on one shared multi-threaded runtime, as the app does in production: with a
/// runtime per test, a server future could end up waiting on a runtime whose test has ended.
pub fn run<F: std::future::Future>(test: F) -> F::Output {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            if let Ok(filter) = std::env::var("TEST_LOG") {
                tracing_subscriber::fmt().with_env_filter(filter).init();
            }
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap()
        })
        .block_on(test)
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Applies `overrides` to a JSON object: a `null` removes the member.
pub fn merge(target: &mut Value, overrides: &Map<String, Value>) {
    let map = target.as_object_mut().unwrap();
    for (k, v) in overrides {
        if v.is_null() {
            map.remove(k);
        } else {
            map.insert(k.clone(), v.clone());
        }
    }
}

/// A name no other test (in this run or an earlier one) has used.
pub fn unique_name() -> String {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}_{}_{n}", now(), std::process::id())
}
