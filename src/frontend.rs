//! A frontend build served beside the API: files from `FRONTEND_DIR` (or
//! `frontend/dist` when it exists), and `index.html` for unknown GET paths so
//! client-side routes load. Unknown `/api/*` paths stay JSON 404s.

use std::path::PathBuf;

use axum::{
    extract::{Request, State},
    http::Method,
    response::{IntoResponse, Response},
};
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use crate::{config::Config, http};

/// The directory to serve, if any.
pub fn directory(config: &Config) -> Option<PathBuf> {
    config
        .frontend_dir
        .clone()
        .or_else(|| Some(PathBuf::from("frontend/dist")).filter(|dir| dir.is_dir()))
}

pub type Files = ServeDir<ServeFile>;

pub fn files(dir: &std::path::Path) -> Files {
    ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html")))
}

/// The router's fallback when a frontend is served.
pub async fn serve(State(files): State<Files>, request: Request) -> Response {
    let path = request.uri().path();
    let is_api = path == "/api" || path.starts_with("/api/");
    if is_api || !matches!(*request.method(), Method::GET | Method::HEAD) {
        return http::not_found().await.into_response();
    }
    match files.oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}
