//! `/api/v1/releases/{product}/{version}/unyank`
fn main() -> std::process::ExitCode {
    atlas_hub::hosts::serve_function("/api/v1/releases/{product}/{version}/unyank")
}
