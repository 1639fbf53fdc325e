//! A PostgreSQL database of one test, on the server the test script checks.

use sqlx::{AnyPool, Executor};

/// A PostgreSQL database created for one test and dropped after it, on the server of
/// `VALMETAL_TEST_POSTGRES_URL`.
pub struct PostgresDatabase {
    admin: AnyPool,
    name: String,
    pub url: String,
}

impl PostgresDatabase {
    pub async fn create(test: &str) -> Self {
        let admin_url = std::env::var("VALMETAL_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        sqlx::any::install_default_drivers();
        let admin = AnyPool::connect(&admin_url).await.unwrap_or_else(|error| {
            panic!("PostgreSQL at VALMETAL_TEST_POSTGRES_URL={admin_url} is needed: {error}")
        });
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("valmetal_{test}_{}_{nanos}", std::process::id());
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        let url = format!("{base}/{name}");
        Self { admin, name, url }
    }

    pub async fn drop_database(self) {
        self.admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .await
            .unwrap();
    }
}
