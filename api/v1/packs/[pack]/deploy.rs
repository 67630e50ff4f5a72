//! `/api/v1/packs/{pack}/deploy`
fn main() -> std::process::ExitCode {
    atlas_hub::hosts::serve_function("/api/v1/packs/{pack}/deploy")
}
