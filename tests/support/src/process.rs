//! Child processes that can never outlive the test binary.
//!
//! Every child is started through `setpriv --pdeathsig KILL` from one supervisor thread that
//! lives as long as the process: when the test binary exits (normally, by panic or by SIGKILL)
//! the kernel kills the children. `Drop` also kills them, for fixtures that end earlier.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

fn supervisor() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static TX: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("testsupport-supervisor".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    // The receiver only disappears if the requesting test already panicked.
                    if let Err(mpsc::SendError(Ok(mut orphan))) = reply.send(cmd.spawn()) {
                        orphan.kill().ok();
                    }
                }
                // All senders are gone only at process exit; park so the children stay parented.
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn supervisor thread");
        Mutex::new(tx)
    })
}

/// A running child process, killed when dropped. Its stdout and stderr go to `log`.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ChildProcess {
    /// Starts `program args...` with output written to `log`.
    pub fn spawn(name: &str, program: &Path, args: &[String], log: &Path) -> Result<Self> {
        Self::spawn_with_env(name, program, args, log, &[])
    }

    /// Like [`ChildProcess::spawn`], with extra environment variables for the child only.
    pub fn spawn_with_env(
        name: &str,
        program: &Path,
        args: &[String],
        log: &Path,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Result<Self> {
        let out =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let mut cmd = Command::new("setpriv");
        cmd.arg("--pdeathsig")
            .arg("KILL")
            .arg("--")
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (tx, rx) = mpsc::channel();
        supervisor()
            .lock()
            .map_err(|_| anyhow::anyhow!("supervisor lock poisoned"))?
            .send((cmd, tx))
            .context("supervisor thread is gone")?;
        let child = rx
            .recv()
            .context("supervisor thread is gone")?
            .with_context(|| format!("start {name} ({})", program.display()))?;
        Ok(Self {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    /// Fails with the tail of the log if the process has already exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited with {status}; last output:\n{}",
                self.name,
                self.log_tail(30)
            );
        }
        Ok(())
    }

    /// The last `lines` lines of the process's output.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls `probe` every 100 ms until it returns true, `child` dies, or `timeout` passes.
pub async fn wait_until<F, Fut>(
    what: &str,
    child: &mut ChildProcess,
    timeout: Duration,
    mut probe: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        child.check_alive()?;
        if probe().await {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!(
                "{what} not ready after {timeout:?}; last output:\n{}",
                child.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
