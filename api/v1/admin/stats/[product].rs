//! `/api/v1/admin/stats/{product}`
fn main() -> std::process::ExitCode {
    atlas_hub::hosts::serve_function("/api/v1/admin/stats/{product}")
}
