//! The log notifier: one JSON line per event, on stdout or appended to a file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

use serde_json::json;

use super::{rfc3339, BoxFuture, Notification, Notifier, NotifyError};

/// Where the lines go.
#[derive(Debug)]
enum Sink {
    Stdout,
    File(Mutex<File>),
}

/// Writes one JSON line per event.
#[derive(Debug)]
pub struct LogNotifier {
    sink: Sink,
}

impl LogNotifier {
    /// `stdout`, or a file path opened for appending and given `mode` (whatever the umask,
    /// and also when the file already existed, if it is a regular file of this user's).
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn open(target: &str, mode: u32) -> Result<Self, String> {
        let sink = if target == "stdout" {
            Sink::Stdout
        } else {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(mode)
                .open(target)
                .map_err(|e| format!("cannot open {target} for appending: {e}"))?;
            crate::file_modes::restrict_open_file(&file, target, mode);
            Sink::File(Mutex::new(file))
        };
        Ok(Self { sink })
    }

    /// The line for one event.
    #[must_use]
    pub fn line(notification: &Notification<'_>) -> String {
        let (record, alert) = (notification.record, &notification.alert);
        let mut line = serde_json::Map::new();
        line.insert("alert".into(), json!(record.kind));
        line.insert("endpoint".into(), json!(record.endpoint));
        line.insert("id".into(), json!(record.id));
        line.insert("livemode".into(), json!(record.livemode));
        line.insert("received_at".into(), json!(rfc3339(record.received_at)));
        line.insert("summary".into(), json!(alert.headline()));
        line.insert("figures".into(), json!(alert));
        if record.kind == crate::outbox::DIGEST {
            // Its subject, and the alerts it stands for without their raw events (each is
            // stored and can be read by its id).
            let body: serde_json::Value = serde_json::from_str(&record.body).unwrap_or_default();
            let alerts: Vec<serde_json::Value> = body
                .pointer("/data/alerts")
                .and_then(serde_json::Value::as_array)
                .map(|alerts| {
                    alerts
                        .iter()
                        .map(|alert| {
                            let field = |name: &str| alert.get(name).cloned().unwrap_or_default();
                            json!({"endpoint": field("endpoint"), "id": field("id"),
                                   "type": field("type"), "received_at": field("received_at"),
                                   "subject": field("subject")})
                        })
                        .collect()
                })
                .unwrap_or_default();
            let subject = super::wording::Wording::of(record, alert).subject;
            line.insert("summary".into(), json!(subject));
            line.insert("alerts".into(), json!(alerts));
        }
        serde_json::Value::Object(line).to_string()
    }
}

impl Notifier for LogNotifier {
    fn kind(&self) -> &'static str {
        "log"
    }

    fn deliver<'a>(
        &'a self,
        notification: &'a Notification<'a>,
    ) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            let mut line = Self::line(notification);
            line.push('\n');
            let written = match &self.sink {
                Sink::Stdout => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(line.as_bytes()).and_then(|()| out.flush())
                }
                Sink::File(file) => {
                    let mut file = file
                        .lock()
                        .map_err(|_| NotifyError::retry("log file lock poisoned"))?;
                    file.write_all(line.as_bytes()).and_then(|()| file.flush())
                }
            };
            written.map_err(|e| NotifyError::retry(format!("cannot write the log line: {e}")))
        })
    }
}
