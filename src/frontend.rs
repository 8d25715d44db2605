//! A frontend build served beside the API: files from `FRONTEND_DIR` (or
//! `frontend/dist` when it exists), and `index.html` for unknown GET paths so
//! client-side routes load. Unknown `/api/*` paths stay JSON 404s.
//!
//! Only the build's own files are served: no path with a segment that starts
//! with a dot (`/.env`, `/.git/config`; `/.well-known/` excepted), and no
//! file whose real path, symbolic links followed, lies outside the directory.

use std::path::{Path, PathBuf};

use axum::{
    extract::{Request, State},
    http::Method,
    response::{IntoResponse, Response},
};
use percent_encoding::percent_decode_str;
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

/// The files of a frontend build, and where they really are.
#[derive(Clone)]
pub struct Files {
    serve: ServeDir<ServeFile>,
    root: PathBuf,
}

pub fn files(dir: &Path) -> Files {
    Files {
        serve: ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html"))),
        root: dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()),
    }
}

impl Files {
    /// Whether `path` (as requested, percent-encoded) may be served: a file
    /// that does not exist is fine (it falls back to `index.html`).
    async fn may_serve(&self, path: &str) -> bool {
        let Ok(path) = percent_decode_str(path).decode_utf8() else {
            return false;
        };
        let hidden = path
            .split(['/', '\\'])
            .any(|segment| segment.starts_with('.') && segment != ".well-known");
        if hidden {
            return false;
        }
        match tokio::fs::canonicalize(self.root.join(path.trim_start_matches('/'))).await {
            Ok(real) => real.starts_with(&self.root),
            Err(_) => true,
        }
    }
}

/// The router's fallback when a frontend is served.
pub async fn serve(State(files): State<Files>, request: Request) -> Response {
    let path = request.uri().path();
    let is_api = path == "/api" || path.starts_with("/api/");
    if is_api
        || !matches!(*request.method(), Method::GET | Method::HEAD)
        || !files.may_serve(path).await
    {
        return http::not_found().await.into_response();
    }
    match files.serve.oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}
