//! Cases for the public routes: latest, history, downloads, updater, installer.

use super::*;

pub(super) fn public_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let get = |name: &str, path: &str| Case::new(name, "GET", path);
    for (path, mention) in [
        (
            "/api/v1/releases/..%2F..%2Fadmin/latest/linux/x86_64",
            "product",
        ),
        (
            "/api/v1/releases/launcher%2F..%2Frunner/latest/linux/x86_64",
            "product",
        ),
        (
            "/api/v1/releases/launcher%5C..%5Crunner/latest/linux/x86_64",
            "product",
        ),
        (
            "/api/v1/releases/launcher'%20OR%20'1'='1/latest/linux/x86_64",
            "product",
        ),
        (
            "/api/v1/releases/launcher%00/latest/linux/x86_64",
            "product",
        ),
        ("/api/v1/releases/launcher/latest/freebsd/x86_64", "os"),
        ("/api/v1/releases/launcher/latest/linux/sparc", "arch"),
        ("/api/v1/releases/launcher/latest/linux/x86_64%3Bls", "arch"),
        (
            "/api/v1/releases/launcher/latest/linux/x86_64?kind=AppImage",
            "kind",
        ),
        (
            "/api/v1/releases/launcher/latest/linux/x86_64?kind=%C3%28",
            "kind",
        ),
        (
            "/api/v1/releases/launcher/latest/linux/x86_64?kind=deb'--",
            "kind",
        ),
        ("/api/v1/releases/launcher/1.0", "version"),
        ("/api/v1/releases/launcher/01.0.0", "version"),
        ("/api/v1/releases/launcher/1.0.0%0A", "version"),
        ("/api/v1/releases/launcher?limit=0", "limit"),
        ("/api/v1/releases/launcher?limit=101", "limit"),
        (
            "/api/v1/releases/launcher?limit=1;DROP%20TABLE%20releases",
            "limit",
        ),
        ("/api/v1/releases/launcher?cursor=-1", "cursor"),
        ("/api/v1/releases/launcher?cursor=1%20OR%201=1", "cursor"),
        (
            "/api/v1/releases/launcher?cursor=99999999999999999999",
            "cursor",
        ),
        ("/api/v1/releases/launcher?cursor=%FF", "cursor"),
        ("/download/launcher/latest/linux/x86_64?kind=..%2Fx", "kind"),
        ("/api/v1/updater/launcher/macosx/x86_64/1.0.0", "target"),
        ("/api/v1/updater/launcher/linux/x86_64/latest", "version"),
        (
            "/api/v1/updater/launcher/linux/x86_64/..%2F..%2F1.0.0",
            "version",
        ),
        (
            "/api/v1/updater/launcher/linux/x86_64/1.0.0?bundleType=..%2Fx",
            "bundleType",
        ),
    ] {
        cases.push(get(&format!("GET {path}"), path).mentions(mention));
    }
    for path in [
        "/api/v1/releases/launcher/latest/linux/x86_64?channel=prod",
        "/api/v1/releases/launcher/latest/linux/x86_64?channel=stable'--",
        "/api/v1/releases/launcher/latest/linux/x86_64?channel=%FF",
        "/api/v1/updater/launcher/prod/latest.json",
        "/api/v1/updater/launcher/linux/x86_64/1.0.0?channel=..",
    ] {
        cases.push(
            get(&format!("GET {path}"), path)
                .expect(404, "not_found")
                .mentions("channel"),
        );
    }
    for path in [
        "/api/v1/download/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/download/dl_x'%20OR%201=1",
        "/api/v1/download/%00",
        "/api/v1/releases/%FF/latest/linux/x86_64",
        "/api/v1/releases/launcher/%C0%AF",
        "/api/v1/nope",
    ] {
        cases.push(get(&format!("GET {path}"), path).expect(404, "not_found"));
    }
    // Over-long path parameters and query strings: refused without echoing them whole.
    let long = "a".repeat(8000);
    for (path, status, code) in [
        (
            format!("/api/v1/releases/{long}/latest/linux/x86_64"),
            400,
            "invalid_input",
        ),
        (
            format!("/api/v1/releases/launcher/1.0.0-{long}"),
            400,
            "invalid_input",
        ),
        (format!("/api/v1/download/{long}"), 404, "not_found"),
        (
            format!("/api/v1/releases/launcher/latest/linux/x86_64?kind={long}"),
            400,
            "invalid_input",
        ),
        (
            format!("/api/v1/releases/launcher/latest/linux/x86_64?channel={long}"),
            404,
            "not_found",
        ),
        (
            format!("/api/v1/releases/launcher?cursor={long}"),
            400,
            "invalid_input",
        ),
    ] {
        cases.push(
            get(
                &format!("GET {} ({} bytes)", &path[..40], path.len()),
                &path,
            )
            .expect(status, code),
        );
    }
    // Credentials that are not tokens.
    for (what, value, code) in [
        (
            "a huge bearer token",
            format!("Bearer atlas_app_{}", "x".repeat(8000)),
            "token_invalid",
        ),
        (
            "basic auth",
            "Basic YWRtaW46YWRtaW4=".to_owned(),
            "token_missing",
        ),
        (
            "bearer with no token",
            "Bearer ".to_owned(),
            "token_missing",
        ),
        (
            "SQL in the token",
            "Bearer atlas_admin_' OR '1'='1".to_owned(),
            "token_invalid",
        ),
    ] {
        cases.push(
            Case::new(format!("admin list: {what}"), "GET", "/api/v1/admin/tokens")
                .header("authorization", value)
                .expect(401, code),
        );
    }
    cases
}
