//! claw-docker: the Docker provider of claw (`docker_image`, `docker_container`,
//! `docker_network`, `docker_volume`) over the Docker Engine API (bollard).
//!
//! Invariants:
//! - **Lazy, single connection**: `configure` never connects; the first call
//!   that needs the Engine connects, negotiates the API version and keeps the
//!   client (or the error) for every later call.
//! - **Refresh is O(1) in API calls for a converged stack**: one list per kind
//!   filtered by the stack label, one image list by reference; inspects only for
//!   objects whose id differs from the state (or that are not in the state), and
//!   one list by name for configured objects not found by label.
//! - **Ownership**: only objects carrying `claw.dev/stack=<stack>` (or adopted
//!   with `claw import`, recorded in the state by id) are ever updated or deleted.
//! - Secret values (container `env`) are sent to the Engine and nowhere else;
//!   live values are compared as salted hashes.

// `Diagnostic` (the SDK's error type at the provider boundary) is large by design.
#![allow(clippy::result_large_err)]

mod apply;
mod client;
mod context;
mod diff;
mod docker_container;
mod docker_image;
mod docker_network;
mod docker_volume;
mod identity;
mod refresh;
mod shapes;
mod util;

use async_trait::async_trait;
use claw_provider::{
    ApplyRequest, ApplyResponse, ConfigureRequest, Diagnostic, DiffRequest, DiffResponse,
    IdentityRequest, IdentityResponse, ImplicitDepsRequest, ImplicitDepsResponse, ImportRequest,
    ImportResponse, PrepareRequest, PrepareResponse, Provider, ProviderFactory, RefreshRequest,
    RefreshResponse, ResourceType, Shape, ValidateRequest, ValidateResponse, Value,
};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

pub use client::MIN_API;

pub const CONTAINER: &str = "docker_container";
pub const IMAGE: &str = "docker_image";
pub const NETWORK: &str = "docker_network";
pub const VOLUME: &str = "docker_volume";

/// The label on built images holding the build context's content hash.
pub const LABEL_CONTEXT_HASH: &str = "claw.dev/context-hash";

/// The factory registered in the `claw` crate.
pub fn factory() -> Arc<dyn ProviderFactory> {
    Arc::new(DockerFactory)
}

pub struct DockerFactory;

#[async_trait]
impl ProviderFactory for DockerFactory {
    fn kind(&self) -> &'static str {
        "docker"
    }

    fn resource_types(&self) -> Vec<ResourceType> {
        vec![
            ResourceType {
                name: IMAGE,
                description:
                    "A Docker image, built from a context folder or pulled from a registry",
                shape: Shape::of::<shapes::Image>(),
                computed: &["id"],
            },
            ResourceType {
                name: CONTAINER,
                description: "A Docker container, labelled for the stack",
                shape: Shape::of::<shapes::Container>(),
                computed: &["id"],
            },
            ResourceType {
                name: NETWORK,
                description: "A Docker network, labelled for the stack",
                shape: Shape::of::<shapes::Network>(),
                computed: &["id"],
            },
            ResourceType {
                name: VOLUME,
                description: "A Docker volume, labelled for the stack",
                shape: Shape::of::<shapes::Volume>(),
                computed: &["id"],
            },
        ]
    }

    fn config_shape(&self) -> Shape {
        Shape::of::<shapes::ProviderConfig>()
    }

    fn configure(&self, req: ConfigureRequest) -> Result<Arc<dyn Provider>, Diagnostic> {
        let host = match req.attrs.get("host") {
            None | Some(Value::Null) => None,
            Some(Value::String(h)) if !h.is_empty() => Some(h.clone()),
            Some(_) => {
                return Err(Diagnostic::error(format!(
                    "provider.{}: `host` must be a non-empty string such as unix:///var/run/docker.sock",
                    req.alias
                ))
                .with_attr("host"))
            }
        };
        Ok(Arc::new(DockerProvider::new(host)))
    }
}

/// What refresh learned about images, used by container diffs of the same run.
#[derive(Default)]
pub(crate) struct ImageKnowledge {
    /// Normalized `repo:tag` → image id, for every image reference in the run.
    pub ids: HashMap<String, String>,
    /// Normalized names of `docker_image` instances that this run builds or
    /// pulls (missing or changed): containers using them get a new image.
    pub pending: HashSet<String>,
}

/// One configured `[provider.x]` of type docker.
pub struct DockerProvider {
    pub(crate) client: client::Client,
    pub(crate) images: Mutex<ImageKnowledge>,
}

impl DockerProvider {
    pub fn new(host: Option<String>) -> DockerProvider {
        DockerProvider {
            client: client::Client::new(host),
            images: Mutex::new(ImageKnowledge::default()),
        }
    }

    /// The number of Engine API calls made so far.
    pub fn api_calls(&self) -> u64 {
        self.client.calls()
    }
}

/// `d`, naming `address` unless it already names one.
fn with_address(d: Diagnostic, address: String) -> Diagnostic {
    if d.address.is_none() {
        d.with_address(address)
    } else {
        d
    }
}

#[async_trait]
impl Provider for DockerProvider {
    fn validate(&self, req: ValidateRequest<'_>) -> ValidateResponse {
        ValidateResponse {
            diagnostics: diff::validate(&req),
        }
    }

    fn prepare(&self, req: PrepareRequest<'_>) -> PrepareResponse {
        diff::prepare(&req).unwrap_or_else(PrepareResponse::failed)
    }

    fn implicit_deps(&self, req: ImplicitDepsRequest) -> ImplicitDepsResponse {
        ImplicitDepsResponse {
            edges: diff::implicit_deps(&req.items),
            diagnostics: Vec::new(),
        }
    }

    async fn refresh(&self, req: RefreshRequest) -> RefreshResponse {
        refresh::refresh(self, req).await
    }

    async fn diff(&self, req: DiffRequest) -> DiffResponse {
        diff::diff(self, &req)
    }

    async fn apply(&self, req: ApplyRequest) -> ApplyResponse {
        let address = req.address.clone();
        apply::apply(self, req)
            .await
            .map_err(|d| with_address(d, address))
            .into()
    }

    async fn import(&self, req: ImportRequest) -> ImportResponse {
        let address = req.address.clone();
        apply::import(self, req)
            .await
            .map_err(|d| with_address(d, address))
            .into()
    }

    fn identities(&self, req: IdentityRequest) -> IdentityResponse {
        identity::identities(&self.client.endpoint().0, req.items)
    }

    fn counters(&self) -> Vec<(String, u64)> {
        vec![("docker api calls".to_string(), self.client.calls())]
    }
}
