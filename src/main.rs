use clap::Parser;

fn main() {
    fairnc::util::alloc::tune();
    fairnc::util::progress::report_background_to(Box::new(fairnc::util::bars::Bars::new()));
    let cli = match fairnc::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            // Usage errors exit 2, as clap's own do; the message is one line naming the flag.
            eprintln!("error: {}", fairnc::cli::one_line(&e));
            std::process::exit(2);
        }
    };
    if let Err(e) = fairnc::cli::run(cli) {
        // One line: the file and the problem, as the context chain reads.
        let msg = format!("{e:#}").replace('\n', " ");
        eprintln!("error: {msg}");
        std::process::exit(1);
    }
}
