//! SIGHUP: the running receiver takes new secrets, endpoint rules, notifier settings and
//! TLS certificates without dropping a connection. Each of those lives in a [`Slot`] that a
//! request or a delivery reads once when it starts, so a reload never changes anything
//! half-way through one. A new configuration that cannot run, or that changes what cannot
//! be swapped in place (endpoints' names and paths, the set of notifiers, HTTPS on or off),
//! is refused whole and the running one stays. Changes to `[server]` limits and listener,
//! HSTS, `[storage]` and `[outbox]` keep their start-up values until a restart, with a
//! warning.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use thiserror::Error;

use crate::config::{AppConfig, Endpoint};
use crate::notify::{Notifier, Notifiers};

/// A value that requests read once each and a reload replaces.
#[derive(Debug)]
pub struct Slot<T: ?Sized>(RwLock<Arc<T>>);

impl<T: ?Sized> Slot<T> {
    /// A slot holding `value`.
    #[must_use]
    pub fn new(value: Arc<T>) -> Self {
        Self(RwLock::new(value))
    }

    /// The value now. Readers keep what they got for as long as they hold it.
    #[must_use]
    pub fn current(&self) -> Arc<T> {
        // A poisoned lock only means a writer panicked between two whole values.
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Readers from now on get `value`.
    pub fn replace(&self, value: Arc<T>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = value;
    }
}

/// One endpoint's live rules (secrets, scheme, tolerance, mode, allowlist, notifiers).
pub type EndpointSlot = Slot<Endpoint>;
/// One notifier as its worker sees it.
pub type NotifierSlot = Slot<dyn Notifier>;

/// Why a new configuration was not taken. The running one stays.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReloadError {
    /// Endpoints were added, removed, renamed or moved.
    #[error("endpoints changed: {0}; adding, removing or moving an endpoint needs a restart")]
    Endpoints(String),
    /// Notifiers were added or removed.
    #[error("notifiers changed: {0}; adding or removing a notifier needs a restart")]
    Notifiers(String),
    /// HTTPS was turned on or off.
    #[error("server.tls was {0}; turning HTTPS on or off needs a restart")]
    Tls(&'static str),
}

/// What a reload may replace, held by the running application.
#[derive(Debug, Clone, Default)]
pub struct Reloader {
    /// Endpoint name → (path, slot).
    pub(crate) endpoints: BTreeMap<String, (String, Arc<EndpointSlot>)>,
    /// Notifier name → slot.
    pub(crate) notifiers: BTreeMap<String, Arc<NotifierSlot>>,
    /// The HTTPS certificate, when HTTPS is on.
    pub(crate) certificate: Option<Arc<crate::tls::CertificateSlot>>,
}

impl Reloader {
    /// Takes `config` and `notifiers` (built from it) if only reloadable parts changed.
    ///
    /// # Errors
    /// [`ReloadError`] naming what needs a restart; nothing is replaced then.
    pub fn apply(&self, config: &AppConfig, mut notifiers: Notifiers) -> Result<(), ReloadError> {
        let running: Vec<(&str, &str)> = self
            .endpoints
            .iter()
            .map(|(name, (path, _))| (name.as_str(), path.as_str()))
            .collect();
        let mut wanted: Vec<(&str, &str)> = config
            .endpoints
            .iter()
            .map(|e| (e.name.as_str(), e.path.as_str()))
            .collect();
        wanted.sort_unstable();
        if running != wanted {
            return Err(ReloadError::Endpoints(format!(
                "running {}, new {}",
                describe(&running),
                describe(&wanted)
            )));
        }
        let running: Vec<&String> = self.notifiers.keys().collect();
        let mut wanted: Vec<&String> = notifiers.keys().collect();
        wanted.sort_unstable();
        if running != wanted {
            return Err(ReloadError::Notifiers(format!(
                "running {running:?}, new {wanted:?}"
            )));
        }
        match (&self.certificate, &config.tls) {
            (Some(_), None) => return Err(ReloadError::Tls("removed")),
            (None, Some(_)) => return Err(ReloadError::Tls("added")),
            _ => {}
        }
        // Everything is checked; from here nothing can fail, so no reload is partial.
        for endpoint in &config.endpoints {
            if let Some((_, slot)) = self.endpoints.get(&endpoint.name) {
                slot.replace(Arc::new(endpoint.clone()));
            }
        }
        for (name, slot) in &self.notifiers {
            if let Some(notifier) = notifiers.remove(name) {
                slot.replace(notifier);
            }
        }
        if let (Some(slot), Some(tls)) = (&self.certificate, &config.tls) {
            slot.replace(Arc::new(tls.key.clone()));
        }
        Ok(())
    }
}

fn describe(endpoints: &[(&str, &str)]) -> String {
    let names: Vec<String> = endpoints
        .iter()
        .map(|(name, path)| format!("{name} {path}"))
        .collect();
    format!("[{}]", names.join(", "))
}
