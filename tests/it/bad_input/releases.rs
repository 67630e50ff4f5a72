//! Cases for the CI routes: presign, publish, channel moves, yank.

use super::*;

pub(super) fn release_cases(pending: &Value) -> Vec<Case> {
    let mut cases = Vec::new();
    let presign = presign_body();
    let post = |name: &str, body: &Value| {
        Case::new(name, "POST", "/api/v1/storage/presign")
            .json(body)
            .auth(Auth::App)
    };

    // ---- Bodies that are not one JSON object, or not sent as JSON ----
    let over = vec![b' '; MAX_BODY_BYTES + 1];
    for (path, method) in [
        ("/api/v1/storage/presign", "POST"),
        ("/api/v1/releases/launcher/publish", "POST"),
        ("/api/v1/releases/launcher/channels/stable", "PUT"),
        ("/api/v1/admin/tokens", "POST"),
        ("/api/v1/packs/mods/deploy", "POST"),
    ] {
        cases.push(
            Case::new(format!("{path}: body over the limit"), method, path)
                .raw_body(over.clone(), Some("application/json"))
                .auth(Auth::App)
                .expect(413, "payload_too_large"),
        );
        for (what, body) in [
            ("truncated JSON", &b"{\"na"[..]),
            ("not JSON", b"product=launcher&version=1.0.0"),
            ("a JSON array", b"[]"),
            ("a JSON string", b"\"x\""),
            ("two objects", b"{} {}"),
            ("trailing garbage", b"{}x"),
            ("invalid UTF-8", b"{\"\xff\xfe\": 1}"),
            ("a lone surrogate", b"{\"\\ud800\": 1}"),
            ("a NUL byte outside strings", b"{\"version\"\0: \"1.0.0\"}"),
        ] {
            cases.push(
                Case::new(format!("{path}: {what}"), method, path)
                    .raw_body(body.to_vec(), Some("application/json"))
                    .auth(Auth::Admin)
                    .expect(400, "invalid_json"),
            );
        }
        cases.push(
            Case::new(format!("{path}: 10000 nested arrays"), method, path)
                .raw_body("[".repeat(10_000), Some("application/json"))
                .auth(Auth::Admin)
                .expect(400, "invalid_json"),
        );
        cases.push(
            Case::new(format!("{path}: empty body"), method, path)
                .auth(Auth::Admin)
                .expect(400, "invalid_json"),
        );
        for ct in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/json; charset=latin1"),
            Some("application/jsonp"),
            Some("text/json"),
        ] {
            cases.push(
                Case::new(format!("{path}: content-type {ct:?}"), method, path)
                    .raw_body(b"{}".to_vec(), ct)
                    .auth(Auth::Admin)
                    .expect(415, "unsupported_media_type"),
            );
        }
    }
    // Nesting inside a field stops at the parser's recursion limit too.
    let closed = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    for (what, body) in [
        (
            "10000 nested arrays in a field",
            format!("{{\"product\": {}}}", closed(10_000)),
        ),
        (
            "10000 nested objects",
            format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000)),
        ),
    ] {
        cases.push(
            Case::new(
                format!("presign: {what}"),
                "POST",
                "/api/v1/storage/presign",
            )
            .raw_body(body, Some("application/json"))
            .auth(Auth::App)
            .expect(400, "invalid_json")
            .mentions("recursion limit"),
        );
    }
    // `; charset=utf-8` is JSON too: these get past the content type to the field error.
    for ct in [
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "Application/JSON",
    ] {
        cases.push(
            Case::new(
                format!("presign: {ct} is accepted"),
                "POST",
                "/api/v1/storage/presign",
            )
            .raw_body(with(&presign, "version", json!("01.2.3")).to_string(), None)
            .header("content-type", ct)
            .auth(Auth::App)
            .mentions("version"),
        );
    }

    // ---- Presign fields ----
    for f in BAD_FILENAMES {
        cases.push(
            post(
                &format!("presign: filename {f:?}"),
                &with(&presign, "filename", json!(f)),
            )
            .mentions("filename"),
        );
    }
    cases.push(
        post(
            "presign: filename of 201 characters",
            &with(&presign, "filename", json!("a".repeat(201))),
        )
        .mentions("filename"),
    );
    for (what, size) in [
        ("negative", json!(-1)),
        ("zero", json!(0)),
        ("i64::MIN", json!(i64::MIN)),
        ("2^63", json!(9_223_372_036_854_775_808u64)),
        ("2^64", json!(18_446_744_073_709_551_615u64)),
        ("over 2^64", Value::Null),
        ("fractional", json!(1.5)),
        ("exponent", json!(1e3)),
        ("a string", json!("1000")),
        ("null", Value::Null),
        ("a bool", json!(true)),
    ] {
        let body = if what == "over 2^64" {
            presign
                .to_string()
                .replace("\"size\":1000", "\"size\":123456789012345678901234567890")
        } else {
            with(&presign, "size", size).to_string()
        };
        cases.push(
            Case::new(
                format!("presign: size {what}"),
                "POST",
                "/api/v1/storage/presign",
            )
            .raw_body(body, Some("application/json"))
            .auth(Auth::App)
            .mentions("size"),
        );
    }
    cases.push(
        post(
            "presign: size over the single-PUT limit",
            &with(&presign, "size", json!(5i64 * 1024 * 1024 * 1024 + 1)),
        )
        .expect(413, "artifact_too_large"),
    );
    for sha in [
        "",
        "abc",
        &SHA[1..],
        &format!("{SHA}0"),
        &"g".repeat(64),
        &format!(" {}", &SHA[1..]),
        &format!("{}\n", &SHA[1..]),
        &"é".repeat(32),
        "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be0\0",
        "0x5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6b",
    ] {
        cases.push(
            post(
                &format!("presign: sha256 {sha:?}"),
                &with(&presign, "sha256", json!(sha)),
            )
            .mentions("sha256"),
        );
    }
    for v in [
        "01.2.3",
        "1.02.3",
        "1.2.03",
        "1.2.3-01",
        "1.2",
        "1",
        "v",
        "",
        "latest",
        " 1.2.3",
        "1.2.3 ",
        "1.2.3\0",
        "1.2.3\n",
        "vv1.2.3",
        "V1.2.3",
        "1.2.3-",
        "1.2.3+",
        "1.2.3-a..b",
        "-1.2.3",
        "1.2.3-\u{202E}",
        "99999999999999999999.0.0",
        "1.0.0'; DROP TABLE releases;--",
        "$(reboot)",
        &format!("1.0.0-{}", "a".repeat(294)),
        &"1".repeat(300),
    ] {
        cases.push(
            post(
                &format!("presign: version {v:?}"),
                &with(&presign, "version", json!(v)),
            )
            .mentions("version"),
        );
    }
    for (field, value) in [
        ("product", "Launcher"),
        ("product", "launcher'; DROP TABLE products;--"),
        ("product", "launcher;rm -rf /"),
        ("product", "../launcher"),
        ("product", "launcher\0"),
        ("product", "-launcher"),
        ("product", ""),
        ("os", "freebsd"),
        ("os", "Linux"),
        ("os", "linux'--"),
        ("arch", "sparc"),
        ("arch", "x86-64"),
        ("arch", "$(uname -m)"),
        ("kind", "AppImage"),
        ("kind", "app image"),
        ("kind", "../deb"),
        ("kind", "deb;ls"),
        ("kind", ".deb"),
        ("contentType", "text/html\r\nx-injected: 1"),
        ("contentType", "application/octet-stream; a=\"b\""),
        ("contentType", "nonsense"),
    ] {
        cases.push(
            post(
                &format!("presign: {field} {value:?}"),
                &with(&presign, field, json!(value)),
            )
            .mentions(field),
        );
    }
    for field in ["product", "version", "os", "arch", "kind"] {
        cases
            .push(post(&format!("presign: no {field}"), &without(&presign, field)).mentions(field));
    }
    for (field, value) in [
        (
            "key",
            json!("releases/launcher/9.9.9/linux-x86_64/appimage/x"),
        ),
        ("extra", json!(1)),
        ("Product", json!("launcher")),
        ("__proto__", json!({})),
        ("uploadHeaders", json!({"x": "y"})),
    ] {
        cases.push(
            post(
                &format!("presign: unknown field {field}"),
                &with(&presign, field, value),
            )
            .mentions(format!("unknown field `{field}`")),
        );
    }
    cases.push(
        Case::new(
            "presign: duplicate field",
            "POST",
            "/api/v1/storage/presign",
        )
        .raw_body(
            presign.to_string().replace(
                "\"version\":\"2.1.0\"",
                "\"version\":\"2.1.0\",\"version\":\"9.9.9\"",
            ),
            Some("application/json"),
        )
        .auth(Auth::App)
        .mentions("duplicate field `version`"),
    );
    cases.push(
        post(
            "presign: pack and product at once",
            &with(&pack_presign_body(), "product", json!("launcher")),
        )
        .auth(Auth::Pack)
        .mentions("not both"),
    );
    for (field, value) in [
        ("build", "../b1"),
        ("build", "b 1"),
        ("build", "b1;id"),
        ("pack", "Mods"),
        ("filename", "../mods.zip"),
    ] {
        cases.push(
            post(
                &format!("presign pack: {field} {value:?}"),
                &with(&pack_presign_body(), field, json!(value)),
            )
            .auth(Auth::Pack)
            .mentions(field),
        );
    }

    // ---- Publish ----
    let publish = publish_body(pending);
    let pub_case = |name: &str, body: &Value| {
        Case::new(name, "POST", "/api/v1/releases/launcher/publish")
            .json(body)
            .auth(Auth::App)
    };
    for v in [
        "01.2.3",
        "2.0",
        "v",
        &format!("2.0.0-{}", "a".repeat(300)),
        "2.0.0\0",
    ] {
        cases.push(
            pub_case(
                &format!("publish: version {v:?}"),
                &with(&publish, "version", json!(v)),
            )
            .mentions("version"),
        );
    }
    for (what, size) in [
        ("-1", json!(-1)),
        ("0", json!(0)),
        ("2^63", json!(9_223_372_036_854_775_808u64)),
        ("1.5", json!(1.5)),
    ] {
        cases.push(
            pub_case(
                &format!("publish: size {what}"),
                &with(&publish, "artifacts.0.size", size),
            )
            .mentions("artifacts[0].size"),
        );
    }
    for (field, value, mention) in [
        ("artifacts.0.sha256", json!("xyz"), "sha256"),
        ("artifacts.0.os", json!("linux'--"), "os"),
        ("artifacts.0.arch", json!("amd64;"), "arch"),
        ("artifacts.0.kind", json!("../x"), "kind"),
        (
            "artifacts.0.uploadId",
            json!("not-a-uuid"),
            "artifacts[0].uploadId",
        ),
        (
            "artifacts.0.uploadId",
            json!("'; DROP TABLE uploads;--"),
            "artifacts[0].uploadId",
        ),
        ("artifacts.0.primary", json!("yes"), "artifacts[0].primary"),
        (
            "artifacts.0.filename",
            json!("x.AppImage"),
            "unknown field `filename`",
        ),
        ("artifacts.0.extra", json!(null), "unknown field `extra`"),
        ("rolloutPercent", json!(101), "rolloutPercent"),
        ("rolloutPercent", json!(-1), "rolloutPercent"),
        ("rolloutPercent", json!(70000), "rolloutPercent"),
        ("rolloutPercent", json!(50.5), "rolloutPercent"),
        ("notes", json!("a\u{0}b"), "notes"),
        ("notes", json!("bell\u{7}"), "notes"),
        ("notes", json!("x".repeat(100_001)), "notes"),
        ("notes", json!(["a"]), "notes"),
        ("artifacts", json!([]), "artifacts"),
        ("artifacts", json!({}), "artifacts"),
        ("force", json!(true), "unknown field `force`"),
        ("product", json!("other"), "unknown field `product`"),
    ] {
        cases.push(
            pub_case(
                &format!("publish: {field} {}", short(&value)),
                &with(&publish, field, value),
            )
            .mentions(mention),
        );
    }
    let mut many = publish.clone();
    many["artifacts"] = json!(vec![publish["artifacts"][0].clone(); 65]);
    cases.push(pub_case("publish: 65 artifacts", &many).mentions("artifacts"));
    for (what, key) in [
        ("NUL", "releases/launcher/2.0.0/linux-x86_64/appimage/app\0"),
        ("newline", "releases/launcher/2.0.0\n/x"),
        ("bidi", "releases/launcher/2.0.0/\u{202E}x"),
        ("empty", ""),
    ] {
        let mut body = publish.clone();
        body["artifacts"][0] = without(&body["artifacts"][0], "uploadId");
        body["artifacts"][0]["key"] = json!(key);
        cases.push(
            pub_case(&format!("publish: key with {what}"), &body).mentions("artifacts[0].key"),
        );
    }
    let mut long_key = publish.clone();
    long_key["artifacts"][0] = without(&long_key["artifacts"][0], "uploadId");
    long_key["artifacts"][0]["key"] = json!("k".repeat(5000));
    cases.push(pub_case("publish: key of 5000 characters", &long_key).mentions("artifacts[0].key"));
    for (what, channel) in [
        ("unknown", "prod"),
        ("SQL", "stable'; --"),
        ("upper case", "Stable"),
    ] {
        cases.push(
            pub_case(
                &format!("publish: channel {what}"),
                &with(&publish, "channel", json!(channel)),
            )
            .expect(404, "not_found")
            .mentions("channel"),
        );
    }
    for sig in [
        "https://example.com/app.sig",
        "not base64!",
        "aGVsbG8=",
        &"A".repeat(9000),
        "\0",
    ] {
        cases.push(
            pub_case(
                &format!("publish: signature {}", short(&json!(sig))),
                &with(&publish, "artifacts.0.signature", json!(sig)),
            )
            .expect(422, "invalid_signature")
            .mentions(".sig file"),
        );
    }
    cases.push(
        pub_case(
            "publish: an upload of another version",
            &with(&publish, "version", json!("2.0.1")),
        )
        .expect(422, "upload_unknown"),
    );
    cases.push(
        pub_case(
            "publish: declared size differs from the upload",
            &with(
                &publish,
                "artifacts.0.size",
                json!(pending["size"].as_i64().unwrap() + 1),
            ),
        )
        .expect(422, "artifact_mismatch"),
    );

    // ---- Channel moves ----
    let mv = json!({"version": "1.0.0"});
    let move_case = |name: &str, channel: &str, body: &Value| {
        Case::new(
            name,
            "PUT",
            format!("/api/v1/releases/launcher/channels/{channel}"),
        )
        .json(body)
        .auth(Auth::App)
    };
    for (field, value, mention) in [
        ("version", json!("01.0.0"), "version"),
        ("version", json!(1), "version"),
        ("expectedVersion", json!("1.0"), "expectedVersion"),
        ("expectedVersion", json!(["1.0.0"]), "expectedVersion"),
        ("rolloutPercent", json!(101), "rolloutPercent"),
        ("force", json!("yes"), "force"),
        ("channel", json!("beta"), "unknown field `channel`"),
        ("Force", json!(true), "unknown field `Force`"),
    ] {
        cases.push(
            move_case(
                &format!("channel move: {field} {}", short(&value)),
                "beta",
                &with(&mv, field, value),
            )
            .mentions(mention),
        );
    }
    for channel in ["prod", "stable'--", "STABLE", "stable%00", "stable%2Fbeta"] {
        cases.push(
            move_case(&format!("channel move: channel {channel:?}"), channel, &mv)
                .expect(404, "not_found")
                .mentions("channel"),
        );
    }

    // ---- Yank / unyank ----
    for verb in ["yank", "unyank"] {
        for v in ["01.0.0", "1.0", "1.0.0%00", "1.0.0'--", "..%2F1.0.0"] {
            cases.push(
                Case::new(
                    format!("{verb}: version {v:?}"),
                    "POST",
                    format!("/api/v1/releases/launcher/{v}/{verb}"),
                )
                .auth(Auth::App)
                .mentions("version"),
            );
        }
        for body in [json!({"force": true}), json!({"version": "1.0.0"})] {
            cases.push(
                Case::new(
                    format!("{verb}: a body {body}"),
                    "POST",
                    format!("/api/v1/releases/launcher/1.0.0/{verb}"),
                )
                .json(&body)
                .auth(Auth::App)
                .mentions("unknown field"),
            );
        }
        cases.push(
            Case::new(
                format!("{verb}: a text body"),
                "POST",
                format!("/api/v1/releases/launcher/1.0.0/{verb}"),
            )
            .raw_body(b"force=1".to_vec(), Some("text/plain"))
            .auth(Auth::App)
            .expect(415, "unsupported_media_type"),
        );
    }
    cases
}
