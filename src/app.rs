//! Pages and routes. Rendered on the server, hydrated in the browser; every page works before
//! (and without) WASM: sign-in is a link, sign-out a plain form.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes, A},
    hooks::use_query_map,
    path, SsrMode,
};

use crate::auth::{current_user, Profile, SignInFailure, Visitor};

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

/// Who is looking, loaded once per page and shared by its parts.
type VisitorResource = Resource<Visitor>;

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Blocking: the server knows who is signed in before it sends the first byte, so a
    // protected page can still answer with a redirect.
    let visitor: VisitorResource = Resource::new_blocking(
        || (),
        |_| async { current_user().await.unwrap_or(Visitor::Anonymous) },
    );
    provide_context(visitor);

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
                </Routes>
            </main>
        </Router>
    }
}

/// Runs `page` with the visitor once they are known.
fn with_visitor<V: IntoView + 'static>(
    page: impl Fn(Visitor) -> V + Send + Sync + Clone + 'static,
) -> impl IntoView {
    let visitor = expect_context::<VisitorResource>();
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || {
                let page = page.clone();
                Suspend::new(async move { page(visitor.await) })
            }}
        </Suspense>
    }
}

/// Runs `page` with the signed-in user, if any, once they are known.
fn with_user<V: IntoView + 'static>(
    page: impl Fn(Option<Profile>) -> V + Send + Sync + Clone + 'static,
) -> impl IntoView {
    with_visitor(move |visitor| page(visitor.user()))
}

#[component]
fn Header() -> impl IntoView {
    view! {
        <header class="site-header">
            <A href="/" attr:class="brand">"Leptos OIDC"</A>
            <nav>
                {with_user(|user| match user {
                    Some(user) => {
                        view! {
                            <A href="/profile">{user.name.clone()}</A>
                            <SignOutForm csrf_token=user.csrf_token.clone() />
                        }
                            .into_any()
                    }
                    None => view! { <SignInLink label="Sign in" return_to=None /> }.into_any(),
                })}
            </nav>
        </header>
    }
}

/// A plain link to `/login`: a full page load to the server, with or without WASM.
#[component]
fn SignInLink(label: &'static str, return_to: Option<String>) -> impl IntoView {
    let href = match return_to {
        Some(path) => format!("/login?return_to={}", encode_query_value(&path)),
        None => "/login".to_owned(),
    };
    // rel="external" keeps the client router out of it: /login is the server's, not a page.
    view! {
        <a class="button" href=href rel="external">
            {label}
        </a>
    }
}

/// A plain form: signs out with or without WASM. The token proves the post came from our page.
/// With `everywhere`, a second button ends the user's sessions in every browser.
#[component]
fn SignOutForm(csrf_token: String, #[prop(optional)] everywhere: bool) -> impl IntoView {
    view! {
        <form class="sign-out" method="post" action="/logout">
            <input type="hidden" name="csrf" value=csrf_token />
            <button type="submit">"Sign out"</button>
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
                        <SignInLink label="Sign in" return_to=None />
                    }
                        .into_any()
                }
                Visitor::Anonymous => {
                    view! { <SignInLink label="Sign in" return_to=None /> }.into_any()
                }
            })}
        </section>
    }
}

/// Where a failed sign-in lands (`?error=<code>`), and where a visitor may start one.
#[component]
fn SignIn() -> impl IntoView {
    let query = use_query_map();
    let failure = query.with_untracked(|q| q.get("error").map(|e| SignInFailure::from_code(&e)));
    let return_to = query.with_untracked(|q| q.get("return_to"));
    match failure {
        Some(Some(failure)) => set_status(failure.status()),
        Some(None) => set_status(400),
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
    view! {
        <Title text=title />
        <section class="card" class:error=failure.is_some()>
            <h1>{title}</h1>
            <p role=failure.is_some().then_some("alert")>{message}</p>
            <div class="actions">
                <SignInLink
                    label=if failure.is_some() { "Try again" } else { "Sign in" }
                    return_to
                />
                <A href="/">"Back to the home page"</A>
            </div>
        </section>
    }
}

#[component]
fn ProfilePage() -> impl IntoView {
    view! {
        <Title text="Profile" />
        {with_visitor(|visitor| match visitor {
            Visitor::SignedIn(user) => view! { <ProfileCard user=*user /> }.into_any(),
            Visitor::SessionEnded => {
                view! { <SignInRedirect return_to="/profile" ended=true /> }.into_any()
            }
            Visitor::Anonymous => view! { <SignInRedirect return_to="/profile" /> }.into_any(),
        })}
    }
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
                <dt>"Identity provider"</dt>
                <dd>{user.issuer.clone()}</dd>
            </dl>
            <h2>"What your provider says about you"</h2>
            <table class="claims">
                <thead>
                    <tr>
                        <th scope="col">"Claim"</th>
                        <th scope="col">"Value"</th>
                    </tr>
                </thead>
                <tbody>
                    {user
                        .claims
                        .iter()
                        .map(|(name, value)| {
                            view! {
                                <tr>
                                    <th scope="row">
                                        <code>{name.clone()}</code>
                                    </th>
                                    <td>{value.clone()}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
            <SignOutForm csrf_token=user.csrf_token.clone() everywhere=true />
        </section>
    }
}

/// Sends a signed-out visitor to sign in, and back to `return_to` after: a 302 from the server,
/// a page load in the browser. When their session has just `ended`, they go by the page that
/// says so.
#[component]
fn SignInRedirect(return_to: &'static str, #[prop(optional)] ended: bool) -> impl IntoView {
    let return_to = encode_query_value(return_to);
    let url = if ended {
        format!(
            "/signin?error={}&return_to={return_to}",
            SignInFailure::SessionEnded.code()
        )
    } else {
        format!("/login?return_to={return_to}")
    };
    #[cfg(feature = "ssr")]
    leptos_axum::redirect(&url);
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
    let error = use_query_map().with_untracked(|q| q.get("error"));
    let message = match error.as_deref() {
        Some("csrf") => {
            set_status(403);
            Some("That sign-out request did not come from this site's page, so you are still signed in. Press Sign out to sign out.")
        }
        Some(_) => {
            set_status(503);
            Some("Signing out failed on our side. Please try again.")
        }
        None => None,
    };
    view! {
        <Title text="Sign out" />
        {with_user(move |user| match user {
            Some(user) => {
                view! {
                    <section class="card" class:error=message.is_some()>
                        <h1>"Sign out?"</h1>
                        {message.map(|m| view! { <p role="alert">{m}</p> })}
                        <p>"You are signed in as " {user.name.clone()} "."</p>
                        <SignOutForm csrf_token=user.csrf_token.clone() />
                    </section>
                }
                    .into_any()
            }
            None => {
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
    set_status(404);
    view! {
        <Title text="Not found" />
        <section class="card error">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address."</p>
            <A href="/">"Back to the home page"</A>
        </section>
    }
}

/// Sets the HTTP status of the page being rendered on the server.
fn set_status(status: u16) {
    #[cfg(feature = "ssr")]
    if let (Some(response), Ok(status)) = (
        use_context::<leptos_axum::ResponseOptions>(),
        axum::http::StatusCode::from_u16(status),
    ) {
        response.set_status(status);
    }
    #[cfg(not(feature = "ssr"))]
    let _ = status;
}

/// Percent-encodes a query value (everything but unreserved characters and `/`).
fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode_query_value;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode_query_value("/profile"), "/profile");
        assert_eq!(encode_query_value("/a?b=c&d"), "/a%3Fb%3Dc%26d");
        assert_eq!(encode_query_value("/é"), "/%C3%A9");
    }
}
