//! The database itself: creating it on first start.

use sqlx::PgPool;

/// Creates database `name` unless it exists, through a connection to another database of the
/// same server (`postgres`); returns whether it created it.
pub async fn create_database_if_missing(server: &PgPool, name: &str) -> Result<bool, sqlx::Error> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(server)
            .await?;
    if exists {
        return Ok(false);
    }
    // An identifier cannot be a bind parameter; quoting doubles any `"` in the name.
    let quoted = name.replace('"', "\"\"");
    sqlx::query(&format!("CREATE DATABASE \"{quoted}\""))
        .execute(server)
        .await?;
    Ok(true)
}
