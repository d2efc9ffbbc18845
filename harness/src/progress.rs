//! What the harness tells the person watching: image-build steps,
//! accelerator notes (each once per run), and on a terminal a live
//! spinner line while something slow happens. The engine never prints on
//! its own; it goes through a `Progress` handed to it.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A cheap, cloneable progress sink writing to stderr.
#[derive(Debug, Clone)]
pub struct Progress {
    tty: bool,
    quiet: bool,
    notes: Arc<Mutex<BTreeSet<String>>>,
}

impl Progress {
    /// Progress on stderr; live lines only when stderr is a terminal.
    pub fn stderr() -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            quiet: false,
            notes: Arc::default(),
        }
    }

    /// A sink that prints nothing (tests of the harness itself).
    pub fn quiet() -> Progress {
        Progress {
            tty: false,
            quiet: true,
            notes: Arc::default(),
        }
    }

    /// Prints one line (`bootrig: ...`).
    pub fn line(&self, text: &str) {
        if !self.quiet {
            eprintln!("bootrig: {text}");
        }
    }

    /// Prints a note once per run, however many VMs hit it.
    pub fn note(&self, text: &str) {
        let fresh = self
            .notes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(text.to_string());
        if fresh {
            self.line(text);
        }
    }

    /// A live spinner with `message` while the returned guard lives, on a
    /// terminal only; it is cleared when the guard is dropped, whatever
    /// path the caller leaves by.
    pub fn spinner(&self, message: &str) -> Spinner {
        if !self.tty || self.quiet {
            return Spinner(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Spinner(Some(bar))
    }
}

/// A live progress line, cleared on drop (see [`Progress::spinner`]).
#[derive(Debug)]
pub struct Spinner(Option<indicatif::ProgressBar>);

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
    }
}
