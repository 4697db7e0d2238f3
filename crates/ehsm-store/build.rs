//! `sqlx::migrate!` embeds the migration files at compile time but cannot tell Cargo to watch the
//! directories (that needs a nightly feature), so a newly added migration would otherwise be
//! missed until something else changed (the sqlx-documented fix).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
