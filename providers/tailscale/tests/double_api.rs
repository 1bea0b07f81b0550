//! The Tailscale API double's own HTTP semantics (checked with a plain HTTP
//! client), retries of rate limits and outages, and the default policy both
//! sides ship.

mod common;

use common::*;

#[test]
fn the_provider_and_the_double_agree_on_the_default_policy() {
    let a = claw_tailscale::hujson::parse(claw_tailscale::DEFAULT_POLICY).unwrap();
    let b = claw_tailscale::hujson::parse(tailscale_api_double::DEFAULT_POLICY).unwrap();
    assert_eq!(a, b);
}

/// The double's HTTP semantics, checked with a plain HTTP client.
mod double_api {
    use super::*;
    use reqwest::StatusCode;

    fn client() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
    }

    #[tokio::test]
    async fn get_formats_etag_if_match_and_auth() {
        let d = TailscaleDouble::spawn();
        let c = client();
        let url = format!("{}/api/v2/tailnet/-/acl", d.base_url());
        // HuJSON by default and on request, JSON on request; the same quoted ETag.
        let hu = c
            .get(&url)
            .bearer_auth(TEST_API_KEY)
            .header("Accept", "application/hujson")
            .send()
            .await
            .unwrap();
        assert_eq!(hu.status(), StatusCode::OK);
        let etag = hu.headers()["etag"].to_str().unwrap().to_string();
        assert_eq!(etag, format!("\"{}\"", d.etag()));
        assert!(hu.text().await.unwrap().contains("//"));
        let js = c
            .get(&url)
            .basic_auth(TEST_API_KEY, None::<&str>)
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(js.headers()["etag"].to_str().unwrap(), etag);
        let v: serde_json::Value = js.json().await.unwrap();
        assert!(v["acls"].is_array());
        // Bad key.
        let r = c.get(&url).bearer_auth("tskey-nope").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.text().await.unwrap(),
            r#"{"message":"API token invalid"}"#
        );
        // Unknown tailnet.
        let r = c
            .get(format!("{}/api/v2/tailnet/other.org/acl", d.base_url()))
            .bearer_auth(TEST_API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);

        // ts-default works once; then only the current ETag does.
        let body = example_policy();
        let r = c
            .post(&url)
            .bearer_auth(TEST_API_KEY)
            .header("If-Match", "\"ts-default\"")
            .header("Content-Type", "application/hujson")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let new_etag = r.headers()["etag"].to_str().unwrap().to_string();
        assert_ne!(new_etag, etag);
        for stale in ["\"ts-default\"", etag.as_str()] {
            let r = c
                .post(&url)
                .bearer_auth(TEST_API_KEY)
                .header("If-Match", stale)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
            assert_eq!(
                r.text().await.unwrap(),
                r#"{"message":"precondition failed, invalid old hash"}"#
            );
        }
        let r = c
            .post(&url)
            .bearer_auth(TEST_API_KEY)
            .header("If-Match", new_etag.as_str())
            .header("Content-Type", "application/json")
            .body("{\"acls\": []}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn saves_and_validate_run_the_policy_tests() {
        let d = TailscaleDouble::spawn();
        let c = client();
        let url = format!("{}/api/v2/tailnet/example.com/acl", d.base_url());
        let broken = example_policy().replace(
            "\"dst\": [\"tag:clawdbot:8080\"]",
            "\"dst\": [\"tag:clawdbot:*\"]",
        );
        assert_ne!(broken, example_policy());
        let r = c
            .post(&url)
            .bearer_auth(TEST_API_KEY)
            .body(broken.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["message"], "test(s) failed");
        assert!(
            v["data"][0]["errors"][0]
                .as_str()
                .unwrap()
                .contains("want: Drop, got: Accept"),
            "{v}"
        );
        assert!(d.is_default(), "a failing save changes nothing");

        let r = c
            .post(format!("{url}/validate"))
            .bearer_auth(TEST_API_KEY)
            .body(broken)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["message"], "test(s) failed");
        let r = c
            .post(format!("{url}/validate"))
            .bearer_auth(TEST_API_KEY)
            .body(example_policy())
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), "{}");
        // Parse errors: 400 on save, a message on validate.
        let r = c
            .post(&url)
            .bearer_auth(TEST_API_KEY)
            .body("{'a': 1}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.text().await.unwrap().contains("line 1, column 2"));
        // A list of tests is run against the current (default, allow-all) policy.
        let r = c
            .post(format!("{url}/validate"))
            .bearer_auth(TEST_API_KEY)
            .body(r#"[{"src": "a@example.com", "deny": ["100.64.0.1:22"]}]"#)
            .send()
            .await
            .unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["message"], "test(s) failed");
    }

    #[tokio::test]
    async fn oauth_tokens_carry_scopes() {
        let d = TailscaleDouble::spawn();
        let c = client();
        let tok = |scope: &'static str| {
            let c = c.clone();
            let url = format!("{}/api/v2/oauth/token", d.base_url());
            async move {
                let r = c
                    .post(url)
                    .form(&[
                        ("client_id", TEST_OAUTH_ID),
                        ("client_secret", TEST_OAUTH_SECRET),
                        ("grant_type", "client_credentials"),
                        ("scope", scope),
                    ])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                let v: serde_json::Value = r.json().await.unwrap();
                assert_eq!(v["token_type"], "Bearer");
                v["access_token"].as_str().unwrap().to_string()
            }
        };
        let read = tok("policy_file:read").await;
        let url = format!("{}/api/v2/tailnet/-/acl", d.base_url());
        assert_eq!(
            c.get(&url)
                .bearer_auth(&read)
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        let r = c
            .post(&url)
            .bearer_auth(&read)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let write = tok("policy_file").await;
        assert_eq!(
            c.post(&url)
                .bearer_auth(&write)
                .body("{}")
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        let r = c
            .post(format!("{}/api/v2/oauth/token", d.base_url()))
            .basic_auth(TEST_OAUTH_ID, Some("wrong"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn rate_limits_and_unavailability_are_retried_then_reported() {
    let f = Fixture::new();
    let config = f.write_policy(&example_policy());
    let desired = f.prepare(f.provider.as_ref(), &config).unwrap();
    f.double.fail_next(&[429, 503]);
    f.refresh(f.provider.as_ref(), Some(&desired), None)
        .await
        .expect("retried after Retry-After");
    assert_eq!(f.double.request_count(), 3);
    assert_eq!(f.provider.counters()[0].1, 3);

    f.double.fail_next(&[429, 429, 429]);
    let errs = f
        .refresh(f.provider.as_ref(), Some(&desired), None)
        .await
        .unwrap_err();
    assert!(
        errs[0]
            .to_string()
            .contains("answered 429: injected failure"),
        "{:?}",
        errs
    );
    // Other errors are not retried.
    f.double.fail_next(&[500]);
    let errs = f
        .refresh(f.provider.as_ref(), Some(&desired), None)
        .await
        .unwrap_err();
    assert!(errs[0].to_string().contains("answered 500"), "{errs:?}");
    assert_eq!(f.double.request_count(), 3 + 3 + 1);
}
