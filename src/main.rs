use clap::Parser;

fn main() {
    fairnc::util::alloc::tune();
    let cli = fairnc::cli::Cli::parse();
    if let Err(e) = fairnc::cli::run(cli) {
        // One line: the file and the problem, as the context chain reads.
        let msg = format!("{e:#}").replace('\n', " ");
        eprintln!("error: {msg}");
        std::process::exit(1);
    }
}
