//! The migrations are embedded in the binary (`embed_migrations!`): a new
//! or edited migration must rebuild it, which cargo would not notice.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
