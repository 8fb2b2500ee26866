mod paillier_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "veil", about = "Veil: private ML inference")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Paillier keys and numbers (python-paillier pheutil compatible).
    #[command(subcommand)]
    Paillier(paillier_cmd::PaillierCmd),
}

fn main() {
    match Cli::parse().cmd {
        Cmd::Paillier(c) => {
            if let Err(e) = paillier_cmd::run(c) {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
    }
}
