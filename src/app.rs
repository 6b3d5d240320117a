//! Pages and routes. Rendered on the server, hydrated in the browser; every page works before
//! (and without) WASM: sign-in is a link, sign-out a plain form.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes, A},
    hooks::use_query_map,
    path, SsrMode,
};

use crate::{
    api_demo::provider_userinfo,
    auth::current_visit,
    failure::{not_found, outage, SignInFailure, SignOutFailure},
    links,
    visitor::{Profile, ProviderChoice, Visit, Visitor},
};

/// The HTML document around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// Who is looking (and the ways to sign in), loaded once per page and shared by its parts.
type VisitResource = Resource<Visit>;

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Blocking: the server knows who is signed in before it sends the first byte, so a
    // protected page can still answer with a redirect. A visit that cannot be learned (the
    // server did not answer) is unknown, not signed out.
    let visit: VisitResource = Resource::new_blocking(
        || (),
        |_| async {
            current_visit().await.unwrap_or(Visit {
                visitor: Visitor::Unknown,
                choices: Vec::new(),
            })
        },
    );
    provide_context(visit);

    view! {
        <Stylesheet id="leptos" href="/pkg/leptos_oidc.css" />
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
                </Routes>
            </main>
        </Router>
    }
}

/// Runs `page` with the visit once it is known.
fn with_visit<V: IntoView + 'static>(
    page: impl Fn(Visit) -> V + Send + Sync + Clone + 'static,
) -> impl IntoView {
    let visit = expect_context::<VisitResource>();
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || {
                let page = page.clone();
                Suspend::new(async move { page(visit.await) })
            }}
        </Suspense>
    }
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
            <A href="/" attr:class="brand">"Leptos OIDC"</A>
            <nav>
                {with_visitor(|visitor| match visitor {
                    Visitor::SignedIn(user) => {
                        let Profile { name, csrf_token, .. } = *user;
                        view! {
                            <A href="/profile">{name}</A>
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

/// A plain link to `/login` (at `provider`, or the only one): a full page load to the server,
/// with or without WASM.
#[component]
fn SignInLink(label: String, provider: Option<String>, return_to: Option<String>) -> impl IntoView {
    let href = links::login(provider.as_deref(), return_to.as_deref());
    // rel="external" keeps the client router out of it: /login is the server's, not a page.
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
                        <A href="/profile" attr:class="button">"View your profile"</A>
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
                            <A href="/profile">"Your profile"</A>
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
                        <A href="/">"Back to the home page"</A>
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
/// known; nothing of them before. Anyone else is sent to sign in and brought back here: a 302
/// from the server, a page load in the browser; a caller that does not ask for HTML (`fetch`,
/// `curl`) gets a 401 with a JSON body instead. While the session store cannot say who is
/// looking, the 503 page.
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
                <dd>{user.signed_in_at.clone()}</dd>
                <dt>"Session ends"</dt>
                <dd>{user.session_ends_at.clone()} " (sooner if unused)"</dd>
                {user
                    .access_token_expires_at
                    .clone()
                    .map(|at| {
                        view! {
                            <dt>"Access token expires"</dt>
                            <dd>
                                {at}
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
            <p>
                <A href="/api-demo">"Ask your provider about you, with your access token"</A>
            </p>
            <SignOutForm csrf_token=user.csrf_token.clone() everywhere=true />
        </section>
    }
}

/// `/api-demo`: the provider's userinfo endpoint, asked by the server with the user's access
/// token: how a server function calls an API on the user's behalf (`src/api_demo.rs`).
#[component]
fn ApiDemo() -> impl IntoView {
    // Made here, once per visit of the page (the parts under RequireSignIn may render more than
    // once), and asked only for a signed-in visitor: RequireSignIn answers anyone else.
    let visit = expect_context::<VisitResource>();
    let answer: Answer = Resource::new_blocking(
        || (),
        move |_| async move {
            match visit.await.visitor {
                Visitor::SignedIn(_) => provider_userinfo().await.map_err(|e| e.to_string()),
                _ => Ok(Vec::new()),
            }
        },
    );
    view! {
        <Title text="API demo" />
        <RequireSignIn let:user>
            <ProviderAnswer name=user.name answer />
        </RequireSignIn>
    }
}

/// What the provider answered: its claims, or why there are none.
type Answer = Resource<Result<Vec<(String, String)>, String>>;

#[component]
fn ProviderAnswer(name: String, answer: Answer) -> impl IntoView {
    view! {
        <section class="card">
            <h1>"What your provider says, asked just now"</h1>
            <p>
                "The server asked your provider's userinfo endpoint about " {name}
                ", with your access token (renewed first when it is about to expire)."
            </p>
            <Suspense fallback=|| view! { <p class="loading">"Asking…"</p> }>
                {move || Suspend::new(async move {
                    match answer.await {
                        Ok(claims) => view! { <ClaimsTable claims /> }.into_any(),
                        Err(e) => {
                            view! { <p role="alert">"The provider did not answer: " {e}</p> }
                                .into_any()
                        }
                    }
                })}
            </Suspense>
            <p>
                <A href="/profile">"Back to your profile"</A>
            </p>
        </section>
    }
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

/// Sends a signed-out visitor to sign in, and back to `return_to` after: a 302 from the server,
/// a page load in the browser. When their session has just `ended`, they go by the page that
/// says so. A caller that does not ask for HTML gets a 401 instead.
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
    #[cfg(feature = "hydrate")]
    {
        let _ = window().location().set_href(&url);
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
                        <A href="/">"Back to the home page"</A>
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
            <A href="/">"Back to the home page"</A>
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
