//! Registering a route also writes it down. actix-web cannot list the routes
//! it serves, so the access tests take their list from the code that
//! registers them (see [`super::route_list`]): a route added here is a route
//! the tests know about, and one they have no expectation for fails them.

use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, Responder};

/// A route as registered: its method and full path pattern (with the
/// scope's prefix), e.g. `(GET, "/api/v1/contacts/{contact_id}")`.
pub type RouteEntry = (Method, String);

/// A [`web::ServiceConfig`] that records each route it registers.
pub struct Routes<'a> {
    cfg: &'a mut web::ServiceConfig,
    /// The path of the scope these routes are registered in.
    prefix: String,
    list: &'a mut Vec<RouteEntry>,
}

impl<'a> Routes<'a> {
    /// Routes registered on `cfg`, at the top level, recorded into `list`.
    pub fn new(cfg: &'a mut web::ServiceConfig, list: &'a mut Vec<RouteEntry>) -> Self {
        Routes {
            cfg,
            prefix: String::new(),
            list,
        }
    }

    pub fn get<F, Args>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::GET, path, handler)
    }

    pub fn post<F, Args>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::POST, path, handler)
    }

    pub fn put<F, Args>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::PUT, path, handler)
    }

    pub fn delete<F, Args>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::DELETE, path, handler)
    }

    fn add<F, Args>(&mut self, method: Method, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.list
            .push((method.clone(), format!("{}{path}", self.prefix)));
        // `web::get()` and the others are `web::method(..)`: the same route.
        self.cfg.route(path, web::method(method).to(handler));
        self
    }

    /// The routes `register` adds, in a scope at `prefix` (whose app data
    /// and default service apply to them only).
    pub fn scope(&mut self, prefix: &str, register: impl FnOnce(&mut Routes<'_>)) -> &mut Self {
        let full = format!("{}{prefix}", self.prefix);
        let list = &mut *self.list;
        // `Scope::configure` calls `register` at once, so the list is
        // complete when this returns.
        self.cfg.service(web::scope(prefix).configure(|cfg| {
            register(&mut Routes {
                cfg,
                prefix: full,
                list,
            })
        }));
        self
    }

    /// The configuration itself, for what is not a route (app data, a
    /// default service).
    pub fn config(&mut self) -> &mut web::ServiceConfig {
        self.cfg
    }
}
