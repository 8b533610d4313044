//! Compiles the .proto contracts with protox (pure Rust), so no protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/couchestor/agent/v1/agent.proto",
        "proto/couchestor/coldtier/v1/coldtier.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
