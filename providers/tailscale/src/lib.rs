//! claw's Tailscale provider: the tailnet's ACL policy file as code.
//!
//! One resource type, `tailscale_acl`: the policy from a HuJSON file
//! (`policy_file`) or an inline table (`policy`).
//!
//! - **prepare** reads and parses the policy (HuJSON: comments and trailing
//!   commas only; errors name `file:line:column`) and turns it into the
//!   standardized text (sorted keys, two-space JSON) that the plan shows, so
//!   comments and formatting alone are never a change and a real change shows
//!   as a readable unified diff of two documents formatted the same way.
//! - **refresh** makes one `GET …/acl` per provider alias; the live object's
//!   fingerprint is the policy's `ETag`.
//! - **diff** compares standardized texts and, when they differ, validates the
//!   candidate with `POST …/acl/validate`: syntax errors and failing
//!   `tests`/`sshTests` are plan errors quoting the failing tests. A tailnet
//!   whose policy is not the default one and that claw has no state for must
//!   be adopted with `claw import` first (a plan error with that hint).
//! - **apply** posts the policy with `If-Match` set to the ETag seen at plan
//!   time (saved in the plan file): an edit made in between fails with "policy
//!   changed since plan" and nothing is overwritten. Delete only forgets,
//!   unless `reset_on_destroy = true` (then the default policy is restored,
//!   under the same precondition).
//!
//! Invariant: **credentials never leave the `Authorization` header** — they are
//! [`Secret`]s, not printed, logged, or put in attributes.

// The SDK's `Diagnostic` is the error type of every provider call.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod hujson;
mod tailscale_acl;

pub use tailscale_acl::{is_default_policy, AclConfig};

use api::{ApiError, Client, Credentials};
use async_trait::async_trait;
use claw_provider::{
    ApplyRequest, ApplyResponse, Attrs, ConfigureRequest, Ctx, Diagnostic, DiffRequest,
    DiffResponse, ImportRequest, ImportResponse, PrepareRequest, PrepareResponse, Provider,
    ProviderFactory, RefreshRequest, RefreshResponse, ResourceType, Secret, Shape, ValidateRequest,
    ValidateResponse, Value,
};
use schemars::JsonSchema;
use serde::Deserialize;
use std::sync::Arc;

/// The resource type this provider offers.
pub const ACL: &str = "tailscale_acl";
/// Where the API lives unless `base_url` says otherwise.
pub const DEFAULT_BASE_URL: &str = "https://api.tailscale.com";
/// The policy a new tailnet starts with; what `reset_on_destroy` restores.
pub const DEFAULT_POLICY: &str = include_str!("default_policy.hujson");

/// `{ env = "NAME" }`, `{ file = "path" }` or a literal string.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SecretInput {
    Literal(String),
    Ref(SecretRef),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// Read from this environment variable.
    pub env: Option<String>,
    /// Read from this file (relative to claw.toml).
    pub file: Option<String>,
}

/// `[provider.<alias>]` with `type = "tailscale"`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TailscaleConfig {
    /// The tailnet's name (as in the admin console's Settings), or `-` for the
    /// credentials' own tailnet. Default: `TAILSCALE_TAILNET`, else `-`.
    pub tailnet: Option<String>,
    /// An API access token. Default: the `TAILSCALE_API_KEY` environment variable.
    pub api_key: Option<SecretInput>,
    /// An OAuth client id (used with `oauth_client_secret` instead of `api_key`;
    /// the client needs the `policy_file` scope). Default: `TAILSCALE_OAUTH_CLIENT_ID`.
    pub oauth_client_id: Option<SecretInput>,
    /// The OAuth client's secret. Default: `TAILSCALE_OAUTH_CLIENT_SECRET`.
    pub oauth_client_secret: Option<SecretInput>,
    /// The API's base URL. Default: `TAILSCALE_BASE_URL`, else `https://api.tailscale.com`.
    pub base_url: Option<String>,
}

/// The provider factory registered in the `claw` crate.
pub fn factory() -> Arc<dyn ProviderFactory> {
    Arc::new(TailscaleFactory)
}

pub struct TailscaleFactory;

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A credential attribute as a [`Secret`] (plain strings are wrapped too).
fn secret_attr(attrs: &Attrs, key: &str, ctx: &Ctx) -> Option<Secret> {
    match attrs.get(key)? {
        Value::Secret(s) => Some(s.clone()),
        Value::String(s) => Some(Secret::new(s.as_str(), &ctx.salt)),
        _ => None,
    }
}

#[async_trait]
impl ProviderFactory for TailscaleFactory {
    fn kind(&self) -> &'static str {
        "tailscale"
    }

    fn resource_types(&self) -> Vec<ResourceType> {
        vec![ResourceType {
            name: ACL,
            description: "The tailnet's ACL policy file (HuJSON), validated at plan time and applied under the ETag seen at plan time",
            shape: Shape::of::<AclConfig>(),
            computed: &["id"],
        }]
    }

    fn config_shape(&self) -> Shape {
        Shape::of::<TailscaleConfig>()
    }

    fn configure(&self, req: ConfigureRequest) -> Result<Arc<dyn Provider>, Diagnostic> {
        let alias = req.alias.clone();
        let where_ = format!("[provider.{alias}]");
        let tailnet = match req.attrs.get("tailnet") {
            Some(v) => v.expose_str().map(str::to_string).ok_or_else(|| {
                Diagnostic::error(format!("{where_}: tailnet must be a string"))
                    .with_attr("tailnet")
            })?,
            None => env_nonempty("TAILSCALE_TAILNET").unwrap_or_else(|| "-".into()),
        };
        if tailnet.is_empty() {
            return Err(Diagnostic::error(format!("{where_}: tailnet is empty"))
                .with_attr("tailnet")
                .with_hint("use \"-\" for the API key's own tailnet"));
        }
        let base_url = match req.attrs.get("base_url") {
            Some(v) => v.expose_str().map(str::to_string).unwrap_or_default(),
            None => env_nonempty("TAILSCALE_BASE_URL").unwrap_or_else(|| DEFAULT_BASE_URL.into()),
        };
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(Diagnostic::error(format!(
                "{where_}: base_url {base_url:?} is not an http(s) URL"
            ))
            .with_attr("base_url")
            .with_hint(format!("the default is {DEFAULT_BASE_URL}")));
        }
        let ctx = &req.ctx;
        let api_key = secret_attr(&req.attrs, "api_key", ctx);
        let client_id = req
            .attrs
            .get("oauth_client_id")
            .and_then(Value::expose_str)
            .map(str::to_string);
        let client_secret = secret_attr(&req.attrs, "oauth_client_secret", ctx);
        let creds = match (api_key, client_id, client_secret) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(Diagnostic::error(format!(
                    "{where_}: both api_key and an OAuth client are set"
                ))
                .with_hint("keep either api_key or oauth_client_id + oauth_client_secret"))
            }
            (Some(k), None, None) => Credentials::ApiKey(k),
            (None, Some(id), Some(secret)) => Credentials::OAuth {
                client_id: id,
                client_secret: secret,
            },
            (None, Some(_), None) | (None, None, Some(_)) => {
                return Err(Diagnostic::error(format!(
                    "{where_}: an OAuth client needs both oauth_client_id and oauth_client_secret"
                ))
                .with_hint("oauth_client_secret = { env = \"TAILSCALE_OAUTH_CLIENT_SECRET\" }"))
            }
            (None, None, None) => {
                if let Some(k) = env_nonempty("TAILSCALE_API_KEY") {
                    Credentials::ApiKey(Secret::new(k, &ctx.salt))
                } else if let (Some(id), Some(secret)) = (
                    env_nonempty("TAILSCALE_OAUTH_CLIENT_ID"),
                    env_nonempty("TAILSCALE_OAUTH_CLIENT_SECRET"),
                ) {
                    Credentials::OAuth {
                        client_id: id,
                        client_secret: Secret::new(secret, &ctx.salt),
                    }
                } else {
                    // Reported by the first call that needs the API, so that
                    // `claw validate` works without credentials.
                    Credentials::Missing
                }
            }
        };
        Ok(Arc::new(TailscaleProvider {
            alias,
            client: Client::new(&base_url, &tailnet, creds),
        }))
    }
}

/// One configured `[provider.x]` of type tailscale.
pub struct TailscaleProvider {
    alias: String,
    client: Client,
}

impl TailscaleProvider {
    fn api_diag(&self, e: ApiError, doing: &str) -> Diagnostic {
        let alias = &self.alias;
        let tailnet = self.client.tailnet();
        match e {
            ApiError::Transport(m) => Diagnostic::error(format!(
                "cannot {doing}: the Tailscale API at {} did not answer: {m}",
                self.client.base_url()
            ))
            .with_hint(format!(
                "check base_url in [provider.{alias}] and the network connection"
            )),
            ApiError::NoCredentials => Diagnostic::error(format!(
                "cannot {doing}: provider {alias} has no Tailscale credentials"
            ))
            .with_hint(format!(
                "set api_key = {{ env = \"TAILSCALE_API_KEY\" }} (an API access token), or oauth_client_id and oauth_client_secret, in [provider.{alias}]"
            )),
            ApiError::Status {
                status,
                message,
                oauth: true,
                ..
            } => Diagnostic::error(format!(
                "cannot {doing}: Tailscale's OAuth token endpoint refused the client credentials of provider {alias} ({status}: {message})"
            ))
            .with_hint("check oauth_client_id and oauth_client_secret; the OAuth client needs the policy_file scope"),
            ApiError::Status {
                status: 401,
                message,
                ..
            } => {
                let hint = if self.client.uses_oauth() {
                    "the OAuth access token was refused; check the OAuth client in the admin console (Settings → OAuth clients)".to_string()
                } else {
                    format!("the API access token is invalid or expired: create one in the admin console (Settings → Keys) and set it in [provider.{alias}] api_key (e.g. export TAILSCALE_API_KEY)")
                };
                Diagnostic::error(format!(
                    "cannot {doing}: Tailscale API authentication failed for tailnet {tailnet:?} (401: {message})"
                ))
                .with_hint(hint)
            }
            ApiError::Status {
                status: 403,
                message,
                ..
            } => Diagnostic::error(format!(
                "cannot {doing}: not allowed on tailnet {tailnet:?} (403: {message})"
            ))
            .with_hint("an OAuth client needs the policy_file scope; an API key's owner needs the Admin, Network admin or IT admin role"),
            ApiError::Status {
                status: 404,
                message,
                ..
            } => Diagnostic::error(format!(
                "cannot {doing}: tailnet {tailnet:?} not found (404: {message})"
            ))
            .with_hint(format!(
                "set tailnet = \"-\" in [provider.{alias}] for the credentials' own tailnet, or the name shown in the admin console's Settings"
            )),
            ApiError::Status {
                status, message, ..
            } => Diagnostic::error(format!(
                "cannot {doing}: the Tailscale API answered {status}: {message}"
            )),
            ApiError::BadResponse(m) => Diagnostic::error(format!(
                "cannot {doing}: unexpected answer from the Tailscale API: {m}"
            )),
        }
    }

    fn import_hint(&self, address: &str) -> String {
        format!("claw import {address} {}", self.client.tailnet())
    }
}

#[async_trait]
impl Provider for TailscaleProvider {
    fn validate(&self, req: ValidateRequest<'_>) -> ValidateResponse {
        self.validate_acl(&req)
    }

    fn prepare(&self, req: PrepareRequest<'_>) -> PrepareResponse {
        self.prepare_acl(&req)
    }

    async fn refresh(&self, req: RefreshRequest) -> RefreshResponse {
        self.refresh_acl(req).await
    }

    async fn diff(&self, req: DiffRequest) -> DiffResponse {
        self.diff_acl(req).await
    }

    async fn apply(&self, req: ApplyRequest) -> ApplyResponse {
        self.apply_policy(req).await.into()
    }

    async fn import(&self, req: ImportRequest) -> ImportResponse {
        self.import_policy(req).await.into()
    }

    fn counters(&self) -> Vec<(String, u64)> {
        vec![("tailscale api calls".into(), self.client.calls())]
    }
}
