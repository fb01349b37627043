//! `openssl s_server` for the TLS client-authentication tests: started on 127.0.0.1 on a port it
//! picks, its output (stdout and stderr) in a log file, killed on drop.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `openssl s_server -accept 127.0.0.1:0 ARGS`.
pub struct SServer {
    child: Option<Child>,
    /// The port it listens on.
    pub port: u16,
    /// Where its output goes.
    pub log: PathBuf,
}

impl SServer {
    /// Starts `openssl s_server -accept 127.0.0.1:0 ARGS` in `dir` (relative paths in `args` are
    /// relative to it), without the machine's `OPENSSL_CONF`, and waits (up to 10 s) for the port
    /// it says it accepts on. Panics with its output if it ends or says nothing.
    pub fn start<S: AsRef<OsStr>>(dir: &Path, log: PathBuf, args: &[S]) -> SServer {
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("openssl")
            .current_dir(dir)
            .args(["s_server", "-accept", "127.0.0.1:0"])
            .args(args)
            .env_remove("OPENSSL_CONF")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("run openssl s_server");
        let mut server = SServer {
            child: Some(child),
            port: 0,
            log,
        };
        let start = Instant::now();
        loop {
            let text = server.log_text();
            if let Some(port) = text
                .lines()
                .find_map(|l| l.strip_prefix("ACCEPT 127.0.0.1:"))
                .and_then(|p| p.trim().parse().ok())
            {
                server.port = port;
                return server;
            }
            if let Ok(Some(status)) = server.child.as_mut().unwrap().try_wait() {
                panic!("openssl s_server exited ({status}):\n{text}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "openssl s_server did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the server printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (up to 10 s) for the server to end by itself (`-naccept`); its output.
    pub fn finish(mut self) -> String {
        let mut child = self.child.take().unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.log_text()
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
