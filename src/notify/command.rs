//! The command notifier: runs a program (no shell) with its arguments, the event's body on
//! stdin and its figures in `PERFHOOK_*` environment variables, under a deadline. Exit 0 is
//! success; anything else is retried, with the exit status and the end of stderr in the
//! job's history. The child gets a clean environment: the receiver's secrets never reach it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::wording::Wording;
use super::{BoxFuture, Notification, Notifier, NotifyError};

/// Bytes of stdout or stderr kept for the job's history.
const OUTPUT_KEPT: usize = 2048;
/// How long the outputs are read after the program has exited.
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// `kind = "command"` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSettings {
    /// The program: an absolute path, or a name looked up in PATH.
    pub program: PathBuf,
    /// Its arguments, passed as they are.
    #[serde(default)]
    pub args: Vec<String>,
    /// How long one run may take before it is killed.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    30_000
}

impl CommandSettings {
    /// Checks the program and deadline.
    ///
    /// # Errors
    /// What is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.program.as_os_str().is_empty() {
            return Err("program must be given".into());
        }
        if self.timeout_ms == 0 || self.timeout_ms > super::MAX_SEND_TIMEOUT_MS {
            return Err(format!(
                "timeout_ms must be 1 to {}",
                super::MAX_SEND_TIMEOUT_MS
            ));
        }
        if !program_exists(&self.program) {
            return Err(format!(
                "program {} is not an executable file (or is not on PATH)",
                self.program.display()
            ));
        }
        Ok(())
    }
}

/// Whether `program` names an executable file, directly or through PATH.
fn program_exists(program: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |path: &std::path::Path| {
        std::fs::metadata(path)
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() > 1 {
        return executable(program);
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| executable(&dir.join(program))))
}

/// Runs a program per event.
#[derive(Debug)]
pub struct CommandNotifier {
    settings: CommandSettings,
}

impl CommandNotifier {
    /// # Errors
    /// A bad setting.
    pub fn build(settings: &CommandSettings) -> Result<Self, String> {
        settings.validate()?;
        Ok(Self {
            settings: settings.clone(),
        })
    }
}

/// The variables the program gets: the event and, where the alert has them, its figures.
fn environment(notification: &Notification<'_>) -> Vec<(&'static str, String)> {
    let (record, alert) = (notification.record, &notification.alert);
    let mut vars = vec![
        ("PERFHOOK_ENDPOINT", record.endpoint.clone()),
        ("PERFHOOK_EVENT_ID", record.id.clone()),
        ("PERFHOOK_EVENT_TYPE", record.kind.clone()),
        ("PERFHOOK_SUBJECT", Wording::of(record, alert).subject),
    ];
    let optional = [
        ("PERFHOOK_LIVEMODE", record.livemode.map(|l| l.to_string())),
        ("PERFHOOK_ORGANIZATION", alert.organization.clone()),
        ("PERFHOOK_PROJECT", alert.project.clone()),
        (
            "PERFHOOK_THRESHOLD_PERCENT",
            alert.threshold_percent.map(|p| p.to_string()),
        ),
        (
            "PERFHOOK_USAGE_PERCENT",
            alert.usage_percent.map(|p| p.to_string()),
        ),
        ("PERFHOOK_AMOUNT", alert.amount.clone()),
        ("PERFHOOK_LIMIT", alert.limit.clone()),
        ("PERFHOOK_CURRENCY", alert.currency.clone()),
        ("PERFHOOK_PERIOD_START", alert.period_start.clone()),
        ("PERFHOOK_PERIOD_END", alert.period_end.clone()),
        ("PERFHOOK_RUNS_OUT_AT", alert.runs_out_at.clone()),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            // A value from the body: no control characters in an environment variable.
            vars.push((name, value.chars().filter(|c| !c.is_control()).collect()));
        }
    }
    vars
}

/// The end of an output, as one printable line.
fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(OUTPUT_KEPT);
    String::from_utf8_lossy(bytes.get(start..).unwrap_or_default())
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

impl Notifier for CommandNotifier {
    fn kind(&self) -> &'static str {
        "command"
    }

    fn claim_batch(&self) -> usize {
        4
    }

    fn deliver<'a>(
        &'a self,
        notification: &'a Notification<'a>,
    ) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            let program = self.settings.program.display().to_string();
            let mut command = tokio::process::Command::new(&self.settings.program);
            command
                .args(&self.settings.args)
                .env_clear()
                .envs(environment(notification))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                // Its own process group, so a timeout stops everything it started.
                .process_group(0)
                .kill_on_drop(true);
            // PATH and the locale, and nothing else of the receiver's environment.
            for name in ["PATH", "LANG", "LC_ALL"] {
                if let Some(value) = std::env::var_os(name) {
                    command.env(name, value);
                }
            }
            let mut child = command.spawn().map_err(|error| match error.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                    NotifyError::permanent(format!(
                        "configuration error: cannot run {program}: {error}"
                    ))
                }
                // Out of processes, files or memory: worth another try.
                _ => NotifyError::retry(format!("cannot start {program}: {error}")),
            })?;
            let group = child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .and_then(rustix::process::Pid::from_raw);
            let body = notification.record.body.clone().into_bytes();
            let stdin = child.stdin.take();
            let stdout = child.stdout.take();
            let stderr = child.stderr.take();
            let deadline = Duration::from_millis(self.settings.timeout_ms);
            let run = async {
                // Input and output together: a program that writes before it reads (or
                // never reads) must not block on a full pipe.
                let feed = async move {
                    if let Some(mut stdin) = stdin {
                        // A program that does not read its input is not a failure.
                        let _ = stdin.write_all(&body).await;
                    }
                };
                let readers =
                    tokio::spawn(
                        async move { tokio::join!(last_bytes(stdout), last_bytes(stderr)) },
                    );
                let (status, ()) = tokio::join!(child.wait(), feed);
                // The outputs end with the program, unless something it started in the
                // background still holds them: its verdict does not wait for that.
                let (out, err) = match tokio::time::timeout(OUTPUT_GRACE, readers).await {
                    Ok(Ok(both)) => both,
                    _ => (Vec::new(), Vec::new()),
                };
                (status, out, err)
            };
            let outcome = tokio::time::timeout(deadline, run).await;
            if let Some(group) = group {
                // What it left running (a background job of a script) goes with it.
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            match outcome {
                Err(_) => Err(NotifyError::retry(format!(
                    "{program} did not finish within {} ms and was killed",
                    self.settings.timeout_ms
                ))),
                Ok((Err(error), _, _)) => Err(NotifyError::retry(format!(
                    "{program} could not be waited for: {error}"
                ))),
                Ok((Ok(status), _, _)) if status.success() => Ok(()),
                Ok((Ok(status), out, err)) => {
                    let said = tail(if err.is_empty() { &out } else { &err });
                    Err(NotifyError::retry(format!(
                        "{program} exited with {status}{}",
                        if said.is_empty() {
                            String::new()
                        } else {
                            format!(": {said}")
                        }
                    )))
                }
            }
        })
    }
}

/// The last [`OUTPUT_KEPT`] bytes of an output, read to its end (memory stays bounded
/// however much the program writes).
async fn last_bytes<R: tokio::io::AsyncRead + Unpin>(reader: Option<R>) -> Vec<u8> {
    let Some(mut reader) = reader else {
        return Vec::new();
    };
    let mut kept: Vec<u8> = Vec::with_capacity(OUTPUT_KEPT * 2);
    let mut chunk = [0u8; 8192];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                kept.extend_from_slice(chunk.get(..read).unwrap_or_default());
                if kept.len() > OUTPUT_KEPT * 2 {
                    kept.drain(..kept.len() - OUTPUT_KEPT);
                }
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventRecord;

    /// A program that writes more than a pipe holds and never reads a body larger than a
    /// pipe holds: fed and drained together, it finishes; fed first, both sides would block
    /// until the deadline.
    #[test]
    fn a_big_body_and_a_big_output_do_not_block_each_other() {
        let notifier = CommandNotifier::build(&CommandSettings {
            program: "sh".into(),
            args: vec!["-c".into(), "head -c 300000 /dev/zero; exit 0".into()],
            timeout_ms: 5_000,
        })
        .expect("notifier");
        let record = EventRecord {
            endpoint: "perf".into(),
            id: "evt_big".into(),
            kind: "usage.threshold_reached".into(),
            livemode: Some(true),
            received_at: 0,
            body: format!("{{\"pad\":\"{}\"}}", "x".repeat(200_000)),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let outcome = runtime.block_on(notifier.deliver(&Notification::of(&record)));
        assert_eq!(outcome, Ok(()));
    }
}
