//! Foundation: health, problem errors, request ids, logs.

use crate::support::{TestHub, client};

#[tokio::test]
async fn health_answers_200_with_schema_versions() {
    let hub = TestHub::start().await;
    let r = client().get(hub.at("/api/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["schema"]["current"], body["schema"]["expected"]);
    assert!(body["schema"]["expected"].as_i64().unwrap() >= 1);
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_are_problems() {
    let hub = TestHub::start().await;
    let c = client();
    let r = c.get(hub.at("/api/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    let r = c.delete(hub.at("/api/health")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
}
