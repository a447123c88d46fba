//! actix-web's `HttpServer`, assembled from its parts with its own defaults, for the two
//! things it does not offer the receiver: an `Expect: 100-continue` gate, and a connection
//! stream that gives actix-http's own 400/408/431 the JSON error body
//! ([`crate::http_errors`]).
//! HTTP/1.1 only, plain or over rustls.

use std::fmt;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_http::body::{BoxBody, MessageBody};
use actix_http::error::DispatchError;
use actix_http::{HttpService, KeepAlive, Request, Response};
use actix_server::{GracefulShutdownSignal, ServerBuilder};
use actix_service::ServiceFactoryExt as _;
use actix_service::{fn_service, map_config, IntoServiceFactory, ServiceFactory};
use actix_tls::accept::rustls_0_23::{Acceptor as TlsAcceptor, TlsStream};
use actix_tls::accept::TlsError;
use actix_web::dev::AppConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::http_errors::{JsonErrors, Scope};

/// Decides an `Expect: 100-continue` request before `100 Continue` is sent: `Ok` sends it and
/// hands the request on; `Err` is the answer instead.
pub type ContinueGate = Arc<dyn Fn(&Request) -> Result<(), Response<BoxBody>> + Send + Sync>;

/// Which listener: they differ in two hooks.
pub enum Role {
    /// The webhook receiver: its `Expect: 100-continue` gate, and JSON bodies on every one
    /// of actix-http's own answers ([`Scope::Anywhere`]: no answer body of the receiver
    /// holds CR or LF).
    Receiver(ContinueGate),
    /// The operator API: no gate, and JSON bodies on actix-http's own answers only as a
    /// connection's first write ([`Scope::FirstWrite`]: it sends stored requests back byte
    /// for byte, so a body there may end like a head).
    Admin,
}

impl fmt::Debug for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Receiver(_) => "Receiver",
            Self::Admin => "Admin",
        })
    }
}

/// HTTPS: the rustls configuration and the `Strict-Transport-Security` value.
#[derive(Clone)]
pub struct Https {
    /// Certificates and protocols.
    pub config: rustls::ServerConfig,
    /// Also written on actix-http's own answers, which skip the App's middleware.
    pub hsts: Arc<str>,
}

impl fmt::Debug for Https {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Https").finish_non_exhaustive()
    }
}

/// One worker's HTTP/1 service over a stream `T` (plain or TLS), with actix-web
/// HttpServer's defaults: keep-alive 5 s, 5 s for a request head, 1 s to close.
fn h1_service<T, F, I, S, B>(
    address: std::net::SocketAddr,
    shutdown: &GracefulShutdownSignal,
    gate: Option<ContinueGate>,
    app: &F,
) -> impl ServiceFactory<
    (T, Option<std::net::SocketAddr>),
    Config = (),
    Response = (),
    Error = DispatchError,
    InitError = (),
>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
    F: Fn() -> I,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<Response<BoxBody>> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    B: MessageBody + 'static,
{
    let shutdown = shutdown.clone();
    HttpService::build()
        // Idle keep-alive connections close when a graceful stop begins.
        .graceful_shutdown_signal(move || {
            let shutdown = shutdown.clone();
            async move { shutdown.notified().await }
        })
        .keep_alive(KeepAlive::Timeout(Duration::from_secs(5)))
        .client_request_timeout(Duration::from_secs(5))
        .client_disconnect_timeout(Duration::from_secs(1))
        .local_addr(address)
        .expect(fn_service(move |request: Request| {
            let checked = match &gate {
                Some(gate) => gate(&request).map(|()| request),
                None => Ok(request),
            };
            std::future::ready(checked)
        }))
        // perfhook generates no URLs and reads no connection info, the two things an
        // AppConfig's host and scheme are for.
        .h1(map_config(app(), |()| AppConfig::default()))
}

/// Adds `listener` to `builder`, serving the App that `app` makes on each worker.
///
/// # Errors
/// When the listener cannot be registered.
pub fn listen<F, I, S, B>(
    builder: ServerBuilder,
    name: &str,
    listener: TcpListener,
    app: F,
    https: Option<Https>,
    role: Role,
) -> std::io::Result<ServerBuilder>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<Response<BoxBody>> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    B: MessageBody + 'static,
{
    let address = listener.local_addr()?;
    let shutdown = builder.graceful_shutdown_signal();
    let (gate, scope) = match role {
        Role::Receiver(gate) => (Some(gate), Scope::Anywhere),
        Role::Admin => (None, Scope::FirstWrite),
    };
    match https {
        Some(Https { config, hsts }) => builder.listen(name, listener, move || {
            let hsts = hsts.clone();
            TlsAcceptor::new(config.clone())
                .map_init_err(|()| ())
                .map_err(TlsError::into_service_error)
                .map(move |io: TlsStream<TcpStream>| {
                    let peer = io.get_ref().0.peer_addr().ok();
                    (JsonErrors::new(io, scope, Some(Arc::clone(&hsts))), peer)
                })
                .and_then(
                    h1_service(address, &shutdown, gate.clone(), &app).map_err(TlsError::Service),
                )
        }),
        None => builder.listen(name, listener, move || {
            fn_service(move |io: TcpStream| {
                let peer = io.peer_addr().ok();
                std::future::ready(Ok::<_, DispatchError>((
                    JsonErrors::new(io, scope, None),
                    peer,
                )))
            })
            .and_then(h1_service(address, &shutdown, gate.clone(), &app))
        }),
    }
}
