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
        if self.timeout_ms == 0 {
            return Err("timeout_ms must be at least 1".into());
        }
        Ok(())
    }
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
                .kill_on_drop(true);
            // PATH and the locale, and nothing else of the receiver's environment.
            for name in ["PATH", "LANG", "LC_ALL"] {
                if let Some(value) = std::env::var_os(name) {
                    command.env(name, value);
                }
            }
            let mut child = command.spawn().map_err(|error| {
                NotifyError::permanent(format!(
                    "configuration error: cannot run {program}: {error}"
                ))
            })?;
            let body = notification.record.body.clone().into_bytes();
            let mut stdin = child.stdin.take();
            let mut stdout = child.stdout.take();
            let mut stderr = child.stderr.take();
            let run = async {
                if let Some(stdin) = stdin.as_mut() {
                    // A program that does not read its input is not a failure.
                    let _ = stdin.write_all(&body).await;
                }
                drop(stdin.take());
                let mut out = Vec::new();
                let mut err = Vec::new();
                let (status, _, _) = tokio::join!(
                    child.wait(),
                    async {
                        if let Some(stdout) = stdout.as_mut() {
                            let _ = stdout.read_to_end(&mut out).await;
                        }
                    },
                    async {
                        if let Some(stderr) = stderr.as_mut() {
                            let _ = stderr.read_to_end(&mut err).await;
                        }
                    }
                );
                (status, out, err)
            };
            let deadline = Duration::from_millis(self.settings.timeout_ms);
            match tokio::time::timeout(deadline, run).await {
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
