//! Strategies shared by the property tests of the parsers of untrusted input.

use proptest::prelude::*;

/// Characters attackers and broken clients send: any Unicode scalar, printable ASCII, and
/// the ones parsers get wrong (NUL, line breaks, path and shell metacharacters, quotes,
/// bidirectional controls, BOM, DEL, NEL).
pub fn hostile_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        4 => proptest::char::range('!', '~'),
        3 => proptest::sample::select(vec![
            '\0', '\n', '\r', '\t', ' ', '/', '\\', '.', '%', '\'', '"', ';', '$', '`', '|',
            '&', '<', '>', '*', '?', '{', '}', '[', ']', '=', ',', '#', '-', '_', '+', 'v',
            '0', 'a', 'Z', '\u{7F}', '\u{85}', '\u{200F}', '\u{202E}', '\u{2066}', '\u{FEFF}',
            'é', 'ß', '\u{10FFFF}',
        ]),
    ]
}

/// A string of up to `max` [`hostile_char`]s.
pub fn hostile_string(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(hostile_char(), 0..max).prop_map(|v| v.into_iter().collect())
}

/// Arbitrary bytes, invalid UTF-8 included.
pub fn any_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// A SemVer 2.0 version in canonical form (what the Hub stores and prints).
pub fn semver_string() -> impl Strategy<Value = String> {
    let number = prop_oneof![4 => 0u64..30, 1 => any::<u64>()];
    let numeric_id = number.clone().prop_map(|n| n.to_string());
    let alnum_id = "[0-9A-Za-z-]{0,4}[A-Za-z-][0-9A-Za-z-]{0,4}";
    let pre = proptest::collection::vec(
        prop_oneof![numeric_id, alnum_id.prop_map(String::from)],
        0..4,
    );
    let build = proptest::collection::vec("[0-9A-Za-z-]{1,6}", 0..3);
    (number.clone(), number.clone(), number, pre, build).prop_map(|(ma, mi, pa, pre, build)| {
        let mut v = format!("{ma}.{mi}.{pa}");
        if !pre.is_empty() {
            v.push('-');
            v.push_str(&pre.join("."));
        }
        if !build.is_empty() {
            v.push('+');
            v.push_str(&build.join("."));
        }
        v
    })
}

/// The status and code of a refusal, for compact assertions.
pub fn refusal(e: &crate::http::ApiError) -> (u16, &'static str) {
    (e.status.as_u16(), e.code.as_str())
}
