//! Sessions: each login starts one, and its id is the `sid` claim of the
//! tokens issued in it.

use diesel::prelude::*;

use crate::accounts::now;
use crate::db::schema::sessions;
use crate::db::{Db, DbError};

/// Where a login came from, recorded with its session.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// Starts a session for `user_id` with `client_id`; returns its id.
pub async fn start(
    db: &Db,
    user_id: String,
    client_id: String,
    client: ClientInfo,
) -> Result<String, DbError> {
    db.run(move |conn| {
        let now = now();
        let id = uuid::Uuid::now_v7().to_string();
        // Bounded so a client can't make us store kilobytes per login.
        let user_agent = client
            .user_agent
            .map(|ua| ua.chars().take(512).collect::<String>());
        diesel::insert_into(sessions::table)
            .values((
                sessions::id.eq(&id),
                sessions::user_id.eq(&user_id),
                sessions::client_id.eq(&client_id),
                sessions::created_at.eq(now),
                sessions::last_seen_at.eq(now),
                sessions::user_agent.eq(user_agent),
                sessions::ip.eq(client.ip),
            ))
            .execute(conn)?;
        Ok(id)
    })
    .await
}
