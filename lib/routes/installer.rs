//! `GET /download/runner/install`: a POSIX `sh` installer for the Linux runner.

use std::sync::Arc;

use axum::extract::State;
use http::StatusCode;

use super::public_cache;
use crate::http::extract::{NoQuery, Query};
use crate::http::{ApiResult, respond};
use crate::state::AppState;

/// The script, with `@HUB_URL_QUOTED@` and `@HUB_URL@` replaced by the Hub's public URL
/// ([`script`]). It runs under `dash`:
/// detects the architecture, resolves the channel's latest runner through the Hub,
/// downloads through the Hub, verifies sha256, installs atomically, prints the version.
const SCRIPT: &str = r#"#!/bin/sh
# Atlas runner installer, served by the Atlas Hub.
#   curl -fsSL @HUB_URL@/download/runner/install | sh
# Environment: ATLAS_CHANNEL (default stable), ATLAS_INSTALL_DIR (default /usr/local/bin as
# root, else ~/.local/bin), ATLAS_HUB_URL (default @HUB_URL@), ATLAS_CLIENT_ID (default: a
# hash of /etc/machine-id; decides this machine's bucket in staged rollouts).
set -eu

default_hub=@HUB_URL_QUOTED@
hub="${ATLAS_HUB_URL:-$default_hub}"
hub="${hub%/}"
channel="${ATLAS_CHANNEL:-stable}"
name="atlas-runner"
tmp=""

fail() {
    echo "atlas-runner install: $*" >&2
    exit 1
}
cleanup() {
    if [ -n "$tmp" ] && [ -e "$tmp" ]; then rm -f "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

[ "$(uname -s)" = "Linux" ] || fail "the runner is for Linux; this is $(uname -s)"
machine="$(uname -m)"
case "$machine" in
    x86_64 | amd64) arch=x86_64 ;;
    aarch64 | arm64) arch=aarch64 ;;
    *) fail "unsupported architecture: $machine (supported: x86_64, aarch64)" ;;
esac

command -v curl >/dev/null 2>&1 || fail "curl is required"
if command -v sha256sum >/dev/null 2>&1; then
    sha256() { sha256sum "$@" | cut -d ' ' -f 1; }
elif command -v shasum >/dev/null 2>&1; then
    sha256() { shasum -a 256 "$@" | cut -d ' ' -f 1; }
else
    fail "sha256sum or shasum is required"
fi

# Staged rollouts bucket clients by id: a stable id of this machine that does not identify
# it (a hash of its machine id, never the id itself), so a reinstall lands in the same
# bucket. ATLAS_CLIENT_ID overrides it.
client_id="${ATLAS_CLIENT_ID:-}"
if [ -z "$client_id" ]; then
    for f in /etc/machine-id /var/lib/dbus/machine-id; do
        if [ -s "$f" ]; then
            client_id="$(printf 'atlas-runner:%s' "$(cat "$f")" | sha256)"
            break
        fi
    done
fi
set --
if [ -n "$client_id" ]; then set -- -H "x-atlas-client-id: $client_id"; fi

if [ -n "${ATLAS_INSTALL_DIR:-}" ]; then
    dir="$ATLAS_INSTALL_DIR"
elif [ "$(id -u)" = "0" ]; then
    dir=/usr/local/bin
else
    [ -n "${HOME:-}" ] || fail "HOME is not set; set ATLAS_INSTALL_DIR"
    dir="$HOME/.local/bin"
fi

meta="$(curl -fsS --retry 3 "$@" "$hub/api/v1/releases/runner/latest/linux/$arch?channel=$channel")" \
    || fail "no runner release on channel $channel for linux/$arch at $hub"

# The Hub's JSON is compact; "artifact":{...} (the primary artifact) holds no nested object.
artifact="$(printf '%s' "$meta" | sed -n 's/.*"artifact":{\([^}]*\)}.*/\1/p')"
field() {
    printf '%s' "$1" | sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p"
}
version="$(field "$meta" version)"
sha="$(field "$artifact" sha256)"
download_id="$(field "$artifact" downloadId)"
[ -n "$version" ] && [ -n "$sha" ] && [ -n "$download_id" ] \
    || fail "unexpected answer from $hub (is it an Atlas Hub?)"

mkdir -p "$dir" || fail "cannot create $dir"
tmp="$(mktemp "$dir/.$name.XXXXXX")" || fail "cannot write to $dir"
curl -fsSL --retry 3 -o "$tmp" "$hub/api/v1/download/$download_id" \
    || fail "download of runner $version failed"
actual="$(sha256 "$tmp")"
[ "$actual" = "$sha" ] || fail "checksum mismatch for runner $version: expected $sha, got $actual"
chmod 0755 "$tmp"
mv -f "$tmp" "$dir/$name" || fail "cannot install into $dir"
tmp=""
echo "installed atlas-runner $version ($channel, linux/$arch) to $dir/$name"
"#;

/// The installer script with this Hub's URL: in shell code only single-quoted (the
/// configuration admits nothing but a plain URL, and quoting holds even if it did not); in
/// the comment lines, only the characters such a URL has.
pub fn script(hub_url: &str) -> String {
    let quoted = format!("'{}'", hub_url.replace('\'', r"'\''"));
    let shown: String = hub_url
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || ":/.-_~[]".contains(*c))
        .collect();
    SCRIPT
        .replace("@HUB_URL_QUOTED@", &quoted)
        .replace("@HUB_URL@", &shown)
}

/// The runner's installer: `curl -fsSL <hub>/download/runner/install | sh`.
#[utoipa::path(
    get,
    path = "/download/runner/install",
    operation_id = "runnerInstaller",
    tag = "downloads",
    summary = "POSIX sh installer of the runner.",
    responses((status = 200, description = "The script.", content_type = "text/x-shellscript", body = String)),
    extensions(("x-problems" = json!([304]))),
)]
pub async fn get(State(state): State<Arc<AppState>>, _: Query<NoQuery>) -> ApiResult {
    Ok(respond::cached(
        StatusCode::OK,
        "text/x-shellscript; charset=utf-8",
        Some(script(&state.config.hub_url).into_bytes()),
        public_cache(&state),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the URL, running the script's first lines under `dash` never runs it: the
    /// default is one single-quoted word.
    #[test]
    fn the_hub_url_is_quoted_in_the_script_whatever_it_holds() {
        let dir = std::env::temp_dir().join(format!("atlas-installer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("ran");
        for hostile in [
            format!("http://x/$(touch {})", marker.display()),
            format!("http://x/`touch {}`", marker.display()),
            format!("http://x/'; touch {}; '", marker.display()),
            format!("http://x/\"; touch {}; \"", marker.display()),
            format!("http://x/\ntouch {}\n", marker.display()),
        ] {
            let text = script(&hostile);
            // Up to the line that uses the URL: the assignments.
            let head: String = text
                .lines()
                .take_while(|l| !l.starts_with("channel="))
                .map(|l| format!("{l}\n"))
                .collect();
            let out = std::process::Command::new("dash")
                .args(["-c", &format!("{head}printf '%s' \"$hub\"")])
                .env_remove("ATLAS_HUB_URL")
                .output()
                .unwrap();
            assert!(!marker.exists(), "{hostile:?} ran a command");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                hostile.trim_end_matches('/'),
                "{head}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
