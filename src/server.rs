//! The application: build it on a listener (port 0 works), run it until SIGTERM or SIGINT,
//! then stop accepting, finish in-flight requests, stop the workers and flush.

use std::net::TcpListener;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use tokio::sync::{watch, Notify};

use crate::clock::unix_now;
use crate::config::AppConfig;
use crate::metrics::Metrics;
use crate::outbox::{run_retention, OutboxWorker};
use crate::routes;
use crate::state::AppState;
use crate::store::Store;

/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// A built application, bound and ready to run.
pub struct Application {
    port: u16,
    server: Server,
    store: Arc<Store>,
    worker: OutboxWorker,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Opens the store, builds the notifiers and binds the listener.
    ///
    /// # Errors
    /// When the store cannot be opened, a notifier cannot be built, or the address is taken.
    pub fn build(config: &AppConfig) -> anyhow::Result<Self> {
        let store = Arc::new(
            Store::open_with(&config.data_dir, config.store).with_context(|| {
                format!("cannot open the store in {}", config.data_dir.display())
            })?,
        );
        let notifiers = crate::notify::build(&config.notifiers).map_err(anyhow::Error::msg)?;
        let metrics = Arc::new(Metrics::default());
        let wake = Arc::new(Notify::new());
        let heartbeat = Arc::new(AtomicU64::new(unix_now()));
        let state = web::Data::new(AppState {
            store: Arc::clone(&store),
            metrics: Arc::clone(&metrics),
            outbox_wake: Arc::clone(&wake),
            worker_heartbeat: Arc::clone(&heartbeat),
            body_limit: config.body_limit_bytes,
            body_deadline: config.body_read_timeout,
            retention: config.retention,
        });
        let listener = TcpListener::bind(config.listen)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let port = listener.local_addr()?.port();
        let endpoints: Vec<web::Data<crate::config::Endpoint>> = config
            .endpoints
            .iter()
            .cloned()
            .map(web::Data::new)
            .collect();
        let mut server = HttpServer::new(move || {
            let mut app = App::new()
                .app_data(state.clone())
                .route("/healthz", web::get().to(routes::healthz))
                .route("/readyz", web::get().to(routes::readyz))
                .route("/metrics", web::get().to(routes::metrics));
            for endpoint in &endpoints {
                app = app.service(
                    web::resource(endpoint.path.as_str())
                        .app_data(endpoint.clone())
                        .route(web::post().to(routes::receive))
                        .default_service(web::to(routes::method_not_allowed)),
                );
            }
            app.default_service(web::to(routes::not_found))
        })
        .listen(listener)?
        .max_connections(config.max_connections)
        .shutdown_timeout(30);
        if config.workers > 0 {
            server = server.workers(config.workers);
        }
        let worker = OutboxWorker {
            store: Arc::clone(&store),
            notifiers,
            settings: config.outbox.clone(),
            wake,
            metrics,
            heartbeat,
        };
        Ok(Self {
            port,
            server: server.run(),
            store,
            worker,
        })
    }

    /// The port actually bound.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or SIGINT (actix handles both: stop accepting, finish in-flight
    /// requests), then stops the workers and flushes the store.
    ///
    /// # Errors
    /// When the server fails or the final flush fails.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let worker = tokio::spawn(self.worker.run(stopped.clone()));
        let retention = tokio::spawn(run_retention(
            Arc::clone(&self.store),
            RETENTION_EVERY,
            stopped,
        ));
        let served = self.server.await;
        let _ = stop.send(true);
        let _ = worker.await;
        let _ = retention.await;
        self.store.flush().await.context("final flush failed")?;
        tracing::info!("stopped");
        served.context("the HTTP server failed")
    }
}
