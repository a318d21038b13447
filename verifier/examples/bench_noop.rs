//! The no-op anchor of `bench/run.sh`: an actix-web server with one worker
//! whose every route reads the request body and answers `200` with an empty
//! body, and does nothing else.
//! What `/verify` does beyond this is what the verifier costs.
//!
//! `cargo run --release -p mcp-verifier --example bench_noop -- 127.0.0.1:0`
//! prints `LISTEN <addr>` once bound, then serves until killed.

fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_string());
    actix_web::rt::System::new().block_on(async move {
        let server = actix_web::HttpServer::new(|| {
            // The body is read (and dropped): a POST answered without reading
            // its body costs actix the connection, which would make this
            // anchor slower than the services it is compared with.
            actix_web::App::new().default_service(actix_web::web::to(
                |_body: actix_web::web::Bytes| async { actix_web::HttpResponse::Ok().finish() },
            ))
        })
        .workers(1)
        .bind(listen)?;
        for addr in server.addrs() {
            println!("LISTEN {addr}");
        }
        server.run().await
    })
}
