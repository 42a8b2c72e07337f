//! The etcd engine (see `Store::open_etcd`).

pub mod target;
