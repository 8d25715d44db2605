//! The OpenAPI 3.1 document of the REST routes at `/api/openapi.json`, and
//! Swagger UI at `/api/docs`.
//!
//! Each flow's router is a utoipa-axum `OpenApiRouter` whose routes are added
//! with `routes!(handler, …)`: a handler is routed and documented by the same
//! call, from its `#[utoipa::path]` attribute, so the two cannot drift.
//! Swagger UI's files are compiled into the binary (`utoipa-swagger-ui`'s
//! `vendored` feature); the page loads nothing from elsewhere.

use axum::Router;
use utoipa::{
    Modify, OpenApi,
    openapi::{
        self, RefOr, Response,
        security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ErrorBody;

pub const DOCUMENT_PATH: &str = "/api/openapi.json";
pub const DOCS_PAGE_PATH: &str = "/api/docs";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard",
        description = "The REST routes of Switchboard. Every error answers `{error, message, code}` \
                       with a 4xx or 5xx status; the Socket.IO events are described at `/api/asyncapi.json`."
    ),
    components(schemas(ErrorBody)),
    modifiers(&Conventions),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "livechat", description = "Live chat: the widget's history and the admin console"),
        (name = "assistant", description = "The streaming assistant's conversations"),
        (name = "resume", description = "The resume builder"),
        (name = "coach", description = "The AI coach: quotas, practice sessions, analytics"),
        (name = "chatkit", description = "OpenAI ChatKit sessions"),
        (name = "operations", description = "Health and readiness"),
    )
)]
struct ApiDoc;

/// What the flows' routers add their paths to.
pub fn base() -> openapi::OpenApi {
    ApiDoc::openapi()
}

/// The security schemes, and the error answer on every operation.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The access token from /api/auth/login or /api/auth/register",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "clientKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Client-Key",
                "An anonymous caller's own key (assistant conversations)",
            ))),
        );
    }
}

/// Adds `4XX` and `5XX` answers of [`ErrorBody`] to every operation that does
/// not document them itself. Called once the flows' paths are in.
pub fn with_error_answers(mut doc: openapi::OpenApi) -> openapi::OpenApi {
    let error = |description: &str| -> RefOr<Response> {
        RefOr::T(
            openapi::ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    openapi::ContentBuilder::new()
                        .schema(Some(openapi::Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            let answers = &mut operation.responses.responses;
            answers
                .entry("4XX".to_owned())
                .or_insert_with(|| error("The request was refused"));
            answers
                .entry("5XX".to_owned())
                .or_insert_with(|| error("The server or a service it needs failed"));
        }
    }
    doc
}

/// `/api/openapi.json` and the docs page.
pub fn router<S: Clone + Send + Sync + 'static>(doc: openapi::OpenApi) -> Router<S> {
    SwaggerUi::new(DOCS_PAGE_PATH)
        .url(DOCUMENT_PATH, doc)
        .into()
}
