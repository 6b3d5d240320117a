//! Pages and routes, rendered on the server only (Leptos islands: no page code in the WASM).
//! Every page works without JavaScript: links and forms are the browser's own, sign-in a link,
//! sign-out a plain form.

use std::sync::Arc;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    hooks::use_query_map,
    path, SsrMode,
};
use serde::{Deserialize, Serialize};

use crate::{
    api_demo::provider_userinfo,
    auth::{current_visit, your_sessions},
    failure::{not_found, outage, SessionEnding, SignInFailure, SignOutFailure},
    links,
    visitor::{Profile, ProviderChoice, SessionSummary, Visit, Visitor},
};

/// The HTML document around the app, with its Content-Security-Policy (`src/csp.rs`).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(app) = use_context::<crate::state::AppState>() {
        crate::csp::set_for_page(&options, &app.providers.browser_origins());
    }
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                // The id is what `cargo leptos watch` finds to reload the styles.
                <link id="leptos" rel="stylesheet" href="/pkg/leptos_oidc.css" />
                <AutoReload options=options.clone() />
                <HydrationScripts options islands=true />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// Who is looking (and the ways to sign in), loaded once per page and shared by its parts.
#[derive(Clone, Copy)]
struct VisitResource(Loading);

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    provide_context(VisitResource(load(Load::Visit)));

    view! {
        <Title formatter=|page: String| format!("{page} · Leptos OIDC") />
        <Router>
            <Header />
            <main>
                // Async: the server sends each page whole, once it knows who is signed in, so
                // pages are complete without JavaScript and /profile can answer with a 302.
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=Home ssr=SsrMode::Async />
                    <Route path=path!("/signin") view=SignIn ssr=SsrMode::Async />
                    <Route path=path!("/profile") view=ProfilePage ssr=SsrMode::Async />
                    <Route path=path!("/logout") view=SignOut ssr=SsrMode::Async />
                    <Route path=path!("/api-demo") view=ApiDemo ssr=SsrMode::Async />
                    <Route path=path!("/sessions") view=SessionsPage ssr=SsrMode::Async />
                </Routes>
            </main>
        </Router>
    }
}

/// Runs `page` with the visit once it is known.
fn with_visit<V: IntoView + 'static>(
    page: impl Fn(Visit) -> V + Send + Sync + 'static,
) -> impl IntoView {
    let VisitResource(visit) = expect_context();
    when_loaded(visit, move |loaded| match loaded {
        Loaded::Visit(visit) => page(visit).into_any(),
        _ => ().into_any(),
    })
}

/// Runs `page` with the visitor once they are known.
fn with_visitor<V: IntoView + 'static>(
    page: impl Fn(Visitor) -> V + Send + Sync + Clone + 'static,
) -> impl IntoView {
    with_visit(move |visit| page(visit.visitor))
}

#[component]
fn Header() -> impl IntoView {
    view! {
        <header class="site-header">
            <a href="/" class="brand">"Leptos OIDC"</a>
            <nav>
                {with_visitor(|visitor| match visitor {
                    Visitor::SignedIn(user) => {
                        let Profile { name, csrf_token, .. } = *user;
                        view! {
                            <a href="/profile">{name}</a>
                            <SignOutForm csrf_token />
                        }
                            .into_any()
                    }
                    // Neither "Sign in" nor a name: the page says why.
                    Visitor::Unknown => ().into_any(),
                    Visitor::Anonymous | Visitor::SessionEnded => {
                        view! { <SignInLink label="Sign in".into() provider=None return_to=None /> }
                            .into_any()
                    }
                })}
            </nav>
        </header>
    }
}

/// A plain link to `/login` (at `provider`, or the only one).
#[component]
fn SignInLink(label: String, provider: Option<String>, return_to: Option<String>) -> impl IntoView {
    let href = links::login(provider.as_deref(), return_to.as_deref());
    // rel="external": /login is the server's, not a page; a client-side router (Leptos's islands
    // router, should it be turned on) must leave it to the browser, to follow on to the provider.
    view! {
        <a class="button" href=href rel="external">
            {label}
        </a>
    }
}

/// A plain form: signs out with or without WASM. The token proves the post came from our page.
/// With `everywhere`, a second button ends the user's sessions in every browser. With
/// `at_provider`, for a sign-in the app refused: only the provider has a session to end.
#[component]
fn SignOutForm(
    csrf_token: String,
    #[prop(optional)] everywhere: bool,
    #[prop(optional)] at_provider: bool,
) -> impl IntoView {
    view! {
        <form class="sign-out" method="post" action="/logout">
            <input type="hidden" name="csrf" value=csrf_token />
            <button type="submit">
                {if at_provider { "Sign out at your provider" } else { "Sign out" }}
            </button>
            {everywhere
                .then(|| {
                    view! {
                        <button type="submit" name="everywhere" value="1" class="secondary">
                            "Sign out everywhere"
                        </button>
                    }
                })}
        </form>
    }
}

#[component]
fn Home() -> impl IntoView {
    view! {
        <Title text="Home" />
        <section class="hero">
            <h1>"Sign in with OpenID Connect"</h1>
            <p>
                "This app signs you in with your organisation's identity provider (Okta, Keycloak, Auth0, Google, or any certified OpenID provider) through the authorization code flow with PKCE, and shows what the provider says about you."
            </p>
            {with_visitor(|visitor| match visitor {
                Visitor::SignedIn(user) => {
                    view! {
                        <p class="welcome">"Welcome back, " {user.name.clone()} "."</p>
                        <a href="/profile" class="button">"View your profile"</a>
                    }
                        .into_any()
                }
                Visitor::SessionEnded => {
                    view! {
                        <p role="alert">{SignInFailure::SessionEnded.message()}</p>
                        <SignInLink label="Sign in".into() provider=None return_to=None />
                    }
                        .into_any()
                }
                Visitor::Anonymous => view! { <SignInLink label="Sign in".into() provider=None return_to=None /> }.into_any(),
                Visitor::Unknown => view! { <Unavailable /> }.into_any(),
            })}
        </section>
    }
}

/// `/signin`: the providers to sign in with, and where a failed sign-in lands
/// (`?error=<code>`, with the `provider` to try again when there are several).
#[component]
fn SignIn() -> impl IntoView {
    let query = use_query_map();
    let (failure, provider, return_to, rule) = query.with_untracked(|q| {
        (
            q.get("error").map(|e| SignInFailure::from_code(&e)),
            q.get("provider"),
            q.get("return_to"),
            q.get("rule"),
        )
    });
    match failure {
        Some(Some(failure)) => set_failure(failure.status(), failure.code()),
        Some(None) => set_failure(400, SignInFailure::BadRequest.code()),
        None => {}
    }
    let (title, message) = match failure {
        Some(Some(f)) => (f.title(), f.message()),
        Some(None) => (
            "Sign-in failed",
            "Something went wrong while signing you in.",
        ),
        None => (
            "Sign in",
            "Sign in with your identity provider to continue.",
        ),
    };
    let failed = failure.is_some();
    let not_allowed = failure == Some(Some(SignInFailure::NotAllowed));
    view! {
        <Title text=title />
        {with_visit(move |visit| {
            let choices = match visit.visitor {
                Visitor::Unknown => return view! { <Unavailable /> }.into_any(),
                // Signed in already (a stale link, another tab): nothing to choose.
                Visitor::SignedIn(user) => {
                    view! {
                        <p>
                            "You are signed in as " {user.name.clone()} ". "
                            <a href="/profile">"Your profile"</a>
                        </p>
                    }
                        .into_any()
                }
                Visitor::Anonymous | Visitor::SessionEnded => {
                    let (provider, return_to) = (provider.clone(), return_to.clone());
                    view! { <ProviderButtons choices=visit.choices failed provider return_to /> }
                        .into_any()
                }
            };
            view! {
                <section class="card" class:error=failed>
                    <h1>{title}</h1>
                    <p role=failed.then_some("alert")>{message}</p>
                    // The app's rule the account did not satisfy, and a way to another account.
                    {not_allowed
                        .then(|| {
                            view! {
                                {rule
                                    .clone()
                                    .map(|rule| view! { <p>"It requires " <code>{rule}</code> "."</p> })}
                                <SignOutForm csrf_token=String::new() at_provider=true />
                            }
                        })}
                    {choices}
                    <p>
                        <a href="/">"Back to the home page"</a>
                    </p>
                </section>
            }
                .into_any()
        })}
    }
}

/// One button per provider (plain links): "Sign in with ..." each, the one named (that just
/// failed) first, then the last used; with one provider, just "Sign in" (or "Try again").
#[component]
fn ProviderButtons(
    choices: Vec<ProviderChoice>,
    failed: bool,
    provider: Option<String>,
    return_to: Option<String>,
) -> impl IntoView {
    let several = choices.len() > 1;
    let (named, others): (Vec<_>, Vec<_>) = choices
        .into_iter()
        .partition(|c| provider.as_deref() == Some(c.id.as_str()));
    view! {
        <ul class="providers" aria-label="Identity providers">
            {named
                .into_iter()
                .chain(others)
                .map(|choice| {
                    let again = failed && (!several || provider.as_deref() == Some(&choice.id));
                    let label = match (several, again) {
                        (false, false) => "Sign in".to_owned(),
                        (false, true) => "Try again".to_owned(),
                        (true, false) => format!("Sign in with {}", choice.label),
                        (true, true) => format!("Try again with {}", choice.label),
                    };
                    let last_used = several && choice.last_used;
                    view! {
                        <li>
                            <SignInLink
                                label
                                provider=several.then_some(choice.id)
                                return_to=return_to.clone()
                            />
                            {last_used.then(|| view! { <span class="badge">"Last used"</span> })}
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
}

#[component]
fn ProfilePage() -> impl IntoView {
    view! {
        <Title text="Profile" />
        <RequireSignIn let:user>
            <ProfileCard user />
        </RequireSignIn>
    }
}

/// A page (or part of one) for signed-in users only: renders its children with the user, once
/// known; nothing of them before. Anyone else is sent to sign in and brought back here (a 302);
/// a caller that does not ask for HTML (`fetch`, `curl`) gets a 401 with a JSON body instead.
/// While the session store cannot say who is looking, the 503 page.
#[component]
pub fn RequireSignIn<C, V>(children: C) -> impl IntoView
where
    C: Fn(Profile) -> V + Send + Sync + Clone + 'static,
    V: IntoView + 'static,
{
    let here = current_address();
    with_visitor(move |visitor| match visitor {
        Visitor::SignedIn(user) => children(*user).into_any(),
        Visitor::SessionEnded => {
            view! { <SignInRedirect return_to=here.clone() ended=true /> }.into_any()
        }
        Visitor::Anonymous => view! { <SignInRedirect return_to=here.clone() /> }.into_any(),
        Visitor::Unknown => view! { <Unavailable /> }.into_any(),
    })
}

#[component]
fn ProfileCard(user: Profile) -> impl IntoView {
    view! {
        <section class="card profile">
            <h1>{user.name.clone()}</h1>
            {user.email.clone().map(|email| view! { <p class="email">{email}</p> })}
            <dl class="session">
                <dt>"Signed in"</dt>
                <dd>
                    <LocalTime utc=user.signed_in_at.clone() />
                </dd>
                <dt>"Session ends"</dt>
                <dd>
                    <LocalTime utc=user.session_ends_at.clone() />
                    " (sooner if unused)"
                </dd>
                {user
                    .access_token_expires_at
                    .clone()
                    .map(|at| {
                        view! {
                            <dt>"Access token expires"</dt>
                            <dd>
                                <LocalTime utc=at />
                                {if user.access_token_renews {
                                    " (renewed before then)"
                                } else {
                                    ""
                                }}
                            </dd>
                        }
                    })}
                <dt>"Signed in with"</dt>
                <dd>{user.provider.clone()}</dd>
                <dt>"Issuer"</dt>
                <dd class="issuer">{user.issuer.clone()}</dd>
            </dl>
            <h2>"What your provider says about you"</h2>
            <ClaimsTable claims=user.claims.clone() />
            <ul class="links">
                <li>
                    <a href="/sessions">"Your sessions in every browser"</a>
                </li>
                <li>
                    <a href="/api-demo">"Ask your provider about you, with your access token"</a>
                </li>
            </ul>
            <SignOutForm csrf_token=user.csrf_token.clone() everywhere=true />
        </section>
    }
}

/// `/api-demo`: the provider's userinfo endpoint, asked by the server with the user's access
/// token: how a server function calls an API on the user's behalf (`src/api_demo.rs`).
#[component]
fn ApiDemo() -> impl IntoView {
    let answer = load(Load::Userinfo);
    view! {
        <Title text="API demo" />
        <RequireSignIn let:user>
            <ProviderAnswer name=user.name answer />
        </RequireSignIn>
    }
}

/// What a page loads from the server.
#[derive(Clone, Copy)]
enum Load {
    /// Who is looking, and the ways to sign in: every page, once.
    Visit,
    /// The provider's userinfo, asked with the user's access token (`/api-demo`).
    Userinfo,
    /// The user's sessions (`/sessions`).
    Sessions,
}

/// What was loaded (or why it could not be). One type for everything pages load: one
/// `Resource` type and one `Suspense` for every page, compiled once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Loaded {
    Visit(Visit),
    Claims(Result<Vec<(String, String)>, String>),
    Sessions(Result<Vec<SessionSummary>, String>),
    /// Nothing asked: the visitor is not signed in (`RequireSignIn` answers them).
    Nothing,
}

/// What a page is loading.
type Loading = Resource<Loaded>;

/// Starts loading `what`, once per visit of a page (a page's parts may render more than once).
/// Blocking: the server knows it before it sends the first byte, so a protected page can still
/// answer with a redirect.
fn load(what: Load) -> Loading {
    let visit = use_context::<VisitResource>();
    Resource::new_blocking(
        || (),
        move |_| async move {
            let signed_in = match visit {
                Some(VisitResource(visit)) => {
                    matches!(
                        visit.await,
                        Loaded::Visit(Visit {
                            visitor: Visitor::SignedIn(_),
                            ..
                        })
                    )
                }
                None => false,
            };
            let error = |e: ServerFnError| e.to_string();
            match what {
                // A visit that cannot be learned (the server did not answer) is unknown, not
                // signed out.
                Load::Visit => Loaded::Visit(current_visit().await.unwrap_or(Visit {
                    visitor: Visitor::Unknown,
                    choices: Vec::new(),
                })),
                _ if !signed_in => Loaded::Nothing,
                Load::Userinfo => Loaded::Claims(provider_userinfo().await.map_err(error)),
                Load::Sessions => Loaded::Sessions(your_sessions().await.map_err(error)),
            }
        },
    )
}

/// Shows what `loading` brought, once it has come, with `shown`.
fn when_loaded(
    loading: Loading,
    shown: impl Fn(Loaded) -> AnyView + Send + Sync + 'static,
) -> AnyView {
    // Behind one pointer, so that one Suspense serves every page.
    let shown: Arc<dyn Fn(Loaded) -> AnyView + Send + Sync> = Arc::new(shown);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || {
                let shown = shown.clone();
                Suspend::new(async move { shown(loading.await) })
            }}
        </Suspense>
    }
    .into_any()
}

/// What the provider answered: its claims, or why there are none.
#[component]
fn ProviderAnswer(name: String, answer: Loading) -> impl IntoView {
    view! {
        <section class="card">
            <h1>"What your provider says, asked just now"</h1>
            <p>
                "The server asked your provider's userinfo endpoint about " {name}
                ", with your access token (renewed first when it is about to expire)."
            </p>
            {when_loaded(
                answer,
                |loaded| match loaded {
                    Loaded::Claims(Ok(claims)) => view! { <ClaimsTable claims /> }.into_any(),
                    Loaded::Claims(Err(e)) => {
                        view! { <p role="alert">"The provider did not answer: " {e}</p> }.into_any()
                    }
                    _ => ().into_any(),
                },
            )}
            <p>
                <a href="/profile">"Back to your profile"</a>
            </p>
        </section>
    }
}

/// `/sessions`: the user's sessions in every browser, each other one with a button that ends it
/// (a plain form: `POST /sessions/end`, which comes back here saying what became of it).
#[component]
fn SessionsPage() -> impl IntoView {
    let (ended, failure) = use_query_map().with_untracked(|q| {
        (
            q.get("ended")
                .and_then(|code| SessionEnding::from_code(&code)),
            q.get("error").map(|code| SignOutFailure::from_code(&code)),
        )
    });
    if let Some(failure) = failure {
        set_failure(failure.status(), failure.code());
    }
    let sessions = load(Load::Sessions);
    view! {
        <Title text="Your sessions" />
        <RequireSignIn let:user>
            <section class="card" class:error=failure.is_some()>
                <h1>"Your sessions"</h1>
                {failure.map(|f| view! { <p role="alert">{f.ending_message()}</p> })}
                {ended.map(|e| view! { <p role="status">{e.message()}</p> })}
                <p>
                    "Where you are signed in to this app. End any session you do not recognise: that browser is signed out at once."
                </p>
                {
                    let csrf_token = user.csrf_token.clone();
                    when_loaded(
                        sessions,
                        move |loaded| match loaded {
                            Loaded::Sessions(Ok(sessions)) => {
                                let csrf_token = csrf_token.clone();
                                view! { <SessionList sessions csrf_token /> }.into_any()
                            }
                            Loaded::Sessions(Err(e)) => {
                                view! { <p role="alert">"Your sessions could not be listed: " {e}</p> }
                                    .into_any()
                            }
                            _ => ().into_any(),
                        },
                    )
                }
                <p>
                    <a href="/profile">"Back to your profile"</a>
                </p>
            </section>
        </RequireSignIn>
    }
}
/// One entry per session: its browser, provider and times; this browser's marked, every other
/// one with a button that ends it.
#[component]
fn SessionList(sessions: Vec<SessionSummary>, csrf_token: String) -> impl IntoView {
    view! {
        <ul class="sessions">
            {sessions
                .into_iter()
                .map(|s| {
                    let heading = format!("session-{}", s.handle);
                    let end = (!s.current)
                        .then(|| {
                            view! {
                                <form method="post" action="/sessions/end">
                                    <input type="hidden" name="csrf" value=csrf_token.clone() />
                                    <input type="hidden" name="session" value=s.handle />
                                    <button
                                        type="submit"
                                        class="secondary"
                                        aria-describedby=heading.clone()
                                    >
                                        "End this session"
                                    </button>
                                </form>
                            }
                        });
                    view! {
                        <li>
                            <h2 id=heading>
                                {s.browser}
                                {s.current.then(|| view! { <span class="badge">"This browser"</span> })}
                            </h2>
                            <dl class="session">
                                <dt>"Signed in with"</dt>
                                <dd>{s.provider}</dd>
                                <dt>"Started"</dt>
                                <dd>
                                    <LocalTime utc=s.started />
                                </dd>
                                <dt>"Last used"</dt>
                                <dd>
                                    <LocalTime utc=s.last_used />
                                </dd>
                            </dl>
                            {end}
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
}

/// A moment as the server writes it ("2026-11-30 20:17:41 UTC"), shown in the reader's own
/// time zone and language once the WASM runs. An island: the part of these pages that runs in
/// the browser (a team's own interactive parts are islands too); without JavaScript, UTC.
#[island]
fn LocalTime(utc: String) -> impl IntoView {
    let iso = utc.replacen(' ', "T", 1).replace(" UTC", "Z");
    let shown = RwSignal::new(utc);
    // Effects run only in the browser, after the island has taken over the server's text.
    #[cfg(feature = "hydrate")]
    Effect::new({
        let iso = iso.clone();
        move || {
            if let Some(local) = local_time(&iso) {
                shown.set(local);
            }
        }
    });
    view! { <time datetime=iso>{shown}</time> }
}

/// `iso` in the browser's time zone and language ("Nov 30, 2026, 9:17:41 PM GMT+1"); `None`
/// for a moment the browser cannot read.
#[cfg(feature = "hydrate")]
fn local_time(iso: &str) -> Option<String> {
    use wasm_bindgen::JsValue;
    let date = js_sys::Date::new(&JsValue::from_str(iso));
    if date.get_time().is_nan() {
        return None;
    }
    let options = js_sys::Object::new();
    for (name, value) in [("dateStyle", "medium"), ("timeStyle", "long")] {
        js_sys::Reflect::set(&options, &name.into(), &value.into()).ok()?;
    }
    // "default": the browser's own language.
    Some(date.to_locale_string("default", &options).into())
}

/// Claims and their values, one row each.
#[component]
fn ClaimsTable(claims: Vec<(String, String)>) -> impl IntoView {
    view! {
        <table class="claims">
            <thead>
                <tr>
                    <th scope="col">"Claim"</th>
                    <th scope="col">"Value"</th>
                </tr>
            </thead>
            <tbody>
                {claims
                    .into_iter()
                    .map(|(name, value)| {
                        view! {
                            <tr>
                                <th scope="row">
                                    <code>{name}</code>
                                </th>
                                <td>{value}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

/// Sends a signed-out visitor to sign in, and back to `return_to` after: a 302. When their
/// session has just `ended`, they go by the page that says so. A caller that does not ask for
/// HTML gets a 401 instead.
#[component]
fn SignInRedirect(return_to: String, #[prop(optional)] ended: bool) -> impl IntoView {
    let url = if ended {
        links::sign_in_page(Some(SignInFailure::SessionEnded), None, Some(&return_to))
    } else {
        links::login(None, Some(&return_to))
    };
    #[cfg(feature = "ssr")]
    {
        let asks_for_html = use_context::<axum::http::request::Parts>()
            .is_none_or(|request| crate::json_errors::wants_html(&request.headers));
        match (asks_for_html, ended) {
            (true, _) => leptos_axum::redirect(&url),
            (false, true) => set_failure(401, SignInFailure::SessionEnded.code()),
            (false, false) => set_failure(401, crate::failure::sign_in_required::CODE),
        }
    }
    view! {
        <section class="card">
            <h1>"Sign in to continue"</h1>
            <p>"This page is for signed-in users."</p>
            <a class="button" href=url rel="external">"Sign in"</a>
        </section>
    }
}

/// `GET /logout`: a confirmation with the sign-out button (a GET never signs anyone out), and
/// where a refused sign-out lands.
#[component]
fn SignOut() -> impl IntoView {
    let (failure, confirm) = use_query_map().with_untracked(|q| (q.get("error"), q.get("confirm")));
    // Back from confirming at the provider that it is the user (a step-up): now the button.
    let everywhere = confirm.as_deref() == Some("everywhere");
    let message = failure.map(|code| {
        let failure = SignOutFailure::from_code(&code);
        set_failure(failure.status(), failure.code());
        failure.message()
    });
    view! {
        <Title text="Sign out" />
        {with_visitor(move |visitor| match visitor {
            Visitor::SignedIn(user) => {
                view! {
                    <section class="card" class:error=message.is_some()>
                        <h1>{if everywhere { "Sign out everywhere?" } else { "Sign out?" }}</h1>
                        {message.map(|m| view! { <p role="alert">{m}</p> })}
                        <p>
                            "You are signed in as " {user.name.clone()} "."
                            {everywhere
                                .then_some(
                                    " You confirmed it is you: you may end your sessions in every browser now.",
                                )}
                        </p>
                        <SignOutForm csrf_token=user.csrf_token.clone() everywhere />
                    </section>
                }
                    .into_any()
            }
            Visitor::Unknown => view! { <Unavailable /> }.into_any(),
            Visitor::Anonymous | Visitor::SessionEnded => {
                view! {
                    <section class="card">
                        <h1>"You are signed out"</h1>
                        <a href="/">"Back to the home page"</a>
                    </section>
                }
                    .into_any()
            }
        })}
    }
}

#[component]
fn NotFound() -> impl IntoView {
    set_failure(404, not_found::CODE);
    view! {
        <Title text="Not found" />
        <section class="card error">
            <h1>"Page not found"</h1>
            <p>{not_found::MESSAGE}</p>
            <a href="/">"Back to the home page"</a>
        </section>
    }
}

/// The session store did not answer, so who is looking is unknown: a 503 that says so and
/// offers to try again (a full page load of the same address). Nobody is signed out by it.
#[component]
fn Unavailable() -> impl IntoView {
    set_failure(503, outage::CODE);
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.insert_header(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
    }
    let here = current_address();
    view! {
        <Title text=outage::TITLE />
        <section class="card error">
            <h1>{outage::TITLE}</h1>
            <p role="alert">{outage::MESSAGE}</p>
            <a class="button" href=here rel="external">
                "Try again"
            </a>
        </section>
    }
}

/// The address of the page being rendered: its path and query.
fn current_address() -> String {
    let location = leptos_router::hooks::use_location();
    let (path, query) = (
        location.pathname.get_untracked(),
        location.search.get_untracked(),
    );
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// Sets the HTTP status of the failure page being rendered on the server, and names its
/// failure for callers that get JSON instead (see `failure::CODE_HEADER`).
fn set_failure(status: u16, code: &'static str) {
    #[cfg(feature = "ssr")]
    if let (Some(response), Ok(status)) = (
        use_context::<leptos_axum::ResponseOptions>(),
        axum::http::StatusCode::from_u16(status),
    ) {
        response.set_status(status);
        response.insert_header(
            axum::http::HeaderName::from_static(crate::failure::CODE_HEADER),
            axum::http::HeaderValue::from_static(code),
        );
    }
    #[cfg(not(feature = "ssr"))]
    let _ = (status, code);
}
