use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = vod_ingest::cli::Cli::parse();
    // The demo draws its own progress display; only problems are logged over it.
    let default_filter = match cli.command {
        vod_ingest::cli::Command::Demo(_) => "warn",
        _ => "info,sqlx=warn",
    };
    vod_ingest::telemetry::init_logging(default_filter);
    match vod_ingest::commands::dispatch(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vod-ingest: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
