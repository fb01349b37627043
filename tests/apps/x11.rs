//! A virtual X display (Xvfb) and `xdotool`, for the tests of programs that have no headless
//! way to answer their own PIN dialog (Chromium, Thunderbird): the test types into the dialog as
//! a user does.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (and reaped) on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A virtual X display (Xvfb) on a display number it picks itself.
pub struct Display {
    _xvfb: Proc,
    /// `:N`, for `DISPLAY`.
    pub name: String,
}

impl Display {
    pub fn start() -> Display {
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-nolisten", "tcp", "-screen", "0"])
            .arg("1280x1024x24")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run Xvfb ({e}): install xvfb"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let number: u32 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("Xvfb did not say its display: {line:?}"));
        Display {
            _xvfb: Proc(child),
            name: format!(":{number}"),
        }
    }

    /// `xdotool ARGS` on this display, feeding it `stdin`; its output.
    pub fn xdotool(&self, args: &[&str], stdin: &[u8]) -> std::process::Output {
        super::run(
            Command::new("xdotool")
                .args(args)
                .env("DISPLAY", &self.name),
            stdin,
        )
    }

    /// The id of the first window named `name`, if there is one.
    pub fn window(&self, name: &str) -> Option<String> {
        let out = self.xdotool(&["search", "--name", name], b"");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .map(str::to_string)
    }

    /// Waits (up to 60 s) for a window named `name`; its id. Panics with `why()` otherwise.
    pub fn wait_window(&self, name: &str, why: impl Fn() -> String) -> String {
        let start = Instant::now();
        loop {
            if let Some(w) = self.window(name) {
                return w;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no window {name:?} after 60 s\n{}",
                why()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
