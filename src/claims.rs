//! Rules on a user's claims, for deciding who may do what: `groups:admins` holds when the claim
//! `groups` is `admins`, or a list that includes it. Shared by the server (the rules a provider
//! requires at sign-in, `SignedIn::require_claim` in server functions) and pages
//! ([`crate::visitor::Profile::has_claim`]).

use std::fmt;

use serde_json::Value;

/// One required claim value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRule {
    pub claim: String,
    pub value: String,
}

impl ClaimRule {
    /// `claim:value`. The last `:` divides them, so that namespaced claim names
    /// (`https://example.com/roles:admin`) work.
    pub fn parse(text: &str) -> Option<Self> {
        let (claim, value) = text.trim().rsplit_once(':')?;
        let (claim, value) = (claim.trim(), value.trim());
        (!claim.is_empty() && !value.is_empty()).then(|| Self {
            claim: claim.to_owned(),
            value: value.to_owned(),
        })
    }

    /// Whether the claim's value (when there is one) satisfies the rule.
    pub fn holds(&self, value: Option<&Value>) -> bool {
        value.is_some_and(|value| has_value(value, &self.value))
    }
}

impl fmt::Display for ClaimRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.claim, self.value)
    }
}

/// Whether a claim's value is `wanted`, or a list that includes it. Booleans and numbers match
/// their JSON text (`email_verified:true`).
pub fn has_value(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(s) => s == wanted,
        Value::Bool(b) => wanted.parse() == Ok(*b),
        Value::Number(n) => n.to_string() == wanted,
        Value::Array(items) => items
            .iter()
            .any(|item| !item.is_array() && has_value(item, wanted)),
        Value::Null | Value::Object(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_are_read_with_the_last_colon_dividing_name_and_value() {
        let rule = ClaimRule::parse(" groups:admins ").unwrap();
        assert_eq!(
            (rule.claim.as_str(), rule.value.as_str()),
            ("groups", "admins")
        );
        assert_eq!(rule.to_string(), "groups:admins");
        let namespaced = ClaimRule::parse("https://example.com/roles:admin").unwrap();
        assert_eq!(namespaced.claim, "https://example.com/roles");
        for bad in ["", "groups", "groups:", ":admins", " : "] {
            assert_eq!(ClaimRule::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_rule_holds_for_the_value_or_a_list_that_includes_it() {
        let rule = |text| ClaimRule::parse(text).unwrap();
        assert!(rule("groups:admins").holds(Some(&json!("admins"))));
        assert!(rule("groups:admins").holds(Some(&json!(["staff", "admins"]))));
        assert!(rule("email_verified:true").holds(Some(&json!(true))));
        assert!(rule("level:3").holds(Some(&json!(3))));
        for value in [
            json!("administrators"),
            json!(["staff"]),
            json!([["admins"]]),
            json!({ "admins": true }),
            json!(null),
        ] {
            assert!(!rule("groups:admins").holds(Some(&value)), "{value}");
        }
        assert!(!rule("groups:admins").holds(None));
        assert!(!rule("email_verified:true").holds(Some(&json!(false))));
    }
}
