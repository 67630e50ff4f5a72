//! `/download/runner/install`
fn main() -> std::process::ExitCode {
    atlas_hub::hosts::serve_function("/download/runner/install")
}
