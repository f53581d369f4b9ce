//! Choosing the backend that tests run on, so that one suite covers SQLite and PostgreSQL.
//!
//! `GANTRY_TEST_DATABASE=postgres` makes the test harnesses give every test (or every data dir)
//! a fresh schema of the PostgreSQL database at `GANTRY_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), so tests run in parallel on one database. Unset or
//! `sqlite`, they use SQLite files. A test never falls back from PostgreSQL to SQLite: if the
//! database is unreachable, the caller fails.

use std::path::Path;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::storage::{PgStore, SqliteStore, StorageResult, Store};

pub const BACKEND_ENV: &str = "GANTRY_TEST_DATABASE";
pub const URL_ENV: &str = "GANTRY_TEST_DATABASE_URL";
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Test schemas are named `gantry_t_<unix seconds>_<random>`; ones older than this are left
/// over from interrupted runs and dropped when the next one is made.
const STALE_SCHEMA_SECS: u64 = 3600;

/// Whether the tests were asked to run on PostgreSQL.
pub fn postgres_selected() -> bool {
    std::env::var(BACKEND_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("postgres"))
}

/// The PostgreSQL database the tests use.
pub fn postgres_base_url() -> String {
    std::env::var(URL_ENV).unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// A fresh PostgreSQL schema, returned as a URL that selects it (`search_path`) and names the
/// connections after it (`application_name`), so that a test can find, or cut, exactly the
/// sessions of the servers it started.
pub async fn fresh_postgres_url() -> Result<String, sqlx::Error> {
    let base = postgres_base_url();
    let mut admin = PgConnectOptions::from_str(&base)?
        .application_name("gantry-tests")
        .connect()
        .await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let schema = format!(
        "gantry_t_{now}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    // The name is made here of digits and hex: safe to splice into the statement.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await?;
    drop_stale_schemas(&mut admin, now).await;
    let _ = admin.close().await;
    let separator = if base.contains('?') { '&' } else { '?' };
    Ok(format!(
        "{base}{separator}options=-c%20search_path%3D{schema}&application_name={schema}"
    ))
}

async fn drop_stale_schemas(admin: &mut sqlx::PgConnection, now: u64) {
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'gantry\\_t\\_%'",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap_or_default();
    for schema in schemas {
        let created: Option<u64> = schema
            .strip_prefix("gantry_t_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse().ok());
        let stale = created.is_some_and(|c| now.saturating_sub(c) > STALE_SCHEMA_SECS);
        let safe = schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if stale && safe {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE"
            )))
            .execute(&mut *admin)
            .await;
        }
    }
}

/// The database URL for a test server on `data_dir`: on PostgreSQL, the schema made for that
/// data dir the first time (kept in a file there, so a restarted server finds its data again);
/// on SQLite, `None` (the server's default file in the data dir).
pub async fn database_url_for(data_dir: &Path) -> Result<Option<String>, sqlx::Error> {
    if !postgres_selected() {
        return Ok(None);
    }
    let file = data_dir.join("test-database-url");
    if let Ok(url) = std::fs::read_to_string(&file) {
        return Ok(Some(url.trim().to_owned()));
    }
    let url = fresh_postgres_url().await?;
    std::fs::create_dir_all(data_dir).map_err(sqlx::Error::Io)?;
    std::fs::write(&file, &url).map_err(sqlx::Error::Io)?;
    Ok(Some(url))
}

/// A store on the selected backend, for storage tests.
pub async fn open_store(dir: &Path) -> StorageResult<Store> {
    match database_url_for(dir).await? {
        Some(url) => Ok(Store::Postgres(PgStore::open(&url).await?)),
        None => Ok(Store::Sqlite(SqliteStore::open(&dir.join("g.db")).await?)),
    }
}
