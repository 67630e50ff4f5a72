//! `pack deploy` with GitHub OIDC requested from an Actions runtime on loopback, or the
//! pack token.

use super::*;

/// The GitHub Actions runtime's OIDC token endpoint and the issuer behind it, on loopback:
/// `/token` mints an RS256 token for the requested audience (when the runtime's bearer
/// token is right); discovery and JWKS let the Hub verify it.
struct ActionsRuntime {
    url: String,
    /// (query, authorization header) of every token request.
    requests: Arc<Mutex<Vec<(String, String)>>>,
}

const RUNTIME_TOKEN: &str = "actions-runtime-token";

fn actions_runtime() -> ActionsRuntime {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let key = std::fs::read(root().join("tests/fixtures/issuer-key.der"))
        .expect("tests/fixtures/issuer-key.der");
    let mut jwk: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/issuer-jwk.json")).unwrap(),
    )
    .unwrap();
    jwk["kid"] = json!("k1");
    jwk["alg"] = json!("RS256");
    jwk["use"] = json!("sig");
    let (issuer, seen) = (url.clone(), requests.clone());
    static JTI: AtomicUsize = AtomicUsize::new(0);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push(line.trim_end().to_owned());
            }
            let target = head
                .first()
                .and_then(|l| l.split(' ').nth(1))
                .unwrap_or("/")
                .to_owned();
            let auth = head
                .iter()
                .find_map(|h| {
                    h.split_once(':')
                        .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                        .map(|(_, v)| v.trim().to_owned())
                })
                .unwrap_or_default();
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            let (status, body) = match path {
                "/.well-known/openid-configuration" => (
                    "200 OK",
                    json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")}),
                ),
                "/jwks" => ("200 OK", json!({"keys": [jwk]})),
                "/token" => {
                    seen.lock().unwrap().push((query.to_owned(), auth.clone()));
                    let audience = form_urlencoded::parse(query.as_bytes())
                        .find(|(k, _)| k == "audience")
                        .map(|(_, v)| v.into_owned());
                    if auth != format!("Bearer {RUNTIME_TOKEN}") {
                        ("401 Unauthorized", json!({"message": "bad runtime token"}))
                    } else {
                        let now = time::OffsetDateTime::now_utc().unix_timestamp();
                        let claims = json!({
                            "iss": issuer, "aud": audience, "sub": "repo:octo/packs:environment:production",
                            "repository": "octo/packs", "repository_id": "1001",
                            "repository_owner": "octo", "repository_owner_id": "2002",
                            "workflow_ref": "octo/packs/.github/workflows/deploy.yml@refs/tags/v1.0.0",
                            "job_workflow_ref": "octo/packs/.github/workflows/deploy.yml@refs/tags/v1.0.0",
                            "ref": "refs/tags/v1.0.0", "environment": "production", "event_name": "push",
                            "run_id": "555", "jti": format!("cli-{}-{}", std::process::id(), JTI.fetch_add(1, Ordering::SeqCst)),
                            "exp": now + 300, "nbf": now - 5, "iat": now - 5,
                        });
                        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
                        header.kid = Some("k1".into());
                        let jwt = jsonwebtoken::encode(
                            &header,
                            &claims,
                            &jsonwebtoken::EncodingKey::from_rsa_der(&key),
                        )
                        .unwrap();
                        ("200 OK", json!({"value": jwt}))
                    }
                }
                _ => ("404 Not Found", json!({})),
            };
            let body = body.to_string();
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    ActionsRuntime { url, requests }
}

#[tokio::test]
async fn pack_deploy_requests_a_fresh_oidc_token_per_call_inside_actions_or_uses_the_pack_token() {
    let runtime = actions_runtime();
    let hub = TestHub::start_with(HubOptions {
        env: vec![
            ("ATLAS_OIDC_ISSUER".into(), runtime.url.clone()),
            ("ATLAS_OIDC_AUDIENCE".into(), "atlas-test".into()),
        ],
        ..Default::default()
    })
    .await;
    let admin = admin_token(&hub);
    let (status, body) = hub
        .api()
        .bearer(&admin)
        .post(
            "/api/v1/admin/packs",
            json!({"slug": "maps", "name": "Maps", "github": {
        "repository": "octo/packs", "repositoryId": 1001, "repositoryOwnerId": 2002,
        "workflow": "deploy.yml", "environment": "production", "refPattern": "refs/tags/*"}}),
        )
        .await
        .parts();
    assert_eq!(status, 201, "{body}");
    let d = dir("pack");
    let terrain = write(&d, "terrain.zip", &b"terrain ".repeat(3000));
    let index = write(&d, "index.json", br#"{"tiles": 12}"#);
    let in_actions = [
        ("GITHUB_ACTIONS", "true"),
        (
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            &format!("{}/token?api-version=2.0", runtime.url),
        ),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", RUNTIME_TOKEN),
        ("ATLAS_OIDC_AUDIENCE", "atlas-test"),
    ];
    let deploy = [
        "pack",
        "deploy",
        "--pack",
        "maps",
        "--build",
        "b1",
        "--channel",
        "live",
        terrain.as_str(),
        index.as_str(),
    ];

    let run = atlas(&hub.url, &in_actions, &deploy);
    assert!(run.ok, "{run}");
    assert!(
        run.stdout
            .contains("deployed maps build b1 (2 files); pack channel live serves it"),
        "{run}"
    );
    assert!(
        run.stderr
            .contains("authenticating with the GitHub Actions OIDC token"),
        "{run}"
    );
    // One token per Hub call (two presigns, one deploy): the Hub accepts each token once.
    let requests = runtime.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "{requests:?}");
    for (query, auth) in &requests {
        assert_eq!(query, "api-version=2.0&audience=atlas-test");
        assert_eq!(auth, &format!("Bearer {RUNTIME_TOKEN}"));
    }
    let (status, live) = hub
        .api()
        .get("/api/v1/packs/maps/channels/live")
        .await
        .parts();
    assert_eq!(status, 200, "{live}");
    assert_eq!(live["build"], "b1");
    assert_eq!(live["artifacts"].as_array().unwrap().len(), 2, "{live}");

    // Re-running uploads nothing and changes nothing.
    let run = atlas(&hub.url, &in_actions, &deploy);
    assert!(
        run.ok && run.stdout.contains("already deployed maps build b1"),
        "{run}"
    );
    assert_eq!(run.stderr.matches("already in storage").count(), 2, "{run}");

    // Outside Actions: the pack deploy token, or a message naming the variable.
    let run = atlas(
        &hub.url,
        &[],
        &[
            "pack",
            "deploy",
            "--pack",
            "maps",
            "--build",
            "b2",
            "--channel",
            "live",
            &index,
        ],
    );
    assert!(
        !run.ok && run.stderr.contains("set ATLAS_PACK_DEPLOY_TOKEN"),
        "{run}"
    );
    let (status, created) = hub
        .api()
        .bearer(&admin)
        .post(
            "/api/v1/admin/tokens",
            json!({"name": "maps ci", "kind": "pack", "pack": "maps"}),
        )
        .await
        .parts();
    assert_eq!(status, 201, "{created}");
    let run = atlas(
        &hub.url,
        &[(
            "ATLAS_PACK_DEPLOY_TOKEN",
            created["token"].as_str().unwrap(),
        )],
        &[
            "pack",
            "deploy",
            "--pack",
            "maps",
            "--build",
            "b2",
            "--channel",
            "live",
            &index,
        ],
    );
    assert!(run.ok, "{run}");
    let (_, live) = hub
        .api()
        .get("/api/v1/packs/maps/channels/live")
        .await
        .parts();
    assert_eq!(live["build"], "b2");
}
