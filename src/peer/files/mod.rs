//! What the peer shares and where it lives: the store of items in
//! `files/` and of downloads in progress (`store`), the watched `files/`
//! (`changes` is the rule, `watcher` the thread that lists the folder),
//! and which version a freshly hashed item is published as (`publish`).

pub mod changes;
pub mod publish;
pub mod store;
pub mod watcher;
