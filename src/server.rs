//! The application: build it on a listener (port 0 works) from its parts, run it until it
//! is stopped (gracefully: stop accepting and finish in-flight requests; or at once), then
//! stop the workers and close the store.

use crate::body_budget::BodyBudget;
use crate::http_server::{self, ContinueGate, Https, Role};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_http::body::BoxBody;
use actix_http::{Request, Response};
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{Condition, DefaultHeaders};
use actix_web::{web, App};
use anyhow::Context;
use tokio::sync::watch;

use crate::admin::{self, AdminState, RateLimits};
use crate::clock::{Clock, SystemClock};
use crate::config::AppConfig;
use crate::metrics::Metrics;
use crate::notify::Notifiers;
use crate::outbox::{run_retention, Outbox, Wakers};
use crate::reload::{EndpointSlot, Reloader};
use crate::routes;
use crate::state::AppState;
use crate::store::sled::SledStore;
use crate::store::Store;
use crate::tls::CertificateSlot;
use utoipa::OpenApi as _;
use utoipa_actix_web::AppExt as _;

/// Wakes every outbox worker when any replica sharing the PostgreSQL database queues jobs
/// (`LISTEN perfhook_jobs`), reconnecting after a failure; the workers' polling covers the
/// gaps.
async fn wake_on_notify(options: crate::store::postgres::PostgresOptions, wakers: Wakers) {
    loop {
        let listened =
            crate::store::postgres::PostgresStore::listen(&options, || wakers.all()).await;
        if let Err(error) = listened {
            tracing::debug!(%error, "postgres: LISTEN ended; polling until it is back");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The `Expect: 100-continue` gate: a delivery the receiver would refuse before reading its
/// body is refused before its sender is told to send one.
struct ReceiverGate {
    endpoints: routes::EndpointPaths,
    state: web::Data<AppState>,
    /// `Strict-Transport-Security` over HTTPS: the gate's answers skip the App's middleware.
    hsts: Option<String>,
}

impl ReceiverGate {
    /// `Ok` lets actix send `100 Continue` and hand the request to the App; `Err` is the
    /// answer instead, the App's JSON error.
    fn check(&self, request: &Request) -> Result<(), Response<BoxBody>> {
        routes::continue_gate(request, &self.endpoints, &self.state).map_err(|error| {
            let mut answer = actix_web::ResponseError::error_response(&error);
            if let Some(value) = &self.hsts {
                if let Ok(value) = actix_web::http::header::HeaderValue::from_str(value) {
                    answer
                        .headers_mut()
                        .insert(actix_web::http::header::STRICT_TRANSPORT_SECURITY, value);
                }
            }
            answer.into()
        })
    }
}

/// HTTPS settings for a listener, when `[server.tls]` is set.
fn https(
    certificate: Option<&Arc<CertificateSlot>>,
    tls: Option<&crate::config::ServerTls>,
) -> anyhow::Result<Option<Https>> {
    match (certificate, tls) {
        (Some(slot), Some(tls)) => Ok(Some(Https {
            config: crate::tls::server_config(Arc::clone(slot)).map_err(anyhow::Error::msg)?,
            hsts: tls.hsts.as_str().into(),
        })),
        _ => Ok(None),
    }
}

/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// What the application runs on besides its configuration: the embedded defaults in the
/// service, a memory store, a fixed clock and a stub mail transport in tests.
#[derive(Debug)]
pub struct Parts {
    /// Where events and jobs are kept.
    pub store: Arc<dyn Store>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Notifiers by name.
    pub notifiers: Notifiers,
}

/// A built application, bound and ready to run.
pub struct Application {
    address: SocketAddr,
    server: Server,
    /// The operator API's address and server, when it is served.
    admin: Option<(SocketAddr, Server)>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    outbox: Outbox,
    notifier_names: Vec<String>,
    reloader: Reloader,
    audit_retention: Duration,
    /// Notifies once when an endpoint's sender falls silent, and once when it resumes.
    silence: crate::silence::SilenceWatch,
    /// Whether other replicas share the store (PostgreSQL).
    shared_store: bool,
    /// Notified to stop at once, even while a graceful stop waits for in-flight requests.
    stop_now: Arc<tokio::sync::Notify>,
}

/// Stops a running [`Application`] from elsewhere: `perfhook serve` on its signals, tests.
#[derive(Debug, Clone)]
pub struct Stopper {
    server: ServerHandle,
    now: Arc<tokio::sync::Notify>,
}

impl Stopper {
    /// Stops accepting and lets in-flight requests finish (up to 30 s); returns at once.
    pub fn gracefully(&self) {
        let server = self.server.clone();
        tokio::spawn(async move { server.stop(true).await });
    }

    /// Stops at once: open connections are closed, in-flight requests cut short. The store
    /// is still closed cleanly (everything answered 2xx is already durable).
    pub fn at_once(&self) {
        self.now.notify_one();
    }
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Opens the store (sled in the data directory, or the PostgreSQL database, migrated),
    /// builds the notifiers and binds the listener.
    ///
    /// # Errors
    /// When the store cannot be opened, a notifier cannot be built, or the address is taken.
    pub async fn build(config: &AppConfig) -> anyhow::Result<Self> {
        let store: Arc<dyn Store> = match &config.postgres {
            Some(options) => Arc::new(
                crate::store::postgres::PostgresStore::connect(options)
                    .await
                    .context("cannot open the PostgreSQL store ([storage.postgres])")?,
            ),
            None => Arc::new(
                SledStore::open(&config.data_dir, config.store).with_context(|| {
                    format!("cannot open the store in {}", config.data_dir.display())
                })?,
            ),
        };
        let notifiers = crate::notify::build(&config.notifiers).map_err(anyhow::Error::msg)?;
        let mut app = Self::build_with(
            config,
            Parts {
                store,
                clock: Arc::new(SystemClock),
                notifiers,
            },
        )?;
        if let Some(options) = &config.postgres {
            app.shared_store = true;
            tokio::spawn(wake_on_notify(options.clone(), app.outbox.wakers()));
        }
        Ok(app)
    }

    /// Binds the listener and wires the handlers and the outbox to `parts`.
    ///
    /// # Errors
    /// When the address is taken.
    pub fn build_with(config: &AppConfig, parts: Parts) -> anyhow::Result<Self> {
        let Parts {
            store,
            clock,
            notifiers,
        } = parts;
        let notifier_names: Vec<String> = notifiers.keys().cloned().collect();
        let metrics = Arc::new(Metrics::default());
        let endpoints: Vec<(String, Arc<EndpointSlot>)> = config
            .endpoints
            .iter()
            .map(|endpoint| {
                (
                    endpoint.path.clone(),
                    Arc::new(EndpointSlot::new(Arc::new(endpoint.clone()))),
                )
            })
            .collect();
        let fields = crate::fields::EndpointFields::new(
            config
                .endpoints
                .iter()
                .zip(&endpoints)
                .map(|(endpoint, (_, slot))| (endpoint.name.clone(), Arc::clone(slot)))
                .collect(),
        );
        let outbox = Outbox::new(
            &store,
            &notifiers,
            &config.outbox,
            &clock,
            &metrics,
            &fields,
        );
        let state = web::Data::new(AppState {
            store: Arc::clone(&store),
            clock: Arc::clone(&clock),
            metrics: Arc::clone(&metrics),
            wakers: outbox.wakers(),
            outbox: outbox.health(),
            body_limit: config.body_limit_bytes,
            body_deadline: config.body_read_timeout,
            trusted_proxies: config.trusted_proxies.clone(),
            client_ip_header: config.client_ip_header,
            body_budget: Arc::new(BodyBudget::new(
                config.max_inflight_body_bytes as usize,
                config.body_limit_bytes,
            )),
            retention: config.retention,
            refused_limiter: Arc::new(crate::state::refused_limiter()),
        });
        let listener = TcpListener::bind(config.listen)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let address = listener.local_addr()?;
        let mut reloader = Reloader {
            endpoints: config
                .endpoints
                .iter()
                .zip(&endpoints)
                .map(|(endpoint, (path, slot))| {
                    (endpoint.name.clone(), (path.clone(), Arc::clone(slot)))
                })
                .collect(),
            notifiers: outbox.notifier_slots(),
            certificate: None,
        };
        // HSTS on every answer perfhook writes when it speaks HTTPS (and never over plain
        // HTTP, where the header would be a promise nobody can keep).
        let hsts = config.tls.as_ref().map(|tls| tls.hsts.clone());
        let paths: routes::EndpointPaths = endpoints
            .iter()
            .map(|(path, slot)| (path.clone(), Arc::clone(slot)))
            .collect();
        let gate = Arc::new(ReceiverGate {
            endpoints: paths,
            state: state.clone(),
            hsts: hsts.clone(),
        });
        let app = move || {
            let headers = hsts.as_ref().map_or_else(DefaultHeaders::new, |value| {
                DefaultHeaders::new().add(("Strict-Transport-Security", value.as_str()))
            });
            let mut app = App::new()
                .wrap(Condition::new(hsts.is_some(), headers))
                .app_data(state.clone())
                .route("/healthz", web::get().to(routes::healthz))
                .route("/readyz", web::get().to(routes::readyz))
                .route("/metrics", web::get().to(routes::metrics));
            for (path, slot) in &endpoints {
                app = app.service(
                    web::resource(path.as_str())
                        .app_data(web::Data::from(Arc::clone(slot)))
                        .route(web::post().to(routes::receive))
                        .default_service(web::to(routes::method_not_allowed)),
                );
            }
            app.default_service(web::to(routes::not_found))
        };
        let certificate = config
            .tls
            .as_ref()
            .map(|tls| Arc::new(CertificateSlot::new(Arc::new(tls.key.clone()))));
        reloader.certificate = certificate.clone();
        // `perfhook serve` listens for the stop signals itself, from before the store opens:
        // actix would register them only when the server is first polled, after start-up,
        // and a SIGTERM in between would kill the process instead of stopping it.
        let mut builder = actix_server::Server::build()
            .max_concurrent_connections(config.max_connections)
            .disable_signals()
            .shutdown_timeout(30);
        if config.workers > 0 {
            builder = builder.workers(config.workers);
        }
        let https = https(certificate.as_ref(), config.tls.as_ref())?;
        let gate: ContinueGate = Arc::new(move |request: &Request| gate.check(request));
        let builder = http_server::listen(
            builder,
            "perfhook-receiver",
            listener,
            app,
            https.clone(),
            Role::Receiver(gate),
        )?;
        let admin = match config.admin {
            Some(listen) => Some(admin_server(
                listen,
                AdminState {
                    limits: RateLimits::new(Arc::clone(&clock)),
                    store: Arc::clone(&store),
                    clock: Arc::clone(&clock),
                    endpoints: reloader
                        .endpoints
                        .iter()
                        .map(|(name, (_, slot))| (name.clone(), Arc::clone(slot)))
                        .collect(),
                    wakers: outbox.wakers(),
                    retention: config.retention,
                    metrics: Arc::clone(&metrics),
                    started_at: clock.now(),
                },
                certificate.as_ref(),
                https,
            )?),
            None => None,
        };
        let silence = crate::silence::SilenceWatch {
            store: Arc::clone(&store),
            clock: Arc::clone(&clock),
            endpoints: reloader
                .endpoints
                .values()
                .map(|(_, slot)| Arc::clone(slot))
                .collect(),
            activity: Arc::clone(&metrics),
            wakers: outbox.wakers(),
            retention: config.retention,
            started_at: clock.now(),
        };
        Ok(Self {
            shared_store: false,
            stop_now: Arc::default(),
            silence,
            address,
            server: builder.run(),
            admin,
            store,
            clock,
            outbox,
            notifier_names,
            reloader,
            audit_retention: config.audit_retention,
        })
    }

    /// What SIGHUP may replace while the application runs.
    #[must_use]
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// The port actually bound.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The address actually bound.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The operator API's address, when it is served.
    #[must_use]
    pub fn admin_address(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(address, _)| *address)
    }

    /// The receiver's actix handle (tests stop the server through it).
    #[must_use]
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Stops the application from elsewhere, gracefully or at once.
    #[must_use]
    pub fn stopper(&self) -> Stopper {
        Stopper {
            server: self.server.handle(),
            now: Arc::clone(&self.stop_now),
        }
    }

    /// Serves until stopped through [`Self::handle`] or [`Self::stopper`], then stops the
    /// workers and closes the store.
    ///
    /// # Errors
    /// When the server fails or the final flush fails.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let (stop, stopped) = watch::channel(false);
        // Jobs of a notifier removed from the config would otherwise wait for ever. Not with
        // a shared database: another replica may know a notifier this one does not yet (a
        // rolling change), and would lose its jobs.
        let buried = if self.shared_store {
            Ok(0)
        } else {
            self.store
                .bury_unconfigured(&self.notifier_names, self.clock.now_ms())
                .await
        };
        match buried {
            Ok(0) => {}
            Ok(buried) => tracing::error!(
                buried,
                "outbox: jobs of notifiers no longer configured are dead"
            ),
            Err(error) => {
                tracing::error!(%error, "outbox: cannot check for jobs of removed notifiers")
            }
        }
        let workers = self.outbox.spawn(&stopped);
        let silence = tokio::spawn(self.silence.run(stopped.clone()));
        let retention = tokio::spawn(run_retention(
            Arc::clone(&self.store),
            Arc::clone(&self.clock),
            RETENTION_EVERY,
            self.audit_retention,
            stopped,
        ));
        // The admin listener stops with the receiver (it does not watch signals itself).
        let admin = self.admin.map(|(_, server)| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        let mut server = self.server;
        let (served, graceful) = tokio::select! {
            served = &mut server => (served, true),
            () = self.stop_now.notified() => {
                // Dropping actix's server closes its listeners and stops its workers at once
                // (actix documents this), even while a graceful stop is waiting.
                drop(server);
                (Ok(()), false)
            }
        };
        if let Some((handle, task)) = admin {
            handle.stop(graceful).await;
            let _ = task.await;
        }
        let _ = stop.send(true);
        for worker in workers {
            let _ = worker.await;
        }
        let _ = retention.await;
        let _ = silence.await;
        self.store.close().await.context("final flush failed")?;
        tracing::info!("stopped");
        served.context("the HTTP server failed")
    }
}

/// The operator API's server: one worker, its own listener, HTTPS with the receiver's
/// certificate when the receiver has one.
fn admin_server(
    listen: SocketAddr,
    state: AdminState,
    certificate: Option<&Arc<CertificateSlot>>,
    https: Option<Https>,
) -> anyhow::Result<(SocketAddr, Server)> {
    let hsts = https.as_ref().map(|https| https.hsts.to_string());
    let listener = TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen} for the admin API ([admin] listen)"))?;
    let address = listener.local_addr()?;
    let ui = web::Data::new(crate::ui::UiState::new(
        Arc::clone(&state.clock),
        certificate.is_some(),
    ));
    let state = web::Data::new(state);
    let app = move || {
        let headers = hsts.as_ref().map_or_else(DefaultHeaders::new, |value| {
            DefaultHeaders::new().add(("Strict-Transport-Security", value.as_str()))
        });
        let (app, document) = App::new()
            .into_utoipa_app()
            .openapi(admin::ApiDoc::openapi())
            .configure(admin::configure)
            .split_for_parts();
        let document = admin::OpenApiJson(document.to_json().unwrap_or_default());
        app.wrap(Condition::new(hsts.is_some(), headers))
            .app_data(state.clone())
            .app_data(web::Data::new(document))
            .app_data(ui.clone())
            .configure(crate::ui::configure)
            .default_service(web::to(admin::not_found))
    };
    let builder = actix_server::Server::build()
        .workers(1)
        .max_concurrent_connections(256)
        .disable_signals()
        .shutdown_timeout(5);
    let server = http_server::listen(builder, "perfhook-admin", listener, app, https, Role::Admin)?;
    Ok((address, server.run()))
}
