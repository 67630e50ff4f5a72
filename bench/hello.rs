//! The HTTP floor of the benchmark: the smallest `vercel_runtime` 2.x function, answering
//! every request `200 hello`. It starts and serves exactly as the Hub's `api/` functions do
//! (`VERCEL_DEV_PORT`, "Dev server listening"), with no configuration, state or database.

use vercel_runtime::{Error, Request, Response, ResponseBody, service_fn};

async fn hello(_req: Request) -> Result<Response<ResponseBody>, Error> {
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(ResponseBody::from("hello"))?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    vercel_runtime::run(service_fn(hello)).await
}
