//! Signing in with Microsoft Entra ID and a generic OpenID Connect issuer, against a real
//! OpenID provider (`oidc-provider`) set up as Entra-like tenants: whole flows, roles from
//! tenant, group and e-mail rules, sessions an admin lists and ends, and every forged or
//! misdirected `id_token` refused with its own reason.

use reqwest::Method;
use serde_json::{Value, json};

use super::browser::{Browser, location, query_param};
use super::oidc_provider::{IdpUser, OidcProvider};
use super::{grant, logged_reason, refusal};
use crate::support::{HubOptions, TestHub};

const TENANT: &str = "6f1f2b4e-0b1c-4c5d-9e8f-112233445566";
const OTHER_TENANT: &str = "a0b1c2d3-e4f5-4a6b-8c7d-8e9fa0b1c2d3";
const CLIENT_ID: &str = "atlas-hub-test-client";
const CLIENT_SECRET: &str = "oidc-client-secret-0123456789";

/// The provider (tenants `TENANT` and `OTHER_TENANT`) and a Hub that signs in with Microsoft
/// (only `TENANT` allowed) and with `OTHER_TENANT`'s issuer as a generic OIDC issuer.
async fn world() -> (OidcProvider, TestHub) {
    let port = atlas_hub::dev::free_port().unwrap();
    let callbacks =
        ["microsoft", "oidc"].map(|p| format!("http://127.0.0.1:{port}/api/v1/auth/callback/{p}"));
    let provider = OidcProvider::start(
        &[TENANT, OTHER_TENANT],
        CLIENT_ID,
        CLIENT_SECRET,
        &callbacks,
    );
    let env = [
        ("ATLAS_SIGNIN_MICROSOFT_CLIENT_ID", CLIENT_ID.to_owned()),
        (
            "ATLAS_SIGNIN_MICROSOFT_CLIENT_SECRET",
            CLIENT_SECRET.to_owned(),
        ),
        ("ATLAS_SIGNIN_MICROSOFT_TENANTS", TENANT.to_owned()),
        ("ATLAS_SIGNIN_MICROSOFT_AUTHORITY", provider.base.clone()),
        ("ATLAS_SIGNIN_OIDC_ISSUER", provider.issuer(OTHER_TENANT)),
        ("ATLAS_SIGNIN_OIDC_CLIENT_ID", CLIENT_ID.to_owned()),
        ("ATLAS_SIGNIN_OIDC_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
        ("ATLAS_SIGNIN_OIDC_NAME", "Okta".to_owned()),
    ];
    let hub = TestHub::start_with(HubOptions {
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        port: Some(port),
        ..Default::default()
    })
    .await;
    grant(&hub, "microsoft_tenant", TENANT, "viewer", &[]);
    grant(
        &hub,
        "microsoft_group",
        &format!("{TENANT}/release-admins"),
        "admin",
        &[],
    );
    grant(
        &hub,
        "oidc_email",
        "alice@example.com",
        "releaser",
        &["launcher"],
    );
    (provider, hub)
}

fn person(oid: &str, groups: &[&str]) -> IdpUser {
    IdpUser {
        sub: format!("sub-{oid}"),
        email: format!("{oid}@example.com"),
        email_verified: true,
        name: oid.to_owned(),
        oid: oid.to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

/// Starts a sign-in with `provider_id` and has the provider answer it; the callback URL.
async fn authorize(browser: &mut Browser, idp: &OidcProvider, provider_id: &str) -> String {
    let start = browser
        .get(&format!("/api/v1/auth/signin/{provider_id}"))
        .await;
    idp.follow_authorization(&location(&start))
        .await
        .unwrap_or_else(|e| panic!("the provider did not answer: {e}\n{}", idp.log()))
}

/// A whole sign-in; the callback's response.
async fn sign_in(
    browser: &mut Browser,
    idp: &OidcProvider,
    provider_id: &str,
) -> reqwest::Response {
    let callback = authorize(browser, idp, provider_id).await;
    browser.get(&callback).await
}

async fn session(browser: &mut Browser) -> Value {
    browser
        .get("/api/v1/auth/session")
        .await
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_and_oidc_sign_ins_give_the_roles_their_rules_say_and_admins_end_sessions() {
    let (idp, hub) = world().await;

    // The redirect: the tenant's own authorization endpoint, PKCE, state and nonce.
    let mut admin = Browser::new(&hub.url);
    let start = admin
        .get("/api/v1/auth/signin/microsoft?returnTo=/console")
        .await;
    let to_idp = location(&start);
    assert!(to_idp.starts_with(&idp.issuer(TENANT)), "{to_idp}");
    assert_eq!(
        query_param(&to_idp, "client_id").as_deref(),
        Some(CLIENT_ID)
    );
    assert_eq!(
        query_param(&to_idp, "redirect_uri"),
        Some(format!("{}/api/v1/auth/callback/microsoft", hub.url))
    );
    assert_eq!(
        query_param(&to_idp, "code_challenge_method").as_deref(),
        Some("S256")
    );
    for p in ["state", "nonce", "code_challenge"] {
        assert!(
            query_param(&to_idp, p).is_some_and(|v| v.len() >= 32),
            "{p} in {to_idp}"
        );
    }
    // Only allowed tenants can be asked for.
    let (status, _, _) = refusal(
        admin
            .get(&format!(
                "/api/v1/auth/signin/microsoft?tenant={OTHER_TENANT}"
            ))
            .await,
    )
    .await;
    assert_eq!(status, 400);

    // A member of the admins group: admin, named by tenant and object id.
    idp.next_user(TENANT, &person("oid-admin", &["release-admins"]))
        .await;
    let callback = idp.follow_authorization(&to_idp).await.unwrap();
    let done = admin.get(&callback).await;
    assert_eq!(location(&done), "/console");
    let info = session(&mut admin).await;
    assert_eq!(
        (&info["person"], &info["role"]),
        (
            &json!(format!("microsoft:{TENANT}/oid-admin")),
            &json!("admin")
        ),
        "{info}"
    );

    // Anyone else of the tenant: a viewer, who reads and may not write.
    idp.next_user(TENANT, &person("oid-viewer", &[])).await;
    let mut viewer = Browser::new(&hub.url);
    assert_eq!(sign_in(&mut viewer, &idp, "microsoft").await.status(), 302);
    let info = session(&mut viewer).await;
    assert_eq!(info["role"], "viewer", "{info}");
    let csrf = info["csrfToken"].as_str().unwrap().to_owned();
    assert_eq!(viewer.get("/api/v1/admin/audit").await.status(), 200);
    let write = viewer
        .request(Method::POST, "/api/v1/admin/products")
        .header("x-atlas-csrf", &csrf)
        .json(&json!({"slug": "launcher", "name": "Launcher"}));
    let (status, code, _) = refusal(viewer.send(write).await).await;
    assert_eq!((status, code.as_str()), (403, "scope_denied"));

    // The generic issuer: a verified e-mail rule makes a releaser of its products.
    idp.next_user(
        OTHER_TENANT,
        &IdpUser {
            email: "Alice@Example.com".into(),
            ..person("alice", &[])
        },
    )
    .await;
    let mut alice = Browser::new(&hub.url);
    assert_eq!(sign_in(&mut alice, &idp, "oidc").await.status(), 302);
    let info = session(&mut alice).await;
    assert_eq!(
        (&info["person"], &info["role"], &info["products"]),
        (
            &json!("oidc:Alice@Example.com"),
            &json!("releaser"),
            &json!(["launcher"])
        ),
        "{info}"
    );
    // An address the issuer did not verify matches no rule.
    idp.next_user(
        OTHER_TENANT,
        &IdpUser {
            email: "alice@example.com".into(),
            email_verified: false,
            ..person("mallory", &[])
        },
    )
    .await;
    let mut mallory = Browser::new(&hub.url);
    let (status, code, reason) = refusal(sign_in(&mut mallory, &idp, "oidc").await).await;
    assert_eq!(
        (status, code.as_str(), reason.as_str()),
        (403, "signin_failed", "no_rule")
    );

    // An admin sees everyone's sessions and ends the viewer's; the viewer is out at once.
    let all: Value = admin
        .get("/api/v1/auth/sessions?all=true")
        .await
        .json()
        .await
        .unwrap();
    let sessions = all["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3, "{all}");
    let viewer_session = sessions
        .iter()
        .find(|s| s["person"] == format!("microsoft:{TENANT}/oid-viewer"))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin_csrf = session(&mut admin).await["csrfToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoke = admin
        .request(
            Method::DELETE,
            &format!("/api/v1/auth/sessions/{viewer_session}"),
        )
        .header("x-atlas-csrf", &admin_csrf);
    assert_eq!(admin.send(revoke).await.status(), 204);
    assert_eq!(viewer.get("/api/v1/admin/audit").await.status(), 401);
    assert_eq!(session(&mut viewer).await["signedIn"], false);
    // A viewer's own list is only theirs; the admin's audit names who ended what.
    let own: Value = alice
        .get("/api/v1/auth/sessions")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(own["sessions"].as_array().unwrap().len(), 1, "{own}");
    let audit: Value = admin.get("/api/v1/admin/audit").await.json().await.unwrap();
    let revoked = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "session.revoke")
        .unwrap();
    assert_eq!(revoked["actor"], format!("microsoft:{TENANT}/oid-admin"));
    assert!(!hub.log().contains(CLIENT_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_misdirected_id_tokens_are_refused_each_for_its_reason() {
    let (idp, hub) = world().await;
    idp.next_user(TENANT, &person("oid-admin", &["release-admins"]))
        .await;
    // One good sign-in first (its id_token is what `replay` sends again).
    let mut first = Browser::new(&hub.url);
    let good = authorize(&mut first, &idp, "microsoft").await;
    assert_eq!(first.get(&good).await.status(), 302);

    for (mode, reason) in [
        ("other_tenant", "wrong_tenant"),
        ("issuer", "wrong_issuer"),
        ("audience", "wrong_audience"),
        ("expired", "expired"),
        ("alg_none", "alg_none"),
        ("unsigned", "unsigned"),
        ("bad_signature", "bad_signature"),
        ("foreign_key", "bad_signature"),
        ("other_tenant_key", "bad_signature"),
        ("replay", "nonce_mismatch"),
    ] {
        idp.tamper_next(TENANT, mode).await;
        let mut browser = Browser::new(&hub.url);
        let (status, code, why) = refusal(sign_in(&mut browser, &idp, "microsoft").await).await;
        assert_eq!(
            (status, code.as_str(), why.as_str()),
            (401, "signin_failed", reason),
            "tamper mode {mode}"
        );
        assert!(browser.cookie("__Host-atlas-session").is_none(), "{mode}");
        assert!(logged_reason(&hub, reason), "{reason} not in the log");
    }

    // A code the provider already exchanged, carried by a new flow.
    let mut browser = Browser::new(&hub.url);
    let fresh = authorize(&mut browser, &idp, "microsoft").await;
    let reused = fresh.replace(
        &query_param(&fresh, "code").unwrap(),
        &query_param(&good, "code").unwrap(),
    );
    let (_, _, reason) = refusal(browser.get(&reused).await).await;
    assert_eq!(reason, "code_reused");

    // A code of another flow injected into this one: the provider refuses it for the PKCE
    // verifier (oidc-provider says only `invalid_grant`; Entra names the verifier, which
    // the Hub then logs as `pkce_mismatch`).
    let mut victim = Browser::new(&hub.url);
    let mut attacker = Browser::new(&hub.url);
    let victims = authorize(&mut victim, &idp, "microsoft").await;
    let attackers = authorize(&mut attacker, &idp, "microsoft").await;
    let injected = victims.replace(
        &query_param(&victims, "code").unwrap(),
        &query_param(&attackers, "code").unwrap(),
    );
    let (_, _, reason) = refusal(victim.get(&injected).await).await;
    assert_eq!(reason, "code_rejected");

    // An authorization response naming another issuer (RFC 9207) is refused before the code
    // is ever exchanged.
    let mut browser = Browser::new(&hub.url);
    let callback = authorize(&mut browser, &idp, "microsoft").await;
    let iss = query_param(&callback, "iss").expect("oidc-provider sends iss");
    let mixed = callback.replace(
        &form_urlencoded::byte_serialize(iss.as_bytes()).collect::<String>(),
        &form_urlencoded::byte_serialize(idp.issuer(OTHER_TENANT).as_bytes()).collect::<String>(),
    );
    let (_, _, reason) = refusal(browser.get(&mixed).await).await;
    assert_eq!(reason, "issuer_mismatch");

    // After all that, a genuine sign-in still works.
    let mut browser = Browser::new(&hub.url);
    assert_eq!(sign_in(&mut browser, &idp, "microsoft").await.status(), 302);
    assert_eq!(session(&mut browser).await["role"], "admin");
    let log = hub.log();
    assert!(
        !log.contains(&query_param(&good, "code").unwrap()),
        "a code in the log"
    );
}
