//! DynamoDB as fengine's online store.
//!
//! Each feature group version is a table `<prefix><group>_v<version>` (on-demand billing,
//! encryption at rest, point-in-time recovery, TTL on `fengine_expires_at` when the group has
//! an ONLINE ttl). A one-column KEY is the hash key, under the column's own name; a KEY of
//! several columns is the hash key `fengine_key`: the values as text joined by `#`, with `#`
//! and `\` escaped by `\` (`7#grocery`). The table `<prefix>fengine_online_tables` records,
//! per table, the group, version, key, ttl, the snapshot (as-of and run id) of the last
//! completed load and that of a load begun since. Each item names the snapshot that wrote it
//! (`fengine_load`): a load ends by deleting the items of keys its snapshot no longer has,
//! found by a parallel scan, then records itself with a condition that no other load began.

mod items;
mod store;
mod writer;

pub use store::DynamoDbOnlineStore;
pub use writer::WriteSettings;
