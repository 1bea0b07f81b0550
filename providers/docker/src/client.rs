//! The lazily made, shared connection to the Docker Engine, its call counter,
//! and the translation of bollard errors into diagnostics a user can act on.

use bollard::errors::Error as BollardError;
use bollard::Docker;
use claw_provider::Diagnostic;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::OnceCell;

/// The oldest Engine API claw speaks (Docker Engine 20.10, Debian 12's `docker.io`).
pub const MIN_API: (usize, usize) = (1, 41);

/// The default endpoint when neither the provider's `host` nor `DOCKER_HOST` is set.
#[cfg(unix)]
pub const PLATFORM_DEFAULT: &str = "unix:///var/run/docker.sock";
#[cfg(windows)]
pub const PLATFORM_DEFAULT: &str = "npipe:////./pipe/docker_engine";

/// Seconds bollard waits for one request (builds and pulls included).
const TIMEOUT_SECS: u64 = 600;

/// One connection per provider alias, made on first use and then reused.
pub struct Client {
    /// The configured `host` (None: DOCKER_HOST, then the platform default).
    host: Option<String>,
    cell: OnceCell<Result<Docker, Diagnostic>>,
    calls: AtomicU64,
}

impl Client {
    pub fn new(host: Option<String>) -> Client {
        Client {
            host,
            cell: OnceCell::new(),
            calls: AtomicU64::new(0),
        }
    }

    /// The endpoint this client talks to, and where that choice came from.
    pub fn endpoint(&self) -> (String, &'static str) {
        if let Some(h) = &self.host {
            return (h.clone(), "the provider's `host`");
        }
        match std::env::var("DOCKER_HOST") {
            Ok(h) if !h.is_empty() => (h, "DOCKER_HOST"),
            _ => (PLATFORM_DEFAULT.to_string(), "the platform default"),
        }
    }

    /// Counts one API call (every request to the Engine goes through here).
    pub fn count(&self, n: u64) {
        self.calls.fetch_add(n, Ordering::Relaxed);
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The connected, version-negotiated client (connects once; a failure is
    /// remembered and returned to every later caller).
    pub async fn docker(&self) -> Result<Docker, Diagnostic> {
        let r = self.cell.get_or_init(|| self.connect()).await;
        r.clone()
    }

    async fn connect(&self) -> Result<Docker, Diagnostic> {
        let (endpoint, source) = self.endpoint();
        let docker = open(&endpoint).map_err(|e| {
            connect_error(&endpoint, source, &e)
                .unwrap_or_else(|| Diagnostic::error(format!("cannot use the Docker endpoint {endpoint} (from {source}): {e}")).with_hint(
                    "set the provider's `host` (or DOCKER_HOST) to unix:///path/to/docker.sock or tcp://host:port",
                ))
        })?;
        self.count(1);
        let docker = docker.negotiate_version().await.map_err(|e| {
            connect_error(&endpoint, source, &e).unwrap_or_else(|| {
                Diagnostic::error(format!(
                    "the Docker daemon at {endpoint} (from {source}) did not answer its version: {e}"
                ))
                .with_hint("check that the endpoint is a Docker Engine API (`docker version` with the same DOCKER_HOST)")
            })
        })?;
        let v = docker.client_version();
        let (major, minor) = (v.major_version, v.minor_version);
        if (major, minor) < MIN_API {
            return Err(too_old(&endpoint, major, minor));
        }
        Ok(docker)
    }
}

fn open(endpoint: &str) -> Result<Docker, BollardError> {
    #[cfg(unix)]
    if endpoint.starts_with("unix://") {
        return Docker::connect_with_unix(endpoint, TIMEOUT_SECS, bollard::API_DEFAULT_VERSION);
    }
    if let Some(rest) = endpoint.strip_prefix("tcp://") {
        if std::env::var("DOCKER_TLS_VERIFY")
            .map(|v| !v.is_empty())
            .unwrap_or(false)
        {
            return Err(BollardError::UnsupportedURISchemeError {
                uri: format!("{endpoint} with DOCKER_TLS_VERIFY"),
            });
        }
        return Docker::connect_with_http(
            &format!("http://{rest}"),
            TIMEOUT_SECS,
            bollard::API_DEFAULT_VERSION,
        );
    }
    if endpoint.starts_with("http://") {
        return Docker::connect_with_http(endpoint, TIMEOUT_SECS, bollard::API_DEFAULT_VERSION);
    }
    Docker::connect_with_host(endpoint)
}

/// The diagnostic for an Engine whose API is older than [`MIN_API`].
pub fn too_old(endpoint: &str, major: usize, minor: usize) -> Diagnostic {
    Diagnostic::error(format!(
        "the Docker daemon at {endpoint} speaks Engine API {major}.{minor}, older than the {}.{} claw needs",
        MIN_API.0, MIN_API.1
    ))
    .with_hint("upgrade Docker Engine to 20.10 or newer (Debian 12's `docker.io` is recent enough)")
}

/// Recognises the errors of reaching the daemon (socket missing, refused,
/// permission denied, unsupported scheme); `None` for anything else.
pub fn connect_error(endpoint: &str, source: &str, e: &BollardError) -> Option<Diagnostic> {
    if let BollardError::SocketNotFoundError(path) = e {
        return Some(unreachable(
            endpoint,
            source,
            &format!("no socket at {path}"),
        ));
    }
    if let BollardError::UnsupportedURISchemeError { uri } = e {
        return Some(
            Diagnostic::error(format!("unsupported Docker endpoint {uri} (from {source})"))
                .with_hint("claw speaks to Docker over unix:// sockets and plain tcp:// (http); for a TLS or ssh endpoint, forward it to a local socket (e.g. `ssh -L /tmp/docker.sock:/var/run/docker.sock host`) and point `host` at it"),
        );
    }
    let kind = match e {
        BollardError::IOError { err } => Some(err.kind()),
        other => io_kind(other),
    };
    match kind {
        Some(std::io::ErrorKind::PermissionDenied) => Some(permission_denied(endpoint, source)),
        Some(
            std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::NotFound
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::AddrNotAvailable,
        ) => Some(unreachable(endpoint, source, &e.to_string())),
        _ => None,
    }
}

pub fn unreachable(endpoint: &str, source: &str, why: &str) -> Diagnostic {
    Diagnostic::error(format!(
        "cannot reach the Docker daemon at {endpoint} (from {source})"
    ))
    .with_detail(why.to_string())
    .with_hint("start the daemon (`sudo systemctl start docker`, or `dockerd &`), or point the provider's `host` / DOCKER_HOST at a running one")
}

pub fn permission_denied(endpoint: &str, source: &str) -> Diagnostic {
    Diagnostic::error(format!(
        "permission denied on the Docker socket {endpoint} (from {source})"
    ))
    .with_hint("add your user to the `docker` group (`sudo usermod -aG docker $USER`, then log in again), or run claw as a user that may use the socket")
}

/// The io::ErrorKind somewhere in the error's source chain.
fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = err.source();
    }
    None
}

/// The HTTP status of an Engine error answer, if it is one.
pub fn status(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

pub fn is_not_found(e: &BollardError) -> bool {
    status(e) == Some(404)
}

/// A diagnostic for a failed API call: `what` says what was being done.
pub fn api_error(what: &str, e: &BollardError) -> Diagnostic {
    if let Some(d) = connect_error("the Docker daemon", "the provider", e) {
        return d.with_detail(format!("while trying to {what}"));
    }
    let msg = match e {
        BollardError::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    };
    let d = Diagnostic::error(format!("failed to {what}: {msg}"));
    if msg.contains("is already in use") || msg.contains("already exists") {
        return d.with_hint("another object already has this name: remove or rename it, choose another `name`, or adopt it with `claw import`");
    }
    if msg.contains("in use") || msg.contains("active endpoints") || msg.contains("being used") {
        return d.with_hint("it is still used by another object (a container on the network, mounting the volume or running the image): remove that first");
    }
    match status(e) {
        Some(404) if msg.contains("No such image") => d.with_hint(
            "build or pull the image first (a `docker_image` resource with `build` or `pull = true`), or fix `image`",
        ),
        Some(404) if msg.contains("network") => {
            d.with_hint("declare the network as a `docker_network` resource or create it first")
        }
        _ => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_in_the_chain_are_classified() {
        let e = BollardError::IOError {
            err: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
        };
        let d = connect_error("unix:///x.sock", "DOCKER_HOST", &e).unwrap();
        assert!(d.summary.contains("permission denied"), "{d}");
        assert!(d.hint.unwrap().contains("docker` group"));
        let e = BollardError::IOError {
            err: std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"),
        };
        let d = connect_error("unix:///x.sock", "DOCKER_HOST", &e).unwrap();
        assert!(d.summary.contains("cannot reach"), "{d}");
        let e = BollardError::DockerResponseServerError {
            status_code: 500,
            message: "boom".into(),
        };
        assert!(connect_error("x", "y", &e).is_none());
    }

    #[test]
    fn too_old_names_both_versions() {
        let d = too_old("unix:///s", 1, 24);
        assert!(
            d.summary.contains("1.24") && d.summary.contains("1.41"),
            "{d}"
        );
        assert!(d.hint.is_some());
    }
}
