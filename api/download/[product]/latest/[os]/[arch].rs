//! `/download/{product}/latest/{os}/{arch}`
fn main() -> std::process::ExitCode {
    atlas_hub::hosts::serve_function("/download/{product}/latest/{os}/{arch}")
}
