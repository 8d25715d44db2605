//! The built-in pages (SPEC §10): the admin console (`/console`), the visitor
//! widget (`/widget.js`) and a page that embeds it (`/demo`), the assistant
//! playground (`/playground`), and `/` linking to them when no frontend is
//! served. Static files compiled into the binary; they load nothing from
//! elsewhere and reach the server only through its public REST routes and
//! Socket.IO events, with a small Socket.IO client of their own
//! (`assets/sio.js`; see the README for why not the official one).

use axum::{
    Router,
    http::{HeaderValue, header},
    response::IntoResponse,
    routing::get,
};

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Same-origin scripts only; inline styles are allowed (the pages use a few).
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     connect-src 'self'; img-src 'self' data:; frame-ancestors 'self'; base-uri 'none'; form-action 'self'";

const ASSETS: [Asset; 9] = [
    Asset {
        path: "/console",
        content_type: HTML,
        body: include_str!("assets/console.html"),
    },
    Asset {
        path: "/demo",
        content_type: HTML,
        body: include_str!("assets/demo.html"),
    },
    Asset {
        path: "/playground",
        content_type: HTML,
        body: include_str!("assets/playground.html"),
    },
    // One file for embedding sites: the client and the widget in one scope,
    // so nothing but `window.SwitchboardWidget` reaches the page's globals.
    Asset {
        path: "/widget.js",
        content_type: JS,
        body: concat!(
            "(function () {\n",
            include_str!("assets/sio.js"),
            "\n",
            include_str!("assets/widget.js"),
            "\n})();\n"
        ),
    },
    Asset {
        path: "/pages/sio.js",
        content_type: JS,
        body: include_str!("assets/sio.js"),
    },
    Asset {
        path: "/pages/common.js",
        content_type: JS,
        body: include_str!("assets/common.js"),
    },
    Asset {
        path: "/pages/console.js",
        content_type: JS,
        body: include_str!("assets/console.js"),
    },
    Asset {
        path: "/pages/playground.js",
        content_type: JS,
        body: include_str!("assets/playground.js"),
    },
    Asset {
        path: "/pages/pages.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/pages.css"),
    },
];

const ROOT: Asset = Asset {
    path: "/",
    content_type: HTML,
    body: include_str!("assets/index.html"),
};

/// The pages' routes; `/` too when `with_root` (no frontend is served).
pub fn router<S: Clone + Send + Sync + 'static>(with_root: bool) -> Router<S> {
    ASSETS
        .iter()
        .chain(with_root.then_some(&ROOT))
        .fold(Router::new(), |router, asset| {
            router.route(asset.path, get(move || serve(asset)))
        })
}

async fn serve(asset: &'static Asset) -> impl IntoResponse {
    let mut response = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            // Pages change with the binary; a browser asks again each time.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        asset.body,
    )
        .into_response();
    if asset.content_type == HTML {
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_POLICY),
        );
    }
    response
}
