//! The page keys of a `table` result (Flink's table view: `N`, `P`, `L`, `G`, `Q`), read
//! one at a time from the terminal while the query runs: without echo and without waiting
//! for Enter, but with the terminal's signals kept, so Ctrl-C still cancels the query.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Reads keys from stdin on a thread and hands each to
/// [`crate::sink::terminal::table_key`] until dropped; the drop stops the thread and gives
/// the terminal back its mode, before the next prompt reads a line.
pub struct PageKeys {
    done: Arc<AtomicBool>,
    quit: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    saved: libc::termios,
    fd: i32,
}

impl PageKeys {
    /// Starts reading when stdin is a terminal whose mode can be set (None otherwise: the
    /// result then shows as before, without keys). `on_quit` runs when `Q` is pressed.
    pub fn start(on_quit: impl Fn() + Send + 'static) -> Option<PageKeys> {
        let (fd, saved) = stdin_mode()?;
        let mut keys = saved;
        keys.c_lflag &= !(libc::ICANON | libc::ECHO);
        keys.c_cc[libc::VMIN] = 1;
        keys.c_cc[libc::VTIME] = 0;
        // SAFETY: a valid descriptor and a termios read from it.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &keys) } != 0 {
            return None;
        }
        let done = Arc::new(AtomicBool::new(false));
        let quit = Arc::new(AtomicBool::new(false));
        let (d, q) = (done.clone(), quit.clone());
        let thread = std::thread::Builder::new()
            .name("weir-page-keys".into())
            .spawn(move || {
                let mut buf = [0u8; 32];
                while !d.load(Ordering::SeqCst) {
                    crate::sink::terminal::table_tick();
                    // Once the result has ended, what is typed is left for the prompt.
                    if !crate::sink::terminal::table_showing() {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        continue;
                    }
                    let mut p = libc::pollfd {
                        fd,
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd; a timeout keeps the thread stoppable.
                    let ready = unsafe { libc::poll(&mut p, 1, 100) };
                    if ready <= 0 || p.revents & libc::POLLIN == 0 {
                        continue;
                    }
                    // SAFETY: reads at most buf.len() bytes into buf.
                    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                    if n <= 0 {
                        // End of input: nothing more to read.
                        break;
                    }
                    let keys = &buf[..n as usize];
                    // A function or arrow key's escape sequence (ESC and more, read at
                    // once) is not a page key; a lone ESC is Esc.
                    if keys.len() > 1 && keys[0] == 0x1b {
                        continue;
                    }
                    if keys.iter().any(|&b| {
                        crate::sink::terminal::table_key(b) == crate::sink::terminal::TableKey::Quit
                    }) {
                        q.store(true, Ordering::SeqCst);
                        on_quit();
                        // What is typed after Q is left for the prompt.
                        break;
                    }
                }
            })
            .ok();
        crate::sink::terminal::table_keys(true);
        Some(PageKeys {
            done,
            quit,
            thread,
            saved,
            fd,
        })
    }

    /// Whether `Q` was pressed.
    pub fn quit(&self) -> bool {
        self.quit.load(Ordering::SeqCst)
    }
}

impl Drop for PageKeys {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // SAFETY: the descriptor and the mode read from it in `start`.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

/// Gives the terminal back the mode it had when the shell started if the shell is ended by
/// `SIGTERM` or `SIGHUP`, then exits with 128 plus the signal's number (143, 129), as the
/// signal itself would have: otherwise a shell killed while the prompt (raw mode) or a
/// `table` result's page keys (no echo, no line editing) hold the terminal leaves it so.
/// Does nothing when stdin is not a terminal.
pub fn restore_terminal_on_termination(rt: &tokio::runtime::Runtime) {
    let Some((fd, saved)) = stdin_mode() else {
        return;
    };
    use tokio::signal::unix::{SignalKind, signal};
    // Registered here, before the first prompt, so no signal finds the default action.
    let (Ok(mut term), Ok(mut hup)) = rt.block_on(async {
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        )
    }) else {
        return;
    };
    rt.spawn(async move {
        let code = tokio::select! {
            _ = term.recv() => 128 + libc::SIGTERM,
            _ = hup.recv() => 128 + libc::SIGHUP,
        };
        // SAFETY: the descriptor and the mode read from it above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
        eprintln!();
        crate::message::info("terminated by a signal: the shell exits");
        std::process::exit(code);
    });
}

/// Stdin's descriptor and its terminal mode, when stdin is a terminal whose mode can be read.
fn stdin_mode() -> Option<(i32, libc::termios)> {
    let stdin = std::io::stdin();
    if !std::io::IsTerminal::is_terminal(&stdin) {
        return None;
    }
    let fd = stdin.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it for a valid descriptor.
    let mut mode: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut mode) } != 0 {
        return None;
    }
    Some((fd, mode))
}
