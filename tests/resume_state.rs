//! Resume sessions survive a server restart when the client comes back with
//! its `resumeId`, and expire once their socket has been gone long enough.

mod common;

use common::*;
use serde_json::json;
use switchboard::resume::service::{self, ResumeState};

#[tokio::test]
async fn a_resume_session_survives_a_restart() {
    let database = TestDatabase::create().await;
    let mock = switchboard::testkit::mock_ai::MockAi::start()
        .await
        .unwrap();
    let first = build_server(&database.url, &mock, &[]).await;
    let session = service::open(first.state(), None).await.unwrap();
    {
        let mut state = session.lock().await;
        state.resume = Some(json!({ "Name": "Kept" }));
        state.history.push(service::Turn {
            role: "user".into(),
            content: "hello".into(),
        });
        service::save(first.state(), &session.id, &state)
            .await
            .unwrap();
    }
    drop(first);

    let second = build_server(&database.url, &mock, &[]).await;
    let restored = service::open(second.state(), Some(&session.id))
        .await
        .unwrap();
    assert_eq!(restored.id, session.id);
    let state = restored.lock().await;
    assert_eq!(state.resume, Some(json!({ "Name": "Kept" })));
    assert_eq!(state.history.len(), 1);
}

#[tokio::test]
async fn expired_sessions_are_swept() {
    let app = spawn_app().await;
    let session = service::open(&app.state, None).await.unwrap();
    service::save(&app.state, &session.id, &ResumeState::default())
        .await
        .unwrap();
    service::release(&app.state.db, app.state.cluster.node(), &session.id)
        .await
        .unwrap();
    assert_eq!(
        service::sweep(&app.state.db, std::time::Duration::from_secs(600))
            .await
            .unwrap(),
        0,
        "a recent leaver is kept"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        service::sweep(&app.state.db, std::time::Duration::from_secs(1))
            .await
            .unwrap(),
        1
    );
    let reopened = service::open(&app.state, Some(&session.id)).await.unwrap();
    assert_ne!(reopened.id, session.id);
}
