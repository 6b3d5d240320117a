//! The example of calling an API with the signed-in user's access token: the provider's
//! userinfo endpoint, asked by a server function (the page is `/api-demo` in [`crate::app`]).

use leptos::prelude::*;

/// What the provider's userinfo endpoint says of the signed-in user, claim by claim, sorted;
/// asked just now with their access token (renewed first when due, and once more if the
/// endpoint refuses it).
#[server(endpoint = "provider_userinfo")]
pub async fn provider_userinfo() -> Result<Vec<(String, String)>, ServerFnError> {
    let mut user = crate::auth::require_user().await?;
    let url = match user.provider() {
        Some(provider) => provider.userinfo_url().await,
        None => None,
    }
    .ok_or_else(|| ServerFnError::new("this provider has no userinfo endpoint"))?;
    let answer = user
        .send(|http| http.get(url.as_str()))
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    let status = answer.status();
    if !status.is_success() {
        return Err(ServerFnError::new(format!(
            "the provider answered {status}"
        )));
    }
    let body = answer
        .bytes()
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body)
        .map_err(|_| ServerFnError::new("the provider's answer is not a JSON object"))?;
    let mut claims: Vec<(String, String)> = claims
        .into_iter()
        .map(|(name, value)| match value {
            serde_json::Value::String(s) => (name, s),
            other => (name, other.to_string()),
        })
        .collect();
    claims.sort();
    Ok(claims)
}
