//! `peer <ID> <PORT> <TRACKER_HOST>[:<TRACKER_PORT>] [options]`: serves the
//! files in its directory, downloads on request, and offers a shell.

use p2pshare::console::{say, say_err, Console, LogSink};
use p2pshare::peer::downloads::{self, Completion, Origin};
use p2pshare::peer::{config, Peer};
use p2pshare::shell;
use p2pshare::web::{peer_ui::PeerUi, WebServer};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

fn main() {
    // Through the console: on a terminal a warning lands above the prompt.
    // Milliseconds: what happens within a second (a version noticed,
    // published, fetched, swapped in) is what a log is read for.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .target(env_logger::Target::Pipe(Box::new(LogSink::new())))
        .init();
    // args_os: an argument that is not UTF-8 is a usage error, not a panic.
    let cfg = match config::parse(std::env::args_os().skip(1)) {
        Ok(Some(c)) => c,
        Ok(None) => {
            say(format_args!("{}", config::USAGE));
            return;
        }
        Err(e) => {
            say_err(format_args!("error: {e}\n{}", config::USAGE));
            std::process::exit(2);
        }
    };
    if let Some(path) = &cfg.secret_file {
        if let Err(e) = p2pshare::secure::start(path) {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
    // Bound before the peer starts, so a taken port fails cleanly.
    let web = match cfg.http_config().map(|h| WebServer::bind(&h)).transpose() {
        Ok(w) => w,
        Err(e) => {
            say_err(format_args!("error: {e}"));
            std::process::exit(1);
        }
    };
    let peer = match Peer::start(cfg) {
        Ok(p) => p,
        Err(e) => {
            say_err(format_args!("error: {e}"));
            std::process::exit(1);
        }
    };
    {
        let c = peer.config();
        say(format_args!(
            "peer {} listening on {}; sharing {} from {}; tracker{} {}",
            c.id,
            peer.listen_addr(),
            match peer.records().len() {
                1 => "1 file".to_string(),
                n => format!("{n} files"),
            },
            peer.files_dir().display(),
            if c.more_trackers.is_empty() { "" } else { "s" },
            c.trackers().join(", ")
        ));
        let _ = std::io::stdout().flush();
    }
    if let Some(web) = web {
        let banner = web.banner();
        if let Err(e) = web.spawn(PeerUi::new(peer.clone())) {
            say_err(format_args!("error: {e}"));
            std::process::exit(1);
        }
        for line in banner {
            say(&line);
        }
        let _ = std::io::stdout().flush();
    }
    // What an earlier run left unfinished (a `--get` of it resumes now).
    for p in peer.paused() {
        if !peer.config().gets.contains(&p.name) {
            say(p.line());
        }
    }
    if let Err(e) = p2pshare::peer::session::health::start(&peer) {
        say_err(format_args!(
            "warning: cannot check the tracker at start: {e}"
        ));
    }
    let on_signal = peer.clone();
    if let Err(e) = ctrlc::set_handler(move || {
        let kept = on_signal.shutdown();
        Console::restore();
        let mut out = std::io::stdout().lock();
        // Below whatever the live line or the prompt left on the screen.
        let start = if std::io::IsTerminal::is_terminal(&out) {
            "\r\x1b[K"
        } else {
            ""
        };
        for line in kept {
            let _ = writeln!(out, "{start}{line}");
        }
        let _ = out.flush();
        std::process::exit(0);
    }) {
        say_err(format_args!(
            "error: cannot install the signal handler: {e}"
        ));
        std::process::exit(1);
    }
    let (background, refused_gets) = start_gets(&peer);
    let status = if peer.config().serve {
        loop {
            std::thread::park_timeout(Duration::from_secs(3600));
        }
    } else {
        let status = shell::run(&peer);
        if peer.is_cancelled() {
            // Ctrl-C or SIGTERM: the handler says what was kept and exits.
            loop {
                std::thread::park();
            }
        }
        // EOF or exit: let `--get` downloads finish first.
        let failed_gets = refused_gets + background.iter().filter(|t| !t.wait()).count();
        if failed_gets > 0 && status == 0 && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            1
        } else {
            status
        }
    };
    peer.leave();
    std::process::exit(status);
}

/// Starts each `--get` through the peer's background downloads; each
/// prints its lines when done. The completions say how they ended; the count
/// is of those that could not even start.
fn start_gets(peer: &Arc<Peer>) -> (Vec<Completion>, usize) {
    let (mut completions, mut refused) = (Vec::new(), 0);
    for name in peer.config().gets.clone() {
        let started = downloads::get(peer, &name, Origin::Startup, shell::say_outcome);
        match started {
            Ok(completion) => completions.push(completion),
            Err(e) => {
                say_err(format_args!("error: {e}"));
                refused += 1;
            }
        }
    }
    (completions, refused)
}
