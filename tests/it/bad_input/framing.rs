//! Raw HTTP: what no well-behaved client sends (CR/LF in header values, conflicting
//! lengths, request smuggling), over a plain TCP socket.

use super::*;

/// Sends `request` as is on a new connection and reads until the server closes it (or 3 s
/// pass); returns everything it answered.
fn raw(hub: &TestHub, request: &[u8]) -> String {
    let authority = hub.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    // The server may answer and close before reading everything (an early 413 or 400).
    let _ = stream.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status codes of every response in a raw answer.
fn statuses(answer: &str) -> Vec<u16> {
    answer
        .split("HTTP/1.1 ")
        .skip(1)
        .filter_map(|s| s.get(..3).and_then(|c| c.parse().ok()))
        .collect()
}

#[tokio::test]
async fn request_smuggling_and_malformed_framing_are_refused() {
    let (hub, creds, _) = corpus_hub().await;
    let before = stored(&hub).await;
    let admin = &creds.admin;
    // Control: two pipelined requests on one connection get two answers, so a single
    // answer below means the second request was not processed.
    let answer = raw(
        &hub,
        b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\nGET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(statuses(&answer).len(), 2, "{answer}");

    // Each smuggles `GET /api/v1/releases/smuggled-N/channels`, which must never be served.
    let smuggled = |n: usize| {
        format!(
            "GET /api/v1/releases/smuggled-{n}/channels HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\r\n"
        )
    };
    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        (
            "Transfer-Encoding and Content-Length (CL.TE)",
            format!(
                "POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{}",
                smuggled(0)
            )
            .into_bytes(),
            // One answer: the framing refused (400) or the empty chunked body read and the
            // request, which has no credentials, refused before its body is looked at (401).
            &[400, 401],
        ),
        (
            "Content-Length then Transfer-Encoding (TE.CL)",
            {
                let inner = smuggled(1);
                format!(
                    "POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                     Transfer-Encoding: chunked\r\nContent-Length: {}\r\n\r\n{:x}\r\n{inner}\r\n0\r\n\r\n",
                    inner.len() + 10,
                    inner.len()
                )
                .into_bytes()
            },
            // As CL.TE: the framing refused, or the request refused for its missing credentials.
            &[400, 401],
        ),
        (
            "two different Content-Lengths",
            format!(
                "POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: 2\r\nContent-Length: 90\r\n\r\n{{}}{}",
                smuggled(2)
            )
            .into_bytes(),
            &[400],
        ),
        (
            "a Content-Length list",
            format!(
                "POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 90\r\n\r\n{{}}{}",
                smuggled(3)
            )
            .into_bytes(),
            &[400],
        ),
        (
            "a signed Content-Length",
            format!(
                "POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n{{}}{}",
                smuggled(4)
            )
            .into_bytes(),
            &[400],
        ),
        (
            "Transfer-Encoding that does not end in chunked",
            format!(
                "POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{}",
                smuggled(5)
            )
            .into_bytes(),
            &[400],
        ),
        (
            "an obfuscated Transfer-Encoding",
            format!(
                "POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{}",
                smuggled(6)
            )
            .into_bytes(),
            &[400],
        ),
        (
            "Transfer-Encoding on HTTP/1.0",
            format!(
                "POST /api/v1/storage/presign HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{}",
                smuggled(7)
            )
            .into_bytes(),
            &[400],
        ),
        (
            "a bare LF in a header value",
            format!(
                "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Atlas-Client-Id: a\n{}",
                smuggled(8)
            )
            .into_bytes(),
            &[400],
        ),
        (
            "a bare CR in a header value",
            format!(
                "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Atlas-Client-Id: a\r{}",
                smuggled(9)
            )
            .into_bytes(),
            &[400],
        ),
        (
            "a folded header line",
            format!(
                "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\r\n {}",
                smuggled(10)
            )
            .into_bytes(),
            &[400],
        ),
        (
            "a space before the colon",
            format!(
                "POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nContent-Length : 2\r\n\r\n{{}}{}",
                smuggled(11)
            )
            .into_bytes(),
            &[400],
        ),
        (
            "a NUL in a header value",
            format!(
                "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\0b\r\n\r\n{}",
                smuggled(12)
            )
            .into_bytes(),
            &[400],
        ),
        (
            "a bad chunk size",
            format!(
                "POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Transfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n{}",
                smuggled(13)
            )
            .into_bytes(),
            // Framing breaks after the head was read: 400 `invalid_body`, a closed connection,
            // or, the request having no credentials, 401 before its body is read.
            &[400, 401],
        ),
    ];
    for (what, request, allowed) in &cases {
        let answer = raw(&hub, request);
        let got = statuses(&answer);
        eprintln!("{what}: answered {got:?}");
        assert!(got.len() <= 1, "{what}: more than one response: {answer}");
        if let Some(status) = got.first() {
            assert!(
                allowed.contains(status),
                "{what}: answered {status}: {answer}"
            );
        }
    }
    let log = hub.log();
    assert!(
        !log.contains("smuggled-"),
        "a smuggled request was processed:\n{log}"
    );

    // Requests whose head is not HTTP at all, or not UTF-8.
    for (what, request, expected) in [
        (
            "raw non-ASCII in the path",
            b"GET /api/v1/releases/\xff\xfe/channels HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a space in the path",
            b"GET /api/v1/releases/a b/channels HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "an invalid method",
            b"G@T /api/health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "an unknown version",
            b"GET /api/health HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a URI longer than 64 KiB",
            format!(
                "GET /api/v1/download/{} HTTP/1.1\r\nHost: x\r\n\r\n",
                "a".repeat(70_000)
            )
            .into_bytes(),
            414,
        ),
    ] {
        let answer = raw(&hub, &request);
        assert_eq!(
            statuses(&answer).first(),
            Some(&expected),
            "{what}: {answer}"
        );
    }

    // Parsed, then refused by the Hub itself: problem+json answers.
    // One byte over the limit, in 64 KiB chunks (with credentials: a request without them is
    // refused before its body is read).
    let mut chunked = format!("POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n", creds.app).into_bytes();
    let mut left = MAX_BODY_BYTES + 1;
    while left > 0 {
        let n = left.min(65536);
        chunked.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        chunked.extend_from_slice(&vec![b' '; n]);
        chunked.extend_from_slice(b"\r\n");
        left -= n;
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let mut lying = format!(
        "POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        MAX_BODY_BYTES * 4
    )
    .into_bytes();
    lying.extend(vec![b' '; MAX_BODY_BYTES + 1]);
    for (what, request, status, code) in [
        ("a chunked body over the limit", chunked, 413, "payload_too_large"),
        ("a body over the limit, less than declared", lying, 413, "payload_too_large"),
        (
            "a non-UTF-8 Authorization header",
            b"GET /api/v1/admin/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n".to_vec(),
            401,
            "token_missing",
        ),
        (
            "a non-UTF-8 content type",
            // With credentials: a request without them is refused before its body is looked at.
            [
                format!("POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n", creds.app).into_bytes(),
                b"Content-Type: application/json\xff\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec(),
            ]
            .concat(),
            415,
            "unsupported_media_type",
        ),
        (
            "an encoded dot-dot product",
            b"GET /api/v1/releases/%2e%2e/latest/linux/x86_64 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            400,
            "invalid_input",
        ),
        (
            "an encoded dot-dot download product",
            b"GET /download/%2E%2E/latest/linux/x86_64 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            400,
            "invalid_input",
        ),
        (
            "an encoded dot-dot pack channel",
            b"GET /api/v1/packs/mods/channels/%2e%2e HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            400,
            "invalid_input",
        ),
        (
            "an encoded dot-dot channel move",
            format!("PUT /api/v1/releases/launcher/channels/%2e%2e HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 20\r\nConnection: close\r\n\r\n{{\"version\": \"1.0.0\"}}", creds.app).into_bytes(),
            404,
            "not_found",
        ),
        (
            "an unencoded dot-dot path",
            b"GET /api/v1/releases/../admin/tokens HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            404,
            "not_found",
        ),
    ] {
        let answer = raw(&hub, &request);
        assert_eq!(statuses(&answer), vec![status], "{what}: {answer}");
        assert!(answer.to_ascii_lowercase().contains("content-type: application/problem+json"), "{what}: {answer}");
        assert!(answer.contains(&format!("\"code\":\"{code}\"")), "{what}: {answer}");
    }

    assert_eq!(
        before,
        stored(&hub).await,
        "a refused request stored something"
    );
    for line in hub.log().lines() {
        let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        assert!(v["status"].as_u64().is_none_or(|s| s < 500), "{line}");
    }
}
