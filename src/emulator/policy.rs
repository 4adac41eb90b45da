//! RAM session policies, as AssumeRole's `Policy` parameter carries them: parsed with RAM's
//! grammar at AssumeRole, then evaluated for each VOD call signed with the issued credential.
//!
//! A session policy only narrows the role (whose rights, in the emulator, are everything):
//! a call is allowed when some `Allow` statement matches it and no `Deny` statement does.
//! Actions match case-insensitively (RAM treats `vod:createuploadvideo` as
//! `vod:CreateUploadVideo`), with `*` (any run of characters) and `?` (one character);
//! resources match case-sensitively with the same wildcards.
//!
//! Conditions are accepted but not evaluated; rather than guess, the emulator errs towards
//! refusing: an `Allow` with a `Condition` grants nothing, a `Deny` with one always applies.

use serde_json::{Map, Value};

/// RAM's limit on the `Policy` parameter of AssumeRole (`docs/reference/vod-api.md` §4; older docs said 1024).
pub(crate) const MAX_POLICY_CHARS: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SessionPolicy {
    statements: Vec<Statement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Patterns {
    /// `Action` / `Resource`: the statement covers what matches one of these.
    Listed(Vec<String>),
    /// `NotAction` / `NotResource`: the statement covers what matches none of these.
    Excluded(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Statement {
    effect: Effect,
    /// Lower-cased, since actions compare case-insensitively.
    actions: Patterns,
    resources: Patterns,
    has_condition: bool,
}

impl Patterns {
    fn covers(&self, value: &str) -> bool {
        match self {
            Patterns::Listed(p) => p.iter().any(|p| wildcard_match(p, value)),
            Patterns::Excluded(p) => !p.iter().any(|p| wildcard_match(p, value)),
        }
    }
}

/// A session policy STS would refuse (`InvalidParameter.PolicyGrammar`), and what is wrong
/// with it (STS's answer says only that the grammar check failed; this is for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyGrammarError(String);

impl SessionPolicy {
    /// Parses a policy document; the error says what is wrong (for logs and tests: STS itself
    /// answers every grammar error with the same `InvalidParameter.PolicyGrammar`).
    pub(crate) fn parse(text: &str) -> Result<Self, PolicyGrammarError> {
        Self::parse_document(text).map_err(PolicyGrammarError)
    }

    /// The grammar, reason by reason (each a sentence for [`PolicyGrammarError`]).
    fn parse_document(text: &str) -> Result<Self, String> {
        let chars = text.chars().count();
        if chars == 0 || chars > MAX_POLICY_CHARS {
            return Err(format!(
                "the policy has {chars} characters, allowed 1 to {MAX_POLICY_CHARS}"
            ));
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("the policy is not JSON: {e}"))?;
        let Value::Object(doc) = value else {
            return Err("the policy is not a JSON object".to_owned());
        };
        for key in doc.keys() {
            if key != "Version" && key != "Statement" {
                return Err(format!("unknown policy element {key:?}"));
            }
        }
        match doc.get("Version") {
            Some(Value::String(v)) if v == "1" => {}
            Some(other) => return Err(format!("Version must be \"1\", not {other}")),
            None => return Err("the policy has no Version".to_owned()),
        }
        let statements = match doc.get("Statement") {
            Some(Value::Array(items)) if !items.is_empty() => items,
            Some(Value::Array(_)) => return Err("Statement is empty".to_owned()),
            Some(_) => return Err("Statement must be an array of statements".to_owned()),
            None => return Err("the policy has no Statement".to_owned()),
        };
        let statements = statements
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                Value::Object(map) => {
                    parse_statement(map).map_err(|e| format!("Statement {i}: {e}"))
                }
                _ => Err(format!("Statement {i} is not an object")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { statements })
    }

    /// Whether `action` (`vod:CreateUploadVideo`) on `resource` (an ACS resource name) is
    /// allowed: an explicit Deny wins, otherwise some Allow must match.
    pub(crate) fn allows(&self, action: &str, resource: &str) -> bool {
        let action = action.to_ascii_lowercase();
        let applies = |s: &Statement| s.actions.covers(&action) && s.resources.covers(resource);
        let denied = self
            .statements
            .iter()
            .any(|s| s.effect == Effect::Deny && applies(s));
        let allowed = self
            .statements
            .iter()
            .any(|s| s.effect == Effect::Allow && !s.has_condition && applies(s));
        allowed && !denied
    }
}

fn parse_statement(map: &Map<String, Value>) -> Result<Statement, String> {
    const KNOWN: &[&str] = &[
        "Effect",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
    ];
    if let Some(key) = map.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!("unknown statement element {key:?}"));
    }
    let effect = match map.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(other) => return Err(format!("Effect must be \"Allow\" or \"Deny\", not {other}")),
        None => return Err("no Effect".to_owned()),
    };
    let actions = either(map, "Action", "NotAction")?;
    let actions = match actions {
        Patterns::Listed(p) => Patterns::Listed(check_actions(p)?),
        Patterns::Excluded(p) => Patterns::Excluded(check_actions(p)?),
    };
    let resources = either(map, "Resource", "NotResource")?;
    let has_condition = match map.get("Condition") {
        None => false,
        Some(Value::Object(_)) => true,
        Some(_) => return Err("Condition must be an object".to_owned()),
    };
    Ok(Statement {
        effect,
        actions,
        resources,
        has_condition,
    })
}

/// Exactly one of `name` and `not_name`, each a string or a non-empty array of strings.
fn either(map: &Map<String, Value>, name: &str, not_name: &str) -> Result<Patterns, String> {
    match (map.get(name), map.get(not_name)) {
        (Some(v), None) => strings(name, v).map(Patterns::Listed),
        (None, Some(v)) => strings(not_name, v).map(Patterns::Excluded),
        (Some(_), Some(_)) => Err(format!("both {name} and {not_name}")),
        (None, None) => Err(format!("no {name}")),
    }
}

fn strings(name: &str, value: &Value) -> Result<Vec<String>, String> {
    let list = match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("{name} must hold only strings"))?,
        _ => {
            return Err(format!(
                "{name} must be a string or a non-empty array of strings"
            ))
        }
    };
    if list.iter().any(String::is_empty) {
        return Err(format!("{name} has an empty entry"));
    }
    Ok(list)
}

/// `*`, or `service:Name` (wildcards allowed in either part); lower-cased.
fn check_actions(actions: Vec<String>) -> Result<Vec<String>, String> {
    actions
        .into_iter()
        .map(|a| {
            let well_formed = a == "*"
                || a.split_once(':').is_some_and(|(service, name)| {
                    !service.is_empty() && !name.is_empty() && !name.contains(':')
                });
            if well_formed {
                Ok(a.to_ascii_lowercase())
            } else {
                Err(format!("action {a:?} is not \"*\" or \"service:Action\""))
            }
        })
        .collect()
}

/// Glob match: `*` is any run of characters (empty included), `?` exactly one.
pub(crate) fn wildcard_match(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    // Iterative matching with backtracking to the last `*`: linear in practice, no recursion.
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        // `*` first: a literal `*` in the value (resources end in one) must not consume it.
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, vi));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const RES: &str = "acs:vod:cn-shanghai:1234567890123456:*";

    fn policy(statements: &str) -> SessionPolicy {
        SessionPolicy::parse(&format!(r#"{{"Version":"1","Statement":[{statements}]}}"#)).unwrap()
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("*", "vod:anything"));
        assert!(wildcard_match("vod:*", "vod:getvideoinfo"));
        assert!(!wildcard_match("vod:*", "sts:assumerole"));
        assert!(wildcard_match("vod:createupload*", "vod:createuploadvideo"));
        assert!(wildcard_match("vod:createupload*", "vod:createupload"));
        assert!(!wildcard_match(
            "vod:createupload*",
            "vod:refreshuploadvideo"
        ));
        assert!(wildcard_match("vod:*upload*", "vod:refreshuploadvideo"));
        assert!(wildcard_match("vod:get?ideoinfo", "vod:getvideoinfo"));
        assert!(!wildcard_match("vod:get?ideoinfo", "vod:getideoinfo"));
        assert!(wildcard_match("a*b*c", "aXXbYYbc"));
        assert!(!wildcard_match("a*b*c", "aXXbYYbcd"));
        assert!(!wildcard_match("vod:getvideoinfo", "vod:getvideoinfos"));
    }

    /// Found by the `emulator_policy` fuzz target: a `*` in the pattern facing a literal `*`
    /// in the value was matched as a plain character, so the wildcard was lost.
    #[test]
    fn a_star_in_the_value_does_not_disarm_a_wildcard() {
        assert!(wildcard_match("*", "*x"));
        assert!(wildcard_match("a*a*b*c", "aXa*b*c"));
        assert!(wildcard_match("acs:vod:*", "acs:vod:*:1:*"));
        assert!(!wildcard_match("*x", "*y"));
    }

    #[test]
    fn exact_names_and_case() {
        let p = policy(r#"{"Effect":"Allow","Action":"vod:CreateUploadVideo","Resource":"*"}"#);
        assert!(p.allows("vod:CreateUploadVideo", RES));
        assert!(p.allows("VOD:createuploadvideo", RES));
        assert!(!p.allows("vod:GetVideoInfo", RES));
        assert!(!p.allows("vod:CreateUploadImage", RES));
        let lower =
            policy(r#"{"Effect":"Allow","Action":["vod:createuploadvideo"],"Resource":["*"]}"#);
        assert!(lower.allows("vod:CreateUploadVideo", RES));
    }

    #[test]
    fn wildcard_actions() {
        let p = policy(r#"{"Effect":"Allow","Action":"vod:CreateUpload*","Resource":"*"}"#);
        assert!(p.allows("vod:CreateUploadVideo", RES));
        assert!(p.allows("vod:CreateUploadImage", RES));
        assert!(!p.allows("vod:RefreshUploadVideo", RES));
        for all in ["vod:*", "*"] {
            let p = policy(&format!(
                r#"{{"Effect":"Allow","Action":"{all}","Resource":"*"}}"#
            ));
            assert!(p.allows("vod:GetVideoInfo", RES), "{all}");
        }
        let other_service = policy(r#"{"Effect":"Allow","Action":"oss:*","Resource":"*"}"#);
        assert!(!other_service.allows("vod:GetVideoInfo", RES));
    }

    #[test]
    fn deny_wins() {
        let p = policy(
            r#"{"Effect":"Allow","Action":"vod:*","Resource":"*"},
               {"Effect":"Deny","Action":"vod:GetVideoInfo","Resource":"*"}"#,
        );
        assert!(p.allows("vod:CreateUploadVideo", RES));
        assert!(!p.allows("vod:GetVideoInfo", RES));
        // Order does not matter.
        let p = policy(
            r#"{"Effect":"Deny","Action":"vod:get*","Resource":"*"},
               {"Effect":"Allow","Action":"*","Resource":"*"}"#,
        );
        assert!(!p.allows("vod:GetImageInfo", RES));
        assert!(p.allows("vod:CreateUploadImage", RES));
    }

    #[test]
    fn deny_only_allows_nothing() {
        let p = policy(r#"{"Effect":"Deny","Action":"vod:GetVideoInfo","Resource":"*"}"#);
        assert!(!p.allows("vod:CreateUploadVideo", RES));
    }

    #[test]
    fn not_action_and_resources() {
        let p = policy(r#"{"Effect":"Allow","NotAction":"vod:Get*","Resource":"*"}"#);
        assert!(p.allows("vod:CreateUploadVideo", RES));
        assert!(!p.allows("vod:GetVideoInfo", RES));
        let scoped = policy(r#"{"Effect":"Allow","Action":"vod:*","Resource":"acs:vod:*:*:*"}"#);
        assert!(scoped.allows("vod:GetVideoInfo", RES));
        let other =
            policy(r#"{"Effect":"Allow","Action":"vod:*","Resource":"acs:vod:cn-beijing:*:*"}"#);
        assert!(!other.allows("vod:GetVideoInfo", RES));
    }

    #[test]
    fn conditions_err_towards_refusal() {
        let c = r#""Condition":{"IpAddress":{"acs:SourceIp":"10.0.0.0/8"}}"#;
        let allow = policy(&format!(
            r#"{{"Effect":"Allow","Action":"vod:*","Resource":"*",{c}}}"#
        ));
        assert!(!allow.allows("vod:GetVideoInfo", RES));
        let deny = policy(&format!(
            r#"{{"Effect":"Allow","Action":"vod:*","Resource":"*"}},
               {{"Effect":"Deny","Action":"vod:GetVideoInfo","Resource":"*",{c}}}"#
        ));
        assert!(!deny.allows("vod:GetVideoInfo", RES));
        assert!(deny.allows("vod:CreateUploadVideo", RES));
    }

    #[test]
    fn grammar_errors_say_what_is_wrong() {
        let s = r#"{"Effect":"Allow","Action":"vod:*","Resource":"*"}"#;
        let cases: Vec<(String, &str)> = vec![
            ("{not json".into(), "not JSON"),
            ("[]".into(), "not a JSON object"),
            (format!(r#"{{"Statement":[{s}]}}"#), "no Version"),
            (format!(r#"{{"Version":"2","Statement":[{s}]}}"#), "Version must be"),
            (format!(r#"{{"Version":1,"Statement":[{s}]}}"#), "Version must be"),
            (r#"{"Version":"1"}"#.into(), "no Statement"),
            (r#"{"Version":"1","Statement":[]}"#.into(), "Statement is empty"),
            (format!(r#"{{"Version":"1","Statement":{s}}}"#), "must be an array"),
            (format!(r#"{{"Version":"1","Statement":[{s}],"Id":"x"}}"#), "unknown policy element"),
            (
                r#"{"Version":"1","Statement":[{"Effect":"allow","Action":"vod:*","Resource":"*"}]}"#.into(),
                "Effect must be",
            ),
            (
                r#"{"Version":"1","Statement":[{"Action":"vod:*","Resource":"*"}]}"#.into(),
                "no Effect",
            ),
            (
                r#"{"Version":"1","Statement":[{"Effect":"Allow","Resource":"*"}]}"#.into(),
                "no Action",
            ),
            (
                r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"vod:*"}]}"#.into(),
                "no Resource",
            ),
            (
                r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":[],"Resource":"*"}]}"#.into(),
                "non-empty array",
            ),
            (
                r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":[1],"Resource":"*"}]}"#.into(),
                "only strings",
            ),
            (
                r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"CreateUploadVideo","Resource":"*"}]}"#.into(),
                "service:Action",
            ),
            (
                r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"vod:*","Resource":"*","Sid":"a"}]}"#.into(),
                "unknown statement element",
            ),
            (
                format!(r#"{{"Version":"1","Statement":[{s}],"Pad":"{}"}}"#, "x".repeat(2048)),
                "characters",
            ),
            (String::new(), "characters"),
        ];
        for (text, expected) in cases {
            let err = SessionPolicy::parse(&text).unwrap_err();
            assert!(err.to_string().contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn the_reference_example_parses() {
        // `docs/reference/vod-api.md` §4 (key order differs from the other examples on purpose).
        let p = SessionPolicy::parse(
            r#"{"Statement":[{"Action":["*"],"Effect":"Allow","Resource":["*"]}],"Version":"1"}"#,
        )
        .unwrap();
        assert!(p.allows("vod:GetVideoInfo", RES));
        // 2048 characters exactly is fine.
        let base =
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"vod:*","Resource":["*"]}]}"#;
        let padded = format!("{}{}", base, " ".repeat(2048 - base.len()));
        assert_eq!(padded.chars().count(), 2048);
        assert!(SessionPolicy::parse(&padded).is_ok());
    }
}
