//! kube-api-double (being built).
