//! The log notifier: one JSON line per event, on stdout or appended to a file; the lines of
//! a claimed batch go out in one write.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::json;

use super::{rfc3339, BoxFuture, Notification, Notifier, NotifyError};
use crate::event::Alert;

/// Room reserved per line of a batch: a budget alert's line is 400 to 600 bytes.
const TYPICAL_LINE_BYTES: usize = 640;

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

    /// The line for one event, without its newline.
    #[must_use]
    pub fn line(notification: &Notification<'_>) -> String {
        let mut line = Vec::new();
        match append_line(notification, &mut line) {
            Ok(()) => String::from_utf8(line).unwrap_or_default(),
            Err(error) => json!({ "error": error.to_string() }).to_string(),
        }
    }

    /// Writes the lines of `notifications` with one write (more only when the sink takes part
    /// of it): one outcome per notification, delivered when its whole line was written.
    fn write_lines(&self, notifications: &[Notification<'_>]) -> Vec<Result<(), NotifyError>> {
        let mut lines = Vec::with_capacity(notifications.len().saturating_mul(TYPICAL_LINE_BYTES));
        let ends: Vec<Result<usize, NotifyError>> = notifications
            .iter()
            .map(|notification| {
                let start = lines.len();
                match append_line(notification, &mut lines) {
                    Ok(()) => {
                        lines.push(b'\n');
                        Ok(lines.len())
                    }
                    Err(error) => {
                        lines.truncate(start);
                        Err(NotifyError::permanent(format!(
                            "cannot build the log line: {error}"
                        )))
                    }
                }
            })
            .collect();
        let (written, failure) = match &self.sink {
            Sink::Stdout => write_counted(&mut std::io::stdout().lock(), &lines),
            Sink::File(file) => match file.lock() {
                Ok(mut file) => write_counted(&mut *file, &lines),
                Err(_) => (0, Some(std::io::Error::other("log file lock poisoned"))),
            },
        };
        outcomes(ends, written, failure.as_ref())
    }
}

/// Each line's outcome from where it ends in the bytes to write, given how many of those
/// were `written`: a line written whole is delivered, the others are retried.
fn outcomes(
    ends: Vec<Result<usize, NotifyError>>,
    written: usize,
    failure: Option<&std::io::Error>,
) -> Vec<Result<(), NotifyError>> {
    ends.into_iter()
        .map(|end| match end {
            Ok(end) if end <= written => Ok(()),
            Ok(_) => Err(NotifyError::retry(match failure {
                Some(error) => format!("cannot write the log line: {error}"),
                None => "cannot write the log line".to_owned(),
            })),
            Err(error) => Err(error),
        })
        .collect()
}

/// Appends the line for one event (without its newline) to `line`.
fn append_line(notification: &Notification<'_>, line: &mut Vec<u8>) -> serde_json::Result<()> {
    let (record, alert) = (notification.record, &notification.alert);
    if record.kind == crate::outbox::DIGEST {
        line.extend_from_slice(digest_line(notification).as_bytes());
        return Ok(());
    }
    serde_json::to_writer(
        line,
        &Line {
            alert: &record.kind,
            endpoint: &record.endpoint,
            figures: Figures(alert),
            id: &record.id,
            livemode: record.livemode,
            received_at: rfc3339(record.received_at),
            summary: alert.headline(),
        },
    )
}

/// An alert's line. Its keys are in alphabetical order, the order the line has always had.
#[derive(Serialize)]
struct Line<'a> {
    alert: &'a str,
    endpoint: &'a str,
    figures: Figures<'a>,
    id: &'a str,
    livemode: Option<bool>,
    received_at: String,
    summary: Option<String>,
}

/// An alert's figures with their keys in alphabetical order, those it lacks left out.
struct Figures<'a>(&'a Alert);

impl Serialize for Figures<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let alert = self.0;
        let mut map = serializer.serialize_map(None)?;
        let texts = [
            ("amount", &alert.amount),
            ("budget_id", &alert.budget_id),
            ("currency", &alert.currency),
            ("limit", &alert.limit),
            ("organization", &alert.organization),
            ("period", &alert.period),
            ("period_end", &alert.period_end),
            ("period_start", &alert.period_start),
            ("project", &alert.project),
            ("runs_out_at", &alert.runs_out_at),
        ];
        for (key, value) in texts {
            if let Some(value) = value {
                map.serialize_entry(key, value)?;
            }
        }
        for (key, value) in [
            ("threshold_percent", alert.threshold_percent),
            ("usage_percent", alert.usage_percent),
        ] {
            if let Some(value) = value {
                map.serialize_entry(key, &value)?;
            }
        }
        map.end()
    }
}

/// A digest's line: its subject, and the alerts it stands for without their raw events (each
/// is stored and can be read by its id). Digests are rare, so this one is built as a map.
fn digest_line(notification: &Notification<'_>) -> String {
    let (record, alert) = (notification.record, &notification.alert);
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
    json!({
        "alert": record.kind,
        "alerts": alerts,
        "endpoint": record.endpoint,
        "figures": alert,
        "id": record.id,
        "livemode": record.livemode,
        "received_at": rfc3339(record.received_at),
        "summary": subject,
    })
    .to_string()
}

/// Writes `bytes` to `out`: how many of them reached it, and why no more did. Bytes count
/// once a flush after their write succeeds (stdout's `LineWriter` may take bytes into its
/// buffer; a `File` has none), so a line counted is a line written; a line not counted is
/// written again (at least once).
fn write_counted(out: &mut impl Write, bytes: &[u8]) -> (usize, Option<std::io::Error>) {
    let mut written = 0;
    while let Some(rest) = bytes.get(written..).filter(|rest| !rest.is_empty()) {
        let taken = match out.write(rest) {
            Ok(0) => return (written, Some(ErrorKind::WriteZero.into())),
            Ok(taken) => taken,
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(error) => return (written, Some(error)),
        };
        if let Err(error) = flush(out) {
            return (written, Some(error));
        }
        written = written.saturating_add(taken).min(bytes.len());
    }
    (written, None)
}

/// Flushes `out`, again when interrupted.
fn flush(out: &mut impl Write) -> std::io::Result<()> {
    loop {
        match out.flush() {
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

impl Notifier for LogNotifier {
    fn kind(&self) -> &'static str {
        "log"
    }

    fn delivery_batch(&self) -> usize {
        self.claim_batch()
    }

    fn delivery_is_a_log_line(&self) -> bool {
        true
    }

    fn deliver<'a>(
        &'a self,
        notification: &'a Notification<'a>,
    ) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            self.write_lines(std::slice::from_ref(notification))
                .pop()
                .unwrap_or_else(|| Err(NotifyError::retry("the log line was not written")))
        })
    }

    fn deliver_all<'a>(
        &'a self,
        notifications: &'a [Notification<'a>],
    ) -> BoxFuture<'a, Vec<Result<(), NotifyError>>> {
        Box::pin(async move { self.write_lines(notifications) })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::store::EventRecord;

    /// The line as it was built before it was written straight from the figures: through a
    /// `serde_json::Map`, whose keys are sorted.
    fn line_through_a_map(notification: &Notification<'_>) -> String {
        let (record, alert) = (notification.record, &notification.alert);
        let mut line = serde_json::Map::new();
        line.insert("alert".into(), json!(record.kind));
        line.insert("endpoint".into(), json!(record.endpoint));
        line.insert("id".into(), json!(record.id));
        line.insert("livemode".into(), json!(record.livemode));
        line.insert("received_at".into(), json!(rfc3339(record.received_at)));
        line.insert("summary".into(), json!(alert.headline()));
        line.insert("figures".into(), json!(alert));
        serde_json::Value::Object(line).to_string()
    }

    fn text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(any::<String>())
    }

    prop_compose! {
        fn alerts()(
            texts in proptest::collection::vec(text(), 10),
            threshold_percent in proptest::option::of(any::<u64>()),
            usage_percent in proptest::option::of(any::<u64>()),
        ) -> Alert {
            let mut texts = texts.into_iter();
            let mut next = || texts.next().flatten();
            Alert {
                organization: next(),
                project: next(),
                budget_id: next(),
                threshold_percent,
                usage_percent,
                amount: next(),
                limit: next(),
                currency: next(),
                period: next(),
                period_start: next(),
                period_end: next(),
                runs_out_at: next(),
            }
        }
    }

    proptest! {
        #[test]
        fn a_line_is_byte_for_byte_the_line_built_through_a_map(
            alert in alerts(),
            endpoint in any::<String>(),
            kind in any::<String>(),
            id in any::<String>(),
            livemode in proptest::option::of(any::<bool>()),
            received_at in 0u64..4_000_000_000,
        ) {
            prop_assume!(kind != crate::outbox::DIGEST);
            let record = EventRecord {
                endpoint,
                id,
                kind,
                livemode,
                received_at,
                body: "{}".into(),
            };
            let notification = Notification { record: &record, alert };
            prop_assert_eq!(LogNotifier::line(&notification), line_through_a_map(&notification));
        }
    }

    /// Takes at most `per_call` bytes a call, then fails once `limit` bytes are taken; an
    /// interruption before every call.
    struct ShortWriter {
        taken: Vec<u8>,
        per_call: usize,
        limit: usize,
        interrupt: bool,
    }

    impl Write for ShortWriter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(ErrorKind::Interrupted.into());
            }
            let room = self.limit - self.taken.len();
            if room == 0 {
                return Err(std::io::Error::other("no space left"));
            }
            let take = bytes.len().min(self.per_call).min(room);
            self.taken.extend_from_slice(&bytes[..take]);
            Ok(take)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_short_write_delivers_exactly_the_lines_written_whole() {
        let bytes = b"line one\nline two\nline three\n";
        let mut sink = ShortWriter {
            taken: Vec::new(),
            per_call: 4,
            limit: 14,
            interrupt: false,
        };
        let (written, failure) = write_counted(&mut sink, bytes);
        assert_eq!((written, sink.taken.as_slice()), (14, &bytes[..14]));
        let failure = failure.expect("the write failed");
        let ends = vec![
            Ok(9),
            Ok(18),
            Err(NotifyError::permanent("cannot build the log line")),
            Ok(29),
        ];
        let outcomes = outcomes(ends, written, Some(&failure));
        assert_eq!(outcomes[0], Ok(()));
        assert!(
            outcomes[1].as_ref().is_err_and(
                |e| e.retryable && e.message == "cannot write the log line: no space left"
            )
        );
        assert!(outcomes[2].as_ref().is_err_and(|e| !e.retryable));
        assert!(outcomes[3].as_ref().is_err_and(|e| e.retryable));

        let mut roomy = ShortWriter {
            taken: Vec::new(),
            per_call: 5,
            limit: 100,
            interrupt: false,
        };
        let (written, failure) = write_counted(&mut roomy, bytes);
        assert_eq!((written, roomy.taken.as_slice()), (bytes.len(), &bytes[..]));
        assert!(failure.is_none());
    }

    /// stdout's `LineWriter` takes bytes into its buffer before they reach the sink: only
    /// bytes that reached it count.
    #[test]
    fn bytes_a_line_writer_only_buffered_are_not_counted_as_written() {
        let bytes = b"line one\nline two\nline three\n";
        for limit in 0..bytes.len() {
            let mut out = std::io::LineWriter::new(ShortWriter {
                taken: Vec::new(),
                per_call: 4,
                limit,
                interrupt: false,
            });
            let (written, failure) = write_counted(&mut out, bytes);
            let reached = &out.get_ref().taken;
            assert!(failure.is_some(), "limit {limit}");
            assert!(written <= reached.len(), "limit {limit}: counted {written}");
            assert_eq!(&reached[..written], &bytes[..written]);
        }
    }

    fn record(id: &str) -> EventRecord {
        EventRecord {
            endpoint: "perf".into(),
            id: id.into(),
            kind: "usage.threshold_reached".into(),
            livemode: Some(true),
            received_at: 1_764_600_000,
            body: "{}".into(),
        }
    }

    #[tokio::test]
    async fn a_batch_is_appended_to_the_file_in_order_one_line_each() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("alerts.log");
        let notifier = LogNotifier::open(path.to_str().expect("path"), 0o600).expect("open");
        let records: Vec<EventRecord> = ["a", "b", "c"].into_iter().map(record).collect();
        let notifications: Vec<Notification<'_>> = records.iter().map(Notification::of).collect();
        let outcomes = notifier.deliver_all(&notifications).await;
        assert_eq!(outcomes, vec![Ok(()), Ok(()), Ok(())]);
        assert_eq!(notifier.deliver(&notifications[0]).await, Ok(()));
        let written = std::fs::read_to_string(&path).expect("read");
        let ids: Vec<String> = written
            .lines()
            .map(|line| {
                let line: serde_json::Value = serde_json::from_str(line).expect("JSON");
                line["id"].as_str().expect("id").to_owned()
            })
            .collect();
        assert_eq!(ids, ["a", "b", "c", "a"]);
    }

    #[tokio::test]
    async fn a_batch_to_a_full_device_is_retried_whole() {
        let notifier = LogNotifier::open("/dev/full", 0o600).expect("open /dev/full");
        let records: Vec<EventRecord> = ["a", "b"].into_iter().map(record).collect();
        let notifications: Vec<Notification<'_>> = records.iter().map(Notification::of).collect();
        let outcomes = notifier.deliver_all(&notifications).await;
        assert_eq!(outcomes.len(), 2);
        assert!(outcomes.iter().all(|outcome| outcome
            .as_ref()
            .is_err_and(|e| e.retryable && e.message.starts_with("cannot write the log line"))));
    }
}
