use std::process::ExitCode;

use clap::Parser;
use switchboard::{
    Server,
    config::{Cli, Command},
    server::shutdown_signal,
    store, telemetry,
};

#[tokio::main]
async fn main() -> ExitCode {
    // A missing .env is the normal case.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    telemetry::init(cli.config.log_format);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => store::connect(&cli.config)
            .await
            .map(|_| tracing::info!("migrations applied"))
            .map_err(|err| err.to_string()),
        Command::Serve => match Server::build(cli.config).await {
            Ok(server) => server
                .run(shutdown_signal())
                .await
                .map_err(|err| err.to_string()),
            Err(err) => Err(err.to_string()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}
