//! The registry of live nodes (`cluster_nodes`): each node beats a heartbeat;
//! work a node owns (its rows name it) is taken over by the others once its
//! heartbeat is older than [`DEAD_AFTER`] — a node killed mid-work leaves
//! nothing stuck.
//!
//! A node alone (local adapter) is the only node by definition: at start-up
//! it drops every other entry, so what the previous process left is taken
//! over at once, as before there were several nodes.
//!
//! Heartbeats are stamped with each node's clock: keep the clocks in sync
//! (NTP), as for any cluster.

use std::time::Duration;

use chrono::Utc;
use entity::cluster_node;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    sea_query::{OnConflict, Query},
};

use super::NodeId;

/// How often a node says it is alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// A node silent this long is dead: the others take over its work.
pub const DEAD_AFTER: Duration = Duration::from_secs(20);

/// Enters this node; `alone`: forget every other node. Among several nodes,
/// an id a live node already beats with (two nodes given one `NODE_ID`) is
/// refused: each would take the other's signals for its own and ignore them.
pub async fn register(db: &DatabaseConnection, node: &NodeId, alone: bool) -> Result<(), DbErr> {
    if alone {
        cluster_node::Entity::delete_many()
            .filter(cluster_node::Column::Id.ne(node.as_str()))
            .exec(db)
            .await?;
    } else if let Some(twin) = cluster_node::Entity::find_by_id(node.to_string())
        .filter(cluster_node::Column::HeartbeatAt.gt(live_cutoff()))
        .one(db)
        .await?
    {
        return Err(DbErr::Custom(format!(
            "NODE_ID {} is in use by a live node (its last heartbeat: {}); give each node its own id, or wait {} s after a crash",
            twin.id,
            twin.heartbeat_at,
            DEAD_AFTER.as_secs()
        )));
    }
    beat(db, node).await
}

/// Nodes that beat after this are alive.
fn live_cutoff() -> chrono::DateTime<Utc> {
    Utc::now() - chrono::Duration::from_std(DEAD_AFTER).unwrap_or_default()
}

/// A node's last heartbeat, when the registry still lists it.
pub async fn last_heartbeat(
    db: &DatabaseConnection,
    node: &str,
) -> Result<Option<chrono::DateTime<Utc>>, DbErr> {
    Ok(cluster_node::Entity::find_by_id(node.to_owned())
        .one(db)
        .await?
        .map(|row| row.heartbeat_at))
}

/// Refreshes this node's heartbeat.
pub async fn beat(db: &DatabaseConnection, node: &NodeId) -> Result<(), DbErr> {
    let now = Utc::now();
    let row = cluster_node::ActiveModel {
        id: sea_orm::Set(node.to_string()),
        started_at: sea_orm::Set(now),
        heartbeat_at: sea_orm::Set(now),
    };
    cluster_node::Entity::insert(row)
        .on_conflict(
            OnConflict::column(cluster_node::Column::Id)
                .update_column(cluster_node::Column::HeartbeatAt)
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Leaves the registry (a clean shutdown): the others take over at once.
pub async fn leave(db: &DatabaseConnection, node: &NodeId) -> Result<(), DbErr> {
    cluster_node::Entity::delete_by_id(node.to_string())
        .exec(db)
        .await?;
    Ok(())
}

/// Rows whose `owner` column names no live node (or none at all).
pub fn orphaned(owner: impl ColumnTrait) -> Condition {
    let live = Query::select()
        .column(cluster_node::Column::Id)
        .from(cluster_node::Entity)
        .and_where(cluster_node::Column::HeartbeatAt.gt(live_cutoff()))
        .to_owned();
    Condition::any()
        .add(owner.is_null())
        .add(owner.not_in_subquery(live))
}
