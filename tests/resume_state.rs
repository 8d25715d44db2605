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
        let mut state = session.lock(first.state()).await.unwrap();
        state.resume = Some(json!({ "Name": "Kept" }));
        state.history.push(service::Turn {
            role: "user".into(),
            content: "hello".into(),
        });
        service::save(first.state(), &session.id, &mut state)
            .await
            .unwrap();
    }
    drop(first);

    let second = build_server(&database.url, &mock, &[]).await;
    let restored = service::open(second.state(), Some(&session.id))
        .await
        .unwrap();
    assert_eq!(restored.id, session.id);
    let state = restored.lock(second.state()).await.unwrap();
    assert_eq!(state.resume, Some(json!({ "Name": "Kept" })));
    assert_eq!(state.history.len(), 1);
}

#[tokio::test]
async fn expired_sessions_are_swept() {
    let app = spawn_app().await;
    let session = service::open(&app.state, None).await.unwrap();
    service::save(&app.state, &session.id, &mut ResumeState::default())
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

#[tokio::test]
async fn each_operation_starts_from_the_state_last_written_by_any_socket() {
    let app = spawn_app().await;
    let gone = service::open(&app.state, None).await.unwrap();
    service::save(
        &app.state,
        &gone.id,
        &mut gone.lock(&app.state).await.unwrap(),
    )
    .await
    .unwrap();
    let back = service::open(&app.state, Some(&gone.id)).await.unwrap();
    assert_eq!(back.id, gone.id);
    // The socket that went finishes its work after the client came back.
    {
        let mut state = gone.lock(&app.state).await.unwrap();
        state.resume = Some(json!({ "Name": "Parsed late" }));
        service::save(&app.state, &gone.id, &mut state)
            .await
            .unwrap();
    }
    let state = back.lock(&app.state).await.unwrap();
    assert_eq!(state.resume, Some(json!({ "Name": "Parsed late" })));
}

#[tokio::test]
async fn a_kept_answer_is_taken_once_and_expires() {
    let app = spawn_app().await;
    let db = &app.state.db;
    let first = service::keep_result(db, "resume-a", "upload_resume_done", json!({ "n": 1 }))
        .await
        .unwrap();
    service::keep_result(db, "resume-a", "preview_resume_done", json!({ "n": 2 }))
        .await
        .unwrap();
    service::keep_result(db, "resume-b", "upload_resume_done", json!({}))
        .await
        .unwrap();
    let kept = service::kept_results(db, "resume-a").await.unwrap();
    let events: Vec<&str> = kept.iter().map(|k| k.event.as_str()).collect();
    assert_eq!(
        events,
        ["upload_resume_done", "preview_resume_done"],
        "oldest first, own session only"
    );
    assert!(service::take_result(db, first).await.unwrap());
    assert!(
        !service::take_result(db, first).await.unwrap(),
        "a second taker gets nothing"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    service::sweep(db, std::time::Duration::from_secs(1))
        .await
        .unwrap();
    assert!(
        service::kept_results(db, "resume-a")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        service::kept_results(db, "resume-b")
            .await
            .unwrap()
            .is_empty()
    );
}
