//! `GET /api/v1/openapi.json`
fn main() -> std::process::ExitCode {
    atlas_hub::hosts::serve_function("/api/v1/openapi.json")
}
