//! The configuration shapes (`[provider.x]` and the four resource types),
//! checked by the engine before interpolation and exported as JSON Schema.

use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[provider.docker]`
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ProviderConfig {
    /// The Engine endpoint: `unix:///var/run/docker.sock` or `tcp://host:2375`.
    /// Default: DOCKER_HOST, then the platform default socket.
    pub host: Option<String>,
}

/// A secret read from the environment.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct EnvRef {
    pub env: String,
}

/// A secret read from a file.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct FileRef {
    pub file: String,
}

/// An environment value: a literal or a sensitive `{ env = "..." }` / `{ file = "..." }`.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum EnvValue {
    String(String),
    Int(i64),
    Bool(bool),
    Env(EnvRef),
    File(FileRef),
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum MountType {
    Volume,
    Bind,
}

/// One mount: `{ type = "volume", source = "data", target = "/data", read_only = false }`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: MountType,
    /// The volume name, or the host path of a bind mount (relative to claw.toml).
    pub source: String,
    /// The absolute path inside the container.
    pub target: String,
    #[serde(default)]
    pub read_only: Option<bool>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum RunState {
    Running,
    Stopped,
}

/// `[docker_container.x]`
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Container {
    /// Default: `<stack>-<resource name>` (`<stack>-<resource name>-<key>` with for_each).
    pub name: Option<String>,
    /// `repo:tag`, a `docker_image`'s name, or an image id.
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Option<BTreeMap<String, EnvValue>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub mounts: Option<Vec<Mount>>,
    /// Docker's short syntax: `"8080:80"`, `"127.0.0.1:9000:9000/udp"`.
    pub ports: Option<Vec<String>>,
    /// Network names; the first is joined at create, the others right after.
    pub networks: Option<Vec<String>>,
    /// `no`, `always`, `unless-stopped`, `on-failure` or `on-failure:N` (changed in place).
    pub restart: Option<String>,
    /// `running` (default) or `stopped` (changed in place).
    pub state: Option<RunState>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub hostname: Option<String>,
    /// Run an init process (docker-init) as PID 1 (`docker run --init`).
    pub init: Option<bool>,
    /// Seconds between SIGTERM and SIGKILL on stop; when set, delete stops
    /// the container gracefully first (default: delete kills at once, like `docker rm -f`).
    pub stop_timeout: Option<i64>,
    /// Memory limit in Docker's units (`"512m"`, `"2g"`, or bytes); changed in place.
    pub memory: Option<Size>,
    /// Memory plus swap (`"1g"`; `"-1"`: unlimited swap); changed in place.
    pub memory_swap: Option<Size>,
    /// CPUs (`"0.5"`, `2`); changed in place.
    pub cpus: Option<Cpus>,
    /// The most processes the container may run (`-1`: unlimited); changed in place.
    pub pids_limit: Option<i64>,
    /// The size of `/dev/shm` (`"2g"`; Docker's default is 64m).
    pub shm_size: Option<Size>,
    /// Capabilities added (`"NET_ADMIN"`, with or without `CAP_`).
    pub cap_add: Option<Vec<String>>,
    /// Capabilities dropped (`"ALL"`, `"NET_RAW"`, ...).
    pub cap_drop: Option<Vec<String>>,
    pub privileged: Option<bool>,
    /// Mount the container's root file system read-only.
    pub read_only: Option<bool>,
    /// `"no-new-privileges"`, `"seccomp=unconfined"`, `"apparmor=PROFILE"`, ...
    pub security_opt: Option<Vec<String>>,
    /// tmpfs mounts: `{ "/tmp" = "rw,size=64m" }` (options may be empty).
    pub tmpfs: Option<BTreeMap<String, String>>,
    pub healthcheck: Option<Healthcheck>,
    /// `"healthy"`: apply returns once Docker reports the container healthy.
    pub wait: Option<String>,
    /// How long apply waits for `wait` (default `"5m"`).
    pub wait_timeout: Option<String>,
}

/// A size in Docker's units: `"512m"`, `"2g"`, `"1.5g"`, or a number of bytes.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum Size {
    Text(String),
    Bytes(i64),
}

/// A number of CPUs: `"0.5"`, `0.5` or `2`.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum Cpus {
    Text(String),
    Number(f64),
}

/// `healthcheck = { test = ["CMD", "true"], interval = "5s", timeout = "3s", retries = 3, start_period = "10s" }`
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Healthcheck {
    /// `["CMD", "prog", "arg"]`, `["CMD-SHELL", "curl -f http://localhost/"]` or `["NONE"]`.
    pub test: Vec<String>,
    /// Time between checks (`"30s"`, `"1m"`; Docker's default 30s).
    pub interval: Option<String>,
    /// How long one check may take (default 30s).
    pub timeout: Option<String>,
    /// Consecutive failures before `unhealthy` (default 3).
    pub retries: Option<i64>,
    /// Start-up time during which failures do not count (default 0s).
    pub start_period: Option<String>,
}

/// `build = { context = "dir", dockerfile = "Dockerfile", args = { K = "v" } }`
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Build {
    /// The build context folder (relative to claw.toml).
    pub context: String,
    /// Path of the Dockerfile inside the context (default `Dockerfile`).
    pub dockerfile: Option<String>,
    pub args: Option<BTreeMap<String, String>>,
    /// The stage to build (`docker build --target`).
    pub target: Option<String>,
}

/// `[docker_image.x]`
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Image {
    /// `repo:tag`.
    pub name: String,
    pub build: Option<Build>,
    /// Pull the image from its registry when it is missing locally.
    pub pull: Option<bool>,
}

/// `[docker_network.x]`
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Network {
    pub name: Option<String>,
    /// Default `bridge`.
    pub driver: Option<String>,
    pub internal: Option<bool>,
    pub attachable: Option<bool>,
    pub labels: Option<BTreeMap<String, String>>,
    /// Driver options (`com.docker.network.bridge.name`, ...).
    pub options: Option<BTreeMap<String, String>>,
}

/// `[docker_volume.x]`
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Volume {
    pub name: Option<String>,
    /// Default `local`.
    pub driver: Option<String>,
    pub driver_opts: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
}
