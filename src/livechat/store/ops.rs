//! The statements of each writer operation, run inside the batch's
//! transaction; each sets its operation's outcome.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use entity::{chat_message, chat_session};
use sea_orm::{
    ColumnTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, QueryTrait,
    sea_query::{Expr, IntoIden, OnConflict, Query},
};

use super::{HandedOff, Op, UserRow, batch::Facts};
use crate::{
    livechat::{
        cache::{HotState, SessionFacts},
        domain::{
            MessageText, MessageView, Reply, Sender, SessionId, Visitor, VisitorSockets,
            session_not_found,
        },
    },
    store::executor::{Cell, Param, RowInsert, TxnExecutor},
};

/// Visitor messages and session announcements: sessions created in one
/// statement, messages inserted in one, `last_active` set in one.
pub(super) async fn apply_visitor_group<E: TxnExecutor>(
    executor: &mut E,
    cache: &HotState,
    group: &mut [Op],
    now: DateTime<Utc>,
    facts: &mut Facts,
) -> Result<(), DbErr> {
    // Sessions neither this transaction nor the cache knows: created when new,
    // read when not.
    let mut unseen: Vec<(&SessionId, &Visitor)> = Vec::new();
    let mut listed = HashSet::new();
    for op in group.iter() {
        let (Op::Ensure {
            session, visitor, ..
        }
        | Op::User {
            session, visitor, ..
        }) = op
        else {
            continue;
        };
        if facts.contains_key(session.as_str()) || !listed.insert(session.as_str()) {
            continue;
        }
        match cache.session(session.as_str()) {
            Some(known) => {
                facts.insert(session.shared(), known);
            }
            None => unseen.push((session, visitor)),
        }
    }
    if !unseen.is_empty() {
        learn_sessions(executor, &unseen, now, facts).await?;
    }

    let messages: Vec<(&SessionId, &MessageText)> = group
        .iter()
        .filter_map(|op| match op {
            Op::User { session, text, .. } => Some((session, text)),
            _ => None,
        })
        .collect();
    let ids = insert_messages(
        executor,
        messages
            .iter()
            .map(|(session, text)| (*session, Sender::User, *text)),
        now,
    )
    .await?;
    let second = now.timestamp();
    let stale: HashSet<&str> = messages
        .iter()
        .map(|(session, _)| session.as_str())
        .filter(|session| facts.get(*session).is_none_or(|f| f.active_second < second))
        .collect();
    if !stale.is_empty() {
        let touch = chat_session::Entity::update_many()
            .col_expr(chat_session::Column::LastActive, Expr::value(now))
            .filter(chat_session::Column::SessionId.is_in(stale.iter().copied()))
            .build(executor.backend());
        executor.execute(touch).await?;
        for session in stale {
            if let Some(facts) = facts.get_mut(session) {
                facts.active_second = second;
            }
        }
    }

    let mut ids = ids.into_iter();
    let mut waiting_for_ai = HashSet::new();
    for op in group.iter_mut() {
        match op {
            Op::User {
                session,
                ai_wanted,
                job,
                ..
            } => {
                let id = ids
                    .next()
                    .ok_or_else(|| DbErr::Custom("fewer ids than messages".to_owned()))?;
                let handed_off = facts.get(session.as_str()).is_some_and(|f| f.handed_off);
                let ai_pending = *ai_wanted && !handed_off;
                if ai_pending {
                    waiting_for_ai.insert(session.shared());
                }
                job.set(Ok(UserRow {
                    id,
                    at: now,
                    handed_off,
                    ai_pending,
                }));
            }
            Op::Ensure { job, .. } => job.set(Ok(())),
            _ => {}
        }
    }
    if !waiting_for_ai.is_empty() {
        let mark = chat_session::Entity::update_many()
            .col_expr(
                chat_session::Column::AiReplyPendingAt,
                Expr::value(Some(now)),
            )
            .col_expr(chat_session::Column::AiReplyNode, Expr::value(cache.node()))
            .filter(chat_session::Column::SessionId.is_in(waiting_for_ai.iter().map(|s| &**s)))
            .build(executor.backend());
        executor.execute(mark).await?;
    }
    Ok(())
}

/// Creates the sessions that are new and reads the hand-off flag of the others.
async fn learn_sessions<E: TxnExecutor>(
    executor: &mut E,
    sessions: &[(&SessionId, &Visitor)],
    now: DateTime<Utc>,
    facts: &mut Facts,
) -> Result<(), DbErr> {
    let mut insert = Query::insert();
    insert.into_table(chat_session::Entity).columns([
        chat_session::Column::SessionId,
        chat_session::Column::IpAddress,
        chat_session::Column::UserAgent,
        chat_session::Column::CreatedAt,
        chat_session::Column::LastActive,
        chat_session::Column::HandedOffToAdmin,
    ]);
    for (session, visitor) in sessions {
        insert.values_panic([
            Expr::value(session.as_str()),
            Expr::value(visitor.ip_address.clone()),
            Expr::value(visitor.user_agent.clone()),
            Expr::value(now),
            Expr::value(now),
            Expr::value(false),
        ]);
    }
    insert
        .on_conflict(
            OnConflict::column(chat_session::Column::SessionId)
                .do_nothing()
                .to_owned(),
        )
        .returning_col(chat_session::Column::SessionId);
    let created: HashSet<String> = executor
        .query(executor.backend().build(&insert))
        .await?
        .into_iter()
        .map(|mut row| row.swap_remove(0).text())
        .collect::<Result<_, _>>()?;
    for session in &created {
        facts.insert(
            session.as_str().into(),
            SessionFacts {
                handed_off: false,
                active_second: now.timestamp(),
            },
        );
    }
    let existing: Vec<&str> = sessions
        .iter()
        .map(|(session, _)| session.as_str())
        .filter(|session| !created.contains(*session))
        .collect();
    if !existing.is_empty() {
        let select = chat_session::Entity::find()
            .select_only()
            .column(chat_session::Column::SessionId)
            .column(chat_session::Column::HandedOffToAdmin)
            .filter(chat_session::Column::SessionId.is_in(existing))
            .build(executor.backend());
        for row in executor.query(select).await? {
            let mut row = row.into_iter();
            let (Some(session), Some(flag)) = (row.next(), row.next()) else {
                return Err(DbErr::Custom(
                    "a session row without its columns".to_owned(),
                ));
            };
            let (session, handed_off) = (session.text()?, flag.flag()?);
            facts.insert(
                session.into(),
                SessionFacts {
                    handed_off,
                    active_second: 0,
                },
            );
        }
    }
    Ok(())
}

/// Inserts the messages; their ids, in the order given.
async fn insert_messages<'a, E: TxnExecutor>(
    executor: &mut E,
    messages: impl Iterator<Item = (&'a SessionId, Sender, &'a MessageText)>,
    now: DateTime<Utc>,
) -> Result<Vec<i32>, DbErr> {
    use chat_message::Column;
    let values = messages
        .flat_map(|(session, sender, text)| {
            [
                Param::Text(session.as_str()),
                Param::Text(text.as_str()),
                Param::Text(sender.as_str()),
                Param::Time(now),
                Param::Bool(false),
            ]
        })
        .collect();
    let insert = RowInsert {
        table: chat_message::Entity.into_iden(),
        columns: [
            Column::SessionId,
            Column::Message,
            Column::SenderType,
            Column::Timestamp,
            Column::IsRead,
        ]
        .map(IntoIden::into_iden)
        .into(),
        id: Column::Id.into_iden(),
        values,
    };
    executor
        .insert_rows(insert)
        .await?
        .into_iter()
        .map(|id| {
            i32::try_from(id).map_err(|_| DbErr::Custom(format!("message id {id} overflows")))
        })
        .collect()
}

pub(super) fn view(
    id: i32,
    session: &SessionId,
    sender: Sender,
    text: &MessageText,
    now: DateTime<Utc>,
) -> MessageView {
    MessageView {
        id,
        session_id: session.as_str().to_owned(),
        message: text.as_str().to_owned(),
        sender_type: sender.as_str().to_owned(),
        timestamp: now,
        is_read: false,
    }
}

/// Inserts one message of the server's side and returns it.
async fn insert_one<E: TxnExecutor>(
    executor: &mut E,
    session: &SessionId,
    sender: Sender,
    text: &MessageText,
    now: DateTime<Utc>,
) -> Result<MessageView, DbErr> {
    let ids = insert_messages(executor, std::iter::once((session, sender, text)), now).await?;
    Ok(view(ids[0], session, sender, text, now))
}

/// The update of a session's row, when `only_if_handed_off` holds.
fn session_update(
    session: &SessionId,
    set: &[(chat_session::Column, Expr)],
    only_if_handed_off: Option<bool>,
) -> sea_orm::UpdateMany<chat_session::Entity> {
    let mut update = chat_session::Entity::update_many()
        .filter(chat_session::Column::SessionId.eq(session.as_str()));
    for (column, value) in set {
        update = update.col_expr(*column, value.clone());
    }
    if let Some(handed_off) = only_if_handed_off {
        update = update.filter(chat_session::Column::HandedOffToAdmin.eq(handed_off));
    }
    update
}

/// Updates the session's row; how many rows matched (0: no such session, or
/// the condition did not hold).
async fn update_session<E: TxnExecutor>(
    executor: &mut E,
    session: &SessionId,
    set: &[(chat_session::Column, Expr)],
    only_if_handed_off: Option<bool>,
) -> Result<u64, DbErr> {
    let update = session_update(session, set, only_if_handed_off).build(executor.backend());
    executor.execute(update).await
}

/// Updates the session's row before a reply is stored, and reads back the
/// visitor sockets the reply goes to (`None`: no row matched). The update
/// locks the row until the commit, so a socket joining meanwhile waits, and
/// is then sent the reply in its catch-up instead (see [`VisitorSockets`]).
async fn update_session_for_reply<E: TxnExecutor>(
    executor: &mut E,
    session: &SessionId,
    set: &[(chat_session::Column, Expr)],
    only_if_handed_off: Option<bool>,
) -> Result<Option<VisitorSockets>, DbErr> {
    let mut update = session_update(session, set, only_if_handed_off);
    QueryTrait::query(&mut update).returning_col(chat_session::Column::VisitorSockets);
    let rows = executor.query(update.build(executor.backend())).await?;
    Ok(rows.into_iter().next().map(|mut row| match row.pop() {
        Some(Cell::Text(ids)) => VisitorSockets::parse(Some(&ids)),
        _ => VisitorSockets::default(),
    }))
}

/// Records a session's hand-off flag in the transaction's facts; `touched`:
/// its `last_active` was written in that second.
fn note(
    facts: &mut Facts,
    cache: &HotState,
    session: &SessionId,
    handed_off: bool,
    touched: Option<i64>,
) {
    let known = facts
        .get(session.as_str())
        .copied()
        .or_else(|| cache.session(session.as_str()));
    let active_second = touched.unwrap_or_else(|| known.map_or(0, |f| f.active_second));
    facts.insert(
        session.shared(),
        SessionFacts {
            handed_off,
            active_second,
        },
    );
}

/// Applies one operation of the support side (or a lone visitor one),
/// setting its outcome.
pub(super) async fn apply_one<E: TxnExecutor>(
    executor: &mut E,
    cache: &HotState,
    op: &mut Op,
    now: DateTime<Utc>,
    facts: &mut Facts,
) -> Result<(), DbErr> {
    use chat_session::Column::{AiReplyPendingAt, HandedOffToAdmin, LastActive};
    let no_time: Option<DateTime<Utc>> = None;
    match op {
        Op::Ensure { .. } | Op::User { .. } => {
            apply_visitor_group(executor, cache, std::slice::from_mut(op), now, facts).await
        }
        Op::Admin { session, text, job } => {
            let set = [
                (HandedOffToAdmin, Expr::value(true)),
                (LastActive, Expr::value(now)),
            ];
            let Some(to) = update_session_for_reply(executor, session, &set, None).await? else {
                job.set(Err(session_not_found()));
                return Ok(());
            };
            note(facts, cache, session, true, Some(now.timestamp()));
            let row = insert_one(executor, session, Sender::Admin, text, now).await?;
            job.set(Ok(Reply { row, to }));
            Ok(())
        }
        Op::Ai { session, text, job } => {
            let set = [
                (LastActive, Expr::value(now)),
                (AiReplyPendingAt, Expr::value(no_time)),
            ];
            let Some(to) = update_session_for_reply(executor, session, &set, Some(false)).await?
            else {
                // A human took over meanwhile (maybe on another node): the
                // answer is dropped, and this node knows it from now on.
                if update_session(
                    executor,
                    session,
                    &[(AiReplyPendingAt, Expr::value(no_time))],
                    None,
                )
                .await?
                    > 0
                {
                    note(facts, cache, session, true, None);
                }
                job.set(Ok(None));
                return Ok(());
            };
            note(facts, cache, session, false, Some(now.timestamp()));
            let row = insert_one(executor, session, Sender::Ai, text, now).await?;
            job.set(Ok(Some(Reply { row, to })));
            Ok(())
        }
        Op::HandOff {
            session,
            notice,
            job,
        } => {
            let hand_off = [(HandedOffToAdmin, Expr::value(true))];
            let (first, to) =
                match update_session_for_reply(executor, session, &hand_off, Some(false)).await? {
                    Some(to) => (true, to),
                    None => {
                        match update_session_for_reply(executor, session, &hand_off, None).await? {
                            Some(to) => (false, to),
                            None => {
                                job.set(Err(session_not_found()));
                                return Ok(());
                            }
                        }
                    }
                };
            note(facts, cache, session, true, None);
            let notice = match (first, notice) {
                (true, Some(text)) => Some(Reply {
                    row: insert_one(executor, session, Sender::Ai, text, now).await?,
                    to,
                }),
                _ => None,
            };
            job.set(Ok(HandedOff { first, notice }));
            Ok(())
        }
        Op::SetHandedOff {
            session,
            handed_off,
            job,
        } => {
            if update_session(
                executor,
                session,
                &[(HandedOffToAdmin, Expr::value(*handed_off))],
                None,
            )
            .await?
                == 0
            {
                job.set(Err(session_not_found()));
                return Ok(());
            }
            note(facts, cache, session, *handed_off, None);
            job.set(Ok(()));
            Ok(())
        }
        Op::ClearAiPending { session, job } => {
            update_session(
                executor,
                session,
                &[(AiReplyPendingAt, Expr::value(no_time))],
                None,
            )
            .await?;
            job.set(Ok(()));
            Ok(())
        }
    }
}
