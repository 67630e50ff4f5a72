//! `/api/v1/packs/{pack}/channels/{channel}`
fn main() -> std::process::ExitCode {
    atlas_hub::hosts::serve_function("/api/v1/packs/{pack}/channels/{channel}")
}
