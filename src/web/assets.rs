//! The static files, compiled into the binary so it runs from any
//! directory and needs no CDN.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

const FILES: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../static/app.css"),
    ),
    (
        "copy.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/copy.js"),
    ),
    (
        "compose.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/compose.js"),
    ),
];

pub async fn serve_asset(file: web::Path<String>) -> HttpResponse {
    match FILES.iter().find(|(name, _, _)| *name == file.as_str()) {
        Some((_, content_type, body)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, *content_type))
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .body(*body),
        None => HttpResponse::NotFound().body("no such file"),
    }
}
