//! `tailscale-api-double`: runs the Tailscale policy-file API double until killed.
//!
//! ```text
//! tailscale-api-double [--listen 127.0.0.1:0] [--tailnet example.com]
//!                      [--api-key KEY]... [--oauth-client ID:SECRET]...
//! ```
//! Without `--api-key`, the key is read from `TAILSCALE_API_KEY`, else the
//! built-in test key is accepted. Prints `listening on http://ADDR` once ready.

use tailscale_api_double::{router_for, Config};

fn usage() -> ! {
    eprintln!(
        "usage: tailscale-api-double [--listen ADDR] [--tailnet NAME] [--api-key KEY]... [--oauth-client ID:SECRET]..."
    );
    std::process::exit(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut cfg = Config::default();
    let mut keys = Vec::new();
    let mut clients = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--listen" => cfg.listen = val().parse().unwrap_or_else(|_| usage()),
            "--tailnet" => cfg.tailnet = val(),
            "--api-key" => keys.push(val()),
            "--oauth-client" => {
                let v = val();
                let (id, secret) = v.split_once(':').unwrap_or_else(|| usage());
                clients.push((id.to_string(), secret.to_string()));
            }
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    if keys.is_empty() {
        if let Ok(k) = std::env::var("TAILSCALE_API_KEY") {
            keys.push(k);
        }
    }
    if !keys.is_empty() {
        cfg.api_keys = keys;
    }
    if !clients.is_empty() {
        cfg.oauth_clients = clients;
    }
    let listener = match tokio::net::TcpListener::bind(cfg.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tailscale-api-double: cannot listen on {}: {e}", cfg.listen);
            std::process::exit(1)
        }
    };
    let addr = listener.local_addr().expect("local address");
    println!("listening on http://{addr}");
    if let Err(e) = axum::serve(listener, router_for(cfg)).await {
        eprintln!("tailscale-api-double: {e}");
        std::process::exit(1)
    }
}
