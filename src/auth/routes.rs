//! `POST /api/auth/login` and `GET /api/auth/verify`.

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AuthUser, LoginResponse, service};
use crate::{error::AppResult, http::AppJson, state::AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/login", post(login))
        .route("/api/auth/verify", get(verify))
}

#[derive(Deserialize)]
struct LoginBody {
    email: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    AppJson(body): AppJson<LoginBody>,
) -> AppResult<Json<LoginResponse>> {
    service::login(&state, &body.email, &body.password)
        .await
        .map(Json)
}

async fn verify(State(state): State<AppState>, caller: AuthUser) -> AppResult<Json<Value>> {
    let user = service::current_user(&state, &caller).await?;
    Ok(Json(json!({ "valid": true, "user": user })))
}
