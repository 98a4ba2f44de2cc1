use anyhow::Context;
use tenant_app::cli::{self, Command};
use tenant_app::lambda;

fn main() -> anyhow::Result<()> {
    let command = cli::parse(lambda::report_usage_error);
    if let Command::ProbeHolder(args) = &command {
        // No logging, no runtime: a holder only sleeps.
        tenant_app::probe::proc_::run_holder(&args.canary);
    }
    cli::init_logging();
    match command {
        Command::Serve(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(args.workers())
                .enable_all()
                .build()
                .context("failed to start the async runtime")?;
            runtime.block_on(tenant_app::http::serve(&args))?;
        }
        Command::Lambda(args) => {
            // One invocation at a time: a current-thread runtime starts no workers (a shorter
            // INIT) and keeps lambda_runtime's per-invocation `set_var` single-threaded.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("failed to start the async runtime")?;
            runtime.block_on(tenant_app::lambda::run(&args))?;
        }
        Command::ProbeHolder(_) => unreachable!("a holder never returns"),
    }
    Ok(())
}
