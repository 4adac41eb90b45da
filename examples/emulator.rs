//! Runs the emulator on its own until Ctrl-C, with the flags `vod-ingest emulator` will take
//! (this example stands in for that subcommand until the CLI exists).
//!
//! `cargo run --example emulator -- --listen 127.0.0.1:9000 --data-dir /tmp/emu`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use vod_ingest::emulator::{self, EmulatorConfig};
use vod_ingest::secret::Secret;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long, default_value = "emulator-access-key-id")]
    access_key_id: String,
    #[arg(
        long,
        env = "EMULATOR_ACCESS_KEY_SECRET",
        default_value = "emulator-access-key-secret"
    )]
    access_key_secret: String,
    /// Lifetime of UploadAuth credentials, in seconds.
    #[arg(long, default_value_t = 3000)]
    credential_ttl: u64,
    #[arg(long)]
    callback_url: Option<String>,
    #[arg(long, env = "EMULATOR_CALLBACK_KEY")]
    callback_key: Option<String>,
    #[arg(long, default_value = "cn-shanghai")]
    region: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let mut config = EmulatorConfig::new(args.data_dir);
    config.listen = args.listen;
    config.access_key_id = args.access_key_id;
    config.access_key_secret = Secret::new(args.access_key_secret);
    config.credential_ttl = Duration::from_secs(args.credential_ttl);
    config.callback_url = args.callback_url;
    config.callback_key = args.callback_key.map(Secret::new);
    config.region = args.region;
    emulator::serve(config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
