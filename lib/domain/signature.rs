//! Updater signatures as Tauri produces them: `signature` is the base64 of a minisign `.sig`
//! file; `updaterPublicKey` is what Tauri's `pubkey` setting holds (base64 of the `.pub` file).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::{ApiError, Code};

const SIG_HELP: &str = "pass the content of the .sig file Tauri's signer wrote (base64, as in \
                        tauri.conf.json / latest.json), not a URL, a path or the bare signature line";

/// A minisign key id (8 bytes), as found in both keys and signatures.
pub type KeyId = [u8; 8];

/// Parses a Tauri `signature` value and returns its key id.
pub fn parse_signature(value: &str) -> Result<KeyId, ApiError> {
    let bad = |why: &str| {
        ApiError::unprocessable(
            Code::InvalidSignature,
            format!("signature {why}: {SIG_HELP}"),
        )
    };
    if value.starts_with("http://") || value.starts_with("https://") {
        return Err(bad("is a URL"));
    }
    // A .sig file is a few hundred bytes; its trusted comment is the only free text.
    if value.len() > 8192 {
        return Err(bad("is longer than any .sig file"));
    }
    let text = STANDARD
        .decode(value.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| bad("is not base64 of a text file"))?;
    minisign_verify::Signature::decode(&text).map_err(|_| bad("is not a minisign signature"))?;
    // Line 2 is base64 of: algorithm (2 bytes) | key id (8) | signature (64).
    let line = text
        .lines()
        .nth(1)
        .ok_or_else(|| bad("has no signature line"))?;
    key_id_of(line, 74).ok_or_else(|| bad("has a malformed signature line"))
}

/// The version a signature's trusted comment names (`…\tversion:1.2.0`), which Tauri's
/// updater requires to equal the version it is offered.
pub fn signed_version(value: &str) -> Option<String> {
    let text = String::from_utf8(STANDARD.decode(value.trim()).ok()?).ok()?;
    let sig = minisign_verify::Signature::decode(&text).ok()?;
    sig.trusted_comment()
        .split('\t')
        .find_map(|field| field.strip_prefix("version:"))
        .map(|v| v.trim().to_owned())
}

/// Parses an updater public key in any of Tauri's forms and returns (bare key line, key id).
pub fn parse_public_key(value: &str) -> Result<(String, KeyId), ApiError> {
    let bad = || {
        ApiError::unprocessable(
            Code::InvalidPublicKey,
            "updaterPublicKey must be Tauri's `pubkey` value (base64 of the minisign .pub file), \
             the .pub file text, or its key line",
        )
    };
    let value = value.trim();
    let text = STANDARD
        .decode(value)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|t| t.contains('\n'))
        .unwrap_or_else(|| value.to_owned());
    let line = if text.contains('\n') {
        text.lines().nth(1).ok_or_else(bad)?.trim().to_owned()
    } else {
        text.trim().to_owned()
    };
    minisign_verify::PublicKey::from_base64(&line).map_err(|_| bad())?;
    let id = key_id_of(&line, 42).ok_or_else(bad)?;
    Ok((line, id))
}

/// A public key line in the form Tauri's `pubkey` setting takes: base64 of the `.pub` file
/// minisign (and `tauri signer generate`) writes, comment included.
pub fn tauri_pubkey(line: &str) -> String {
    let comment = match key_id_of(line, 42) {
        Some(id) => format!("minisign public key: {}", key_id_hex(&id)),
        None => "minisign public key".to_owned(),
    };
    STANDARD.encode(format!("untrusted comment: {comment}\n{line}\n"))
}

/// Verifies a Tauri `signature` (base64 of a `.sig` file) over the bytes `read` yields,
/// with the public key `key` (any form [`parse_public_key`] takes): what an updater client
/// does before installing. Streams, so a large artifact is never held in memory.
pub fn verify(key: &str, signature: &str, mut read: impl std::io::Read) -> Result<(), String> {
    let (line, key_id) = parse_public_key(key).map_err(|e| e.detail)?;
    let sig_id = parse_signature(signature).map_err(|e| e.detail)?;
    if sig_id != key_id {
        return Err(format!(
            "it was made with key {}, not the product's key {}",
            key_id_hex(&sig_id),
            key_id_hex(&key_id)
        ));
    }
    let public = minisign_verify::PublicKey::from_base64(&line).map_err(|e| e.to_string())?;
    let text = STANDARD
        .decode(signature.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or("the signature is not base64 of a .sig file")?;
    let sig = minisign_verify::Signature::decode(&text).map_err(|e| e.to_string())?;
    let mut verifier = public
        .verify_stream(&sig)
        .map_err(|e| format!("the signature cannot be checked: {e}"))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = read.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        verifier.update(&buf[..n]);
    }
    verifier
        .finalize()
        .map_err(|_| "it does not match the file's bytes (signed over other bytes)".to_owned())
}

fn key_id_of(line: &str, expected_len: usize) -> Option<KeyId> {
    let bytes = STANDARD.decode(line.trim()).ok()?;
    if bytes.len() != expected_len {
        return None;
    }
    bytes[2..10].try_into().ok()
}

/// Hex form of a key id, as minisign prints it (little-endian).
pub fn key_id_hex(id: &KeyId) -> String {
    let mut b = *id;
    b.reverse();
    hex::encode_upper(b)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A real minisign key pair's public key line and a signature it made (from minisign's
    /// own test vectors), wrapped the way Tauri wraps them.
    pub const PUBKEY_LINE: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
    pub const SIG_FILE: &str = "untrusted comment: signature from minisign secret key\n\
RUQf6LRCGA9i559r3g7V1qNyJDApGip8MfqcadIgT9CuhV3EMhHoN1mGTkUidF/z7SrlQgXdy8ofjb7bNJJylDOocrCo8KLzZwo=\n\
trusted comment: timestamp:1633700835\tfile:test\tprehashed\n\
wLMDjy9FLAuxZ3q4NlEvkgtyhrr0gtTu6KC4KBJdITbbOeAi1zBIYo0v4iTgt8jJpIidRJnp94ABQkJAgAooBQ==\n";

    pub fn tauri_signature() -> String {
        STANDARD.encode(SIG_FILE)
    }

    #[test]
    fn a_tauri_signature_parses_and_names_its_key() {
        let id = parse_signature(&tauri_signature()).unwrap();
        let (_, key) = parse_public_key(PUBKEY_LINE).unwrap();
        assert_eq!(id, key);
    }

    #[test]
    fn public_keys_are_accepted_in_all_three_forms() {
        let pub_file = format!("untrusted comment: minisign public key\n{PUBKEY_LINE}\n");
        let as_tauri = STANDARD.encode(&pub_file);
        for form in [PUBKEY_LINE.to_owned(), pub_file, as_tauri] {
            let (line, _) = parse_public_key(&form).unwrap();
            assert_eq!(line, PUBKEY_LINE);
        }
        assert!(parse_public_key("not a key").is_err());
    }

    #[test]
    fn urls_and_garbage_are_refused_with_the_fix_in_the_detail() {
        for bad in [
            "https://example.com/app.sig",
            "garbage",
            &STANDARD.encode("hello\nworld\n"),
            "RUQf6LRCGA9i559r3g7V1qNyJDApGip8MfqcadIgT9CuhV3EMhHoN1mGTkUidF/z7SrlQgXdy8ofjb7bNJJylDOocrCo8KLzZwo=",
        ] {
            let e = parse_signature(bad).unwrap_err();
            assert_eq!(e.code, "invalid_signature");
            assert!(e.detail.contains(".sig file"), "{}", e.detail);
        }
    }
}

/// Properties: both parsers are total on hostile input and answer their own problem codes;
/// accepted keys come back in one canonical form.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::tests::{PUBKEY_LINE, SIG_FILE, tauri_signature};
    use super::*;
    use crate::test_support::{any_bytes, hostile_string, refusal};

    fn signature_input() -> impl Strategy<Value = String> {
        prop_oneof![
            hostile_string(200),
            any_bytes(300).prop_map(|b| STANDARD.encode(b)),
            // Text files of a few lines, base64'd as Tauri wraps .sig files.
            proptest::collection::vec(hostile_string(120), 0..6)
                .prop_map(|lines| STANDARD.encode(lines.join("\n"))),
            // The real signature with one character replaced.
            (0usize..SIG_FILE.len(), any::<char>()).prop_map(|(i, c)| {
                let mut chars: Vec<char> = SIG_FILE.chars().collect();
                let i = i % chars.len();
                chars[i] = c;
                STANDARD.encode(chars.into_iter().collect::<String>())
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn signatures_parse_or_are_refused_with_the_fix(s in signature_input()) {
            if let Err(e) = parse_signature(&s) {
                prop_assert_eq!(refusal(&e), (422, "invalid_signature"));
                prop_assert!(e.detail.contains(".sig file"), "{}", e.detail);
            }
        }

        #[test]
        fn surrounding_whitespace_does_not_change_a_signature(pre in "[ \t\r\n]{0,3}", post in "[ \t\r\n]{0,3}") {
            let (_, key) = parse_public_key(PUBKEY_LINE).unwrap();
            prop_assert_eq!(parse_signature(&format!("{pre}{}{post}", tauri_signature())).unwrap(), key);
        }

        #[test]
        fn public_keys_parse_or_are_refused(s in prop_oneof![
            hostile_string(200),
            any_bytes(120).prop_map(|b| STANDARD.encode(b)),
            proptest::collection::vec(hostile_string(60), 0..4).prop_map(|l| l.join("\n")),
            (0usize..PUBKEY_LINE.len(), "[A-Za-z0-9+/=]").prop_map(|(i, c)| {
                let mut s = PUBKEY_LINE.to_owned();
                s.replace_range(i..i + 1, &c);
                s
            }),
        ]) {
            match parse_public_key(&s) {
                // The canonical form is the bare key line, which parses to itself.
                Ok((line, id)) => {
                    let again = parse_public_key(&line).unwrap();
                    prop_assert_eq!(&again.0, &line);
                    prop_assert_eq!(again.1, id);
                    prop_assert_eq!(key_id_hex(&id).len(), 16);
                }
                Err(e) => prop_assert_eq!(refusal(&e), (422, "invalid_public_key")),
            }
        }

        #[test]
        fn key_ids_print_as_16_upper_hex_digits(id in prop::array::uniform8(any::<u8>())) {
            let hex = key_id_hex(&id);
            prop_assert_eq!(hex.len(), 16);
            prop_assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
        }
    }
}
