//! A small client for Tailscale's policy-file API.
//!
//! Calls made (base URL `https://api.tailscale.com` unless configured):
//! - `GET  /api/v2/tailnet/{tailnet}/acl` with `Accept: application/json`
//!   (the policy, standardized, and its `ETag`);
//! - `POST /api/v2/tailnet/{tailnet}/acl/validate` (plan-time check, runs the
//!   policy's tests without saving);
//! - `POST /api/v2/tailnet/{tailnet}/acl` with `If-Match` (apply);
//! - `POST /api/v2/oauth/token` (OAuth client credentials, scope `policy_file`).
//!
//! The connection is made lazily by the first call and reused. Credentials are
//! kept as [`Secret`]s and only ever written into the `Authorization` header.

use claw_provider::Secret;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How the provider authenticates.
#[derive(Clone)]
pub enum Credentials {
    /// An API access token (`tskey-api-...`), sent as a bearer token.
    ApiKey(Secret),
    /// An OAuth client: exchanged for an access token with the `policy_file` scope.
    OAuth {
        client_id: String,
        client_secret: Secret,
    },
    /// Nothing configured: every call fails with a hint.
    Missing,
}

/// An API failure, classified for messages.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// The request never got an HTTP answer.
    Transport(String),
    /// No credentials configured.
    NoCredentials,
    /// An HTTP error status with the body's `message` (and `data`, if any).
    Status {
        status: u16,
        message: String,
        data: Option<Value>,
        /// True when the failure came from the OAuth token endpoint.
        oauth: bool,
    },
    /// A 2xx answer that could not be read.
    BadResponse(String),
}

/// The outcome of `/acl/validate`.
#[derive(Debug, Clone, PartialEq)]
pub enum Validation {
    Ok,
    /// The server's `message` and `data` (failing tests per user).
    Failed {
        message: String,
        data: Option<Value>,
    },
}

/// The live policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub value: Value,
    /// The `ETag` header exactly as received (quoted).
    pub etag: String,
}

pub struct Client {
    base_url: String,
    tailnet: String,
    creds: Credentials,
    http: OnceLock<Result<reqwest::Client, String>>,
    token: tokio::sync::Mutex<Option<(Secret, Instant)>>,
    calls: AtomicU64,
}

/// Attempts per request when the API rate-limits (429), is unavailable (503)
/// or cannot be connected to.
const MAX_ATTEMPTS: u32 = 3;

/// The wait before attempt `attempt + 1`: `Retry-After` (at most 10 s), else 0.5 s, 1 s.
fn backoff(attempt: u32, retry_after: Option<u64>) -> Duration {
    match retry_after {
        Some(s) => Duration::from_secs(s.min(10)),
        None => Duration::from_millis(500 * u64::from(attempt)),
    }
}

/// Percent-encodes a path segment (keeps letters, digits, `-._~@`).
fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn message_of(body: &str) -> (String, Option<Value>) {
    match serde_json::from_str::<Value>(body) {
        Ok(v) => {
            let msg = ["message", "error_description", "error"]
                .iter()
                .find_map(|k| v.get(*k).and_then(Value::as_str))
                .map(str::to_string)
                .unwrap_or_else(|| body.trim().chars().take(300).collect());
            (msg, v.get("data").cloned().filter(|d| !d.is_null()))
        }
        Err(_) => (body.trim().chars().take(300).collect(), None),
    }
}

impl Client {
    pub fn new(base_url: &str, tailnet: &str, creds: Credentials) -> Client {
        Client {
            base_url: base_url.trim_end_matches('/').to_string(),
            tailnet: tailnet.to_string(),
            creds,
            http: OnceLock::new(),
            token: tokio::sync::Mutex::new(None),
            calls: AtomicU64::new(0),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn tailnet(&self) -> &str {
        &self.tailnet
    }

    pub fn uses_oauth(&self) -> bool {
        matches!(self.creds, Credentials::OAuth { .. })
    }

    /// API calls made so far (token requests included).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn http(&self) -> Result<&reqwest::Client, ApiError> {
        self.http
            .get_or_init(|| {
                // One rustls crypto provider in the whole tree: ring. Installing
                // it is a no-op when another part of claw already did.
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(15))
                    .timeout(Duration::from_secs(60))
                    .user_agent(concat!("claw/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| ApiError::Transport(format!("cannot build an HTTP client: {e}")))
    }

    fn acl_url(&self, suffix: &str) -> String {
        format!(
            "{}/api/v2/tailnet/{}/acl{suffix}",
            self.base_url,
            segment(&self.tailnet)
        )
    }

    /// The `Authorization` header value (never logged).
    async fn authorization(&self) -> Result<String, ApiError> {
        match &self.creds {
            Credentials::Missing => Err(ApiError::NoCredentials),
            Credentials::ApiKey(k) => match k.expose() {
                Some(k) => Ok(format!("Bearer {k}")),
                None => Err(ApiError::NoCredentials),
            },
            Credentials::OAuth {
                client_id,
                client_secret,
            } => {
                let mut tok = self.token.lock().await;
                if let Some((t, until)) = tok.as_ref() {
                    if Instant::now() < *until {
                        return Ok(format!("Bearer {}", t.expose().unwrap_or_default()));
                    }
                }
                let secret = client_secret.expose().ok_or(ApiError::NoCredentials)?;
                let http = self.http()?;
                self.calls.fetch_add(1, Ordering::Relaxed);
                let resp = http
                    .post(format!("{}/api/v2/oauth/token", self.base_url))
                    .form(&[
                        ("client_id", client_id.as_str()),
                        ("client_secret", secret),
                        ("grant_type", "client_credentials"),
                        ("scope", "policy_file"),
                    ])
                    .send()
                    .await
                    .map_err(|e| ApiError::Transport(e.without_url().to_string()))?;
                let status = resp.status().as_u16();
                let body = resp.text().await.unwrap_or_default();
                if !(200..300).contains(&status) {
                    let (message, data) = message_of(&body);
                    return Err(ApiError::Status {
                        status,
                        message,
                        data,
                        oauth: true,
                    });
                }
                let v: Value = serde_json::from_str(&body)
                    .map_err(|e| ApiError::BadResponse(format!("token response: {e}")))?;
                let access = v
                    .get("access_token")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        ApiError::BadResponse("token response without access_token".into())
                    })?;
                let ttl = v.get("expires_in").and_then(Value::as_u64).unwrap_or(3600);
                // Renew a minute early.
                let until = Instant::now() + Duration::from_secs(ttl.saturating_sub(60).max(1));
                let header = format!("Bearer {access}");
                *tok = Some((Secret::new(access, "oauth-token"), until));
                Ok(header)
            }
        }
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, reqwest::header::HeaderMap, String), ApiError> {
        let auth = self.authorization().await?;
        let req = req.header(reqwest::header::AUTHORIZATION, auth);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            // Bodies are strings, so a request can always be cloned.
            let this = req
                .try_clone()
                .ok_or_else(|| ApiError::Transport("the request cannot be repeated".into()))?;
            self.calls.fetch_add(1, Ordering::Relaxed);
            let resp = match this.send().await {
                Ok(r) => r,
                // Not connected: nothing was sent, so trying again is safe.
                Err(e) if e.is_connect() && attempt < MAX_ATTEMPTS => {
                    tokio::time::sleep(backoff(attempt, None)).await;
                    continue;
                }
                Err(e) => return Err(ApiError::Transport(e.without_url().to_string())),
            };
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            if (status == 429 || status == 503) && attempt < MAX_ATTEMPTS {
                // Rate limited or unavailable: the request was not processed.
                let after = headers
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                tokio::time::sleep(backoff(attempt, after)).await;
                continue;
            }
            let body = resp
                .text()
                .await
                .map_err(|e| ApiError::Transport(e.without_url().to_string()))?;
            return Ok((status, headers, body));
        }
    }

    fn status_error(status: u16, body: &str) -> ApiError {
        let (message, data) = message_of(body);
        ApiError::Status {
            status,
            message,
            data,
            oauth: false,
        }
    }

    /// The policy of an answer. The body is read as HuJSON (a superset of
    /// JSON), so a server answering HuJSON to `Accept: application/json` works
    /// too; an empty body is the empty policy.
    fn policy_from(headers: &reqwest::header::HeaderMap, body: &str) -> Result<Policy, ApiError> {
        let value = if body.trim().is_empty() {
            Value::Object(Default::default())
        } else {
            crate::hujson::parse(body).map_err(|e| {
                ApiError::BadResponse(format!("the policy in the answer does not parse: {e}"))
            })?
        };
        let etag = headers
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        Ok(Policy { value, etag })
    }

    /// `GET …/acl` as JSON, with its ETag.
    pub async fn get_policy(&self) -> Result<Policy, ApiError> {
        let http = self.http()?;
        let (status, headers, body) = self
            .send(
                http.get(self.acl_url(""))
                    .header(reqwest::header::ACCEPT, "application/json"),
            )
            .await?;
        if status != 200 {
            return Err(Self::status_error(status, &body));
        }
        Self::policy_from(&headers, &body)
    }

    /// `POST …/acl/validate` with a candidate policy.
    pub async fn validate(&self, policy: &Value) -> Result<Validation, ApiError> {
        let http = self.http()?;
        let (status, _, body) = self
            .send(
                http.post(self.acl_url("/validate"))
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(policy.to_string()),
            )
            .await?;
        // Tailscale answers 200 even for an invalid policy; a 400 with a
        // message is read the same way.
        if status != 200 && status != 400 {
            return Err(Self::status_error(status, &body));
        }
        // 200 with an empty object (or no `message`) means valid.
        let v = serde_json::from_str::<Value>(&body).unwrap_or(Value::Null);
        match v.get("message").and_then(Value::as_str) {
            Some(m) if !m.is_empty() => Ok(Validation::Failed {
                message: m.to_string(),
                data: v.get("data").cloned().filter(|d| !d.is_null()),
            }),
            _ if status == 400 => Ok(Validation::Failed {
                message: message_of(&body).0,
                data: None,
            }),
            _ => Ok(Validation::Ok),
        }
    }

    /// `POST …/acl` with `If-Match`. `body` is HuJSON or JSON text.
    pub async fn set_policy(
        &self,
        body: String,
        content_type: &str,
        if_match: &str,
    ) -> Result<Policy, ApiError> {
        let http = self.http()?;
        let mut req = http
            .post(self.acl_url(""))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body);
        if !if_match.is_empty() {
            req = req.header(reqwest::header::IF_MATCH, if_match);
        }
        let (status, headers, text) = self.send(req).await?;
        if !(200..300).contains(&status) {
            return Err(Self::status_error(status, &text));
        }
        // The write succeeded: an unreadable answer must not turn it into a
        // failure. `Null` tells the caller to record what it sent.
        Ok(
            Self::policy_from(&headers, &text).unwrap_or_else(|_| Policy {
                value: Value::Null,
                etag: headers
                    .get(reqwest::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string(),
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped() {
        assert_eq!(segment("example.com"), "example.com");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(segment("-"), "-");
    }

    #[test]
    fn messages_are_extracted() {
        let (m, d) = message_of(r#"{"message":"test(s) failed","data":[{"user":"u"}]}"#);
        assert_eq!(m, "test(s) failed");
        assert!(d.is_some());
        assert_eq!(message_of("<html>oops</html>").0, "<html>oops</html>");
    }
}
