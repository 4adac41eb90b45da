use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = vod_ingest::cli::Cli::parse();
    vod_ingest::telemetry::init_logging("info");
    match vod_ingest::commands::dispatch(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vod-ingest: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
