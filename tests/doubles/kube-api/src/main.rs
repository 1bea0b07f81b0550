//! `kube-api-double [--listen 127.0.0.1:8001] [--kubeconfig FILE] [--namespace NS] [--tls]`:
//! serves the Kubernetes API double until interrupted, for manual use with
//! kubectl or claw. Prints the server URL; on exit prints the request count.

use kube_api_double::KubeApiDouble;

fn main() {
    let mut listen = "127.0.0.1:0".to_string();
    let mut kubeconfig: Option<String> = None;
    let mut namespace = "default".to_string();
    let mut tls = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().unwrap_or(listen),
            "--kubeconfig" => kubeconfig = args.next(),
            "--namespace" => namespace = args.next().unwrap_or(namespace),
            "--tls" => tls = true,
            "-h" | "--help" => {
                println!(
                    "usage: kube-api-double [--listen ADDR] [--kubeconfig FILE] [--namespace NS]"
                );
                return;
            }
            other => {
                eprintln!("kube-api-double: unknown argument {other:?}");
                std::process::exit(2);
            }
        }
    }
    let addr = match listen.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kube-api-double: bad --listen {listen:?}: {e}");
            std::process::exit(2);
        }
    };
    let started = if tls {
        KubeApiDouble::start_tls_on(addr)
    } else {
        KubeApiDouble::start_on(addr)
    };
    let double = match started {
        Ok(d) => d,
        Err(e) => {
            eprintln!("kube-api-double: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    if let Some(path) = &kubeconfig {
        if let Err(e) = std::fs::write(path, double.kubeconfig(&namespace)) {
            eprintln!("kube-api-double: cannot write {path}: {e}");
            std::process::exit(1);
        }
    }
    println!("{}", double.url());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
    eprintln!("kube-api-double: {} requests served", double.requests());
}
