//! What object each Docker address claims (SPEC §1.1a): a container,
//! network or volume name on one Engine endpoint. Two addresses naming one
//! (`name = "x"` beside a resource whose default name is `x`) are refused
//! by the engine before planning, naming both.

use crate::{CONTAINER, NETWORK, VOLUME};
use claw_provider::{IdentityItem, IdentityResponse};

/// The identities of `items` on the Engine at `endpoint`. Images are left
/// out: two `docker_image` resources may share a base tag.
pub fn identities(endpoint: &str, items: Vec<IdentityItem>) -> IdentityResponse {
    let mut out = IdentityResponse::default();
    for it in items {
        let kind = match it.rtype {
            CONTAINER => "container",
            NETWORK => "network",
            VOLUME => "volume",
            _ => continue,
        };
        // `prepare` fills the default name; an unknown one names nothing.
        if let Some(name) = crate::util::s(it.attrs, "name") {
            let name = name.trim_start_matches('/');
            out.identities.push((
                it.address.to_string(),
                format!("{}:{kind} {name} on {endpoint}", it.rtype),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use claw_provider::{Attrs, Value};

    fn item(address: &'static str, rtype: &'static str, name: &str) -> IdentityItem<'static> {
        let mut attrs = Attrs::new();
        attrs.insert("name".into(), Value::from(name));
        IdentityItem {
            address,
            rtype,
            attrs: Box::leak(Box::new(attrs)),
        }
    }

    #[test]
    fn containers_networks_and_volumes_are_named_per_kind_and_endpoint() {
        let r = identities(
            "unix:///var/run/docker.sock",
            vec![
                item("docker_container.a", CONTAINER, "app"),
                item("docker_network.a", NETWORK, "app"),
                item("docker_volume.a", VOLUME, "app"),
                item("docker_image.a", crate::IMAGE, "app:1"),
            ],
        );
        let ids: Vec<&str> = r.identities.iter().map(|(_, i)| i.as_str()).collect();
        assert_eq!(
            ids,
            [
                "docker_container:container app on unix:///var/run/docker.sock",
                "docker_network:network app on unix:///var/run/docker.sock",
                "docker_volume:volume app on unix:///var/run/docker.sock",
            ]
        );
    }
}
