//! A backend handler that drives a real service: a **folder** kind whose entities are
//! collections on a WebDAV server (nginx's `dav_methods`, Apache's mod_dav...), reached through
//! the host's `outbound` interface (WIT 0.1.2). The walkthrough in `examples/webdav` runs it
//! against nginx.
//!
//! Attributes (see `examples/webdav/folder-kind.json`):
//!
//! | attribute | set by | meaning |
//! |---|---|---|
//! | `dav.folder.name` | client, required | the collection's name: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with `.` |
//! | `dav.folder.server` | client, required | the WebDAV root, `http://host[:port][/path]` (its origin must be allowed to the handler) |
//! | `dav.folder.url` | handler | the collection's URL, `{server}/{name}/` |
//! | `dav.folder.files` | handler | how many files the `put` action created |
//!
//! * `validate`: the name and the server, as above (every problem named).
//! * `on-create`: `MKCOL {url}`, then `PUT {url}.ocni-owner` with a marker naming this tenant's
//!   handler instance and the entity. A collection that already exists (405) is taken over only
//!   when its marker is this entity's: that is a create prepared again after a conflict (the
//!   host may run a hook more than once for one request), not someone else's folder (409).
//! * `on-delete`: `DELETE {url}`; gone already (404) is fine; any other failure refuses the
//!   delete, so the entity stays as long as the folder does.
//! * `on-action` `…/folder/action#put` with `dav.file.name` and `dav.file.content`:
//!   `PUT {url}{file}`; a new file (201) counts in `dav.folder.files`, a replaced one (204) not.
//!
//! Every backend failure (refused connection, a status the step does not expect, a limit of the
//! host) refuses the request with a message naming the request and what happened, so the client
//! sees why and nothing is half done on the ocni side.

use ocni_handler_sdk::{Attribute, Change, Entity, Handler, Operation, Refusal, Value, action_term, kv, log, outbound};

/// The folder kind.
pub const FOLDER: &str = "http://example.com/occi/dav#folder";
/// The scheme of the folder's actions.
pub const ACTIONS: &str = "http://example.com/occi/dav/folder/action#";

const NAME: &str = "dav.folder.name";
const SERVER: &str = "dav.folder.server";
const URL: &str = "dav.folder.url";
const FILES: &str = "dav.folder.files";
const FILE_NAME: &str = "dav.file.name";
const FILE_CONTENT: &str = "dav.file.content";
/// The file in each collection that says which entity made it.
const MARKER: &str = ".ocni-owner";
/// The kv key of this handler instance's id (see [`instance`]).
const INSTANCE: &str = "instance";

struct WebDav;

impl Handler for WebDav {
    fn validate(entity: Entity, op: Operation) -> Result<(), Vec<Refusal>> {
        if op != Operation::Create {
            return Ok(());
        }
        let mut refusals = Vec::new();
        match entity.attr_str(NAME) {
            Some(name) => {
                if let Err(reason) = check_name(name) {
                    refusals.push(Refusal::invalid(NAME, reason));
                }
            }
            None => refusals.push(Refusal::invalid(NAME, "required, a string")),
        }
        match entity.attr_str(SERVER) {
            Some(server) => {
                if let Err(reason) = check_server(server) {
                    refusals.push(Refusal::invalid(SERVER, reason));
                }
            }
            None => refusals.push(Refusal::invalid(SERVER, "required, a string")),
        }
        if refusals.is_empty() { Ok(()) } else { Err(refusals) }
    }

    fn on_create(entity: Entity) -> Result<Vec<Change>, Refusal> {
        let (name, server) = (required(&entity, NAME)?, required(&entity, SERVER)?);
        let url = folder_url(server, name);
        let marker = format!("{} {}", instance(&entity)?, entity.location);
        let made = send("MKCOL", &url, Vec::new())?;
        match made.status {
            201 => {
                let put = send("PUT", &format!("{url}{MARKER}"), marker.into_bytes())?;
                if !matches!(put.status, 201 | 204) {
                    // Leave nothing behind: the create fails as a whole.
                    let _ = send("DELETE", &url, Vec::new());
                    return Err(unexpected("PUT", &format!("{url}{MARKER}"), put.status));
                }
                log::info("made the collection", &[("url", &url), ("entity", &entity.location)]);
            }
            405 => {
                // Exists: ours only if the marker says so (this create prepared a second time).
                let owner = send("GET", &format!("{url}{MARKER}"), Vec::new())?;
                if owner.status != 200 || owner.body != marker.as_bytes() {
                    return Err(Refusal::conflict(format!("the folder {name} already exists on {server}")));
                }
                log::info("the collection is already this entity's", &[("url", &url)]);
            }
            409 => return Err(Refusal::other(format!("MKCOL {url}: {server} has no such parent collection (409)"))),
            status => return Err(unexpected("MKCOL", &url, status)),
        }
        Ok(vec![Change::set(URL, url), Change::set(FILES, 0i64)])
    }

    fn on_delete(entity: Entity) -> Result<(), Refusal> {
        let Some(url) = entity.attr_str(URL) else {
            // Never provisioned (made before the handler was bound): nothing to remove.
            return Ok(());
        };
        let gone = send("DELETE", url, Vec::new())?;
        match gone.status {
            200 | 204 | 404 => {
                log::info("removed the collection", &[("url", url), ("status", &gone.status.to_string())]);
                Ok(())
            }
            status => {
                Err(Refusal::conflict(format!("DELETE {url} answered {status}: the folder, and this entity, are kept")))
            }
        }
    }

    fn on_action(entity: Entity, action: String, params: Vec<Attribute>) -> Result<Vec<Change>, Refusal> {
        if action != format!("{ACTIONS}put") {
            return Err(Refusal::other(format!("a folder has no action {}", action_term(&action))));
        }
        let url = required(&entity, URL)?;
        let param = |name: &str| params.iter().find(|a| a.name == name).map(|a| &a.value);
        let file = match param(FILE_NAME) {
            Some(Value::Text(file)) => file.clone(),
            _ => return Err(Refusal::invalid(FILE_NAME, "required, a string")),
        };
        check_name(&file).map_err(|reason| Refusal::invalid(FILE_NAME, reason))?;
        let content = match param(FILE_CONTENT) {
            Some(Value::Text(text)) => text.clone().into_bytes(),
            None => Vec::new(),
            Some(_) => return Err(Refusal::invalid(FILE_CONTENT, "a string")),
        };
        let file_url = format!("{url}{file}");
        let put = send("PUT", &file_url, content)?;
        let files = entity.attr_i64(FILES).unwrap_or(0);
        match put.status {
            201 => Ok(vec![Change::set(FILES, files + 1)]),
            204 | 200 => Ok(Vec::new()),
            status => Err(unexpected("PUT", &file_url, status)),
        }
    }
}

/// A collection or file name: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with `.` (no path
/// separators, no `..`, nothing to escape in a URL).
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("1 to 64 characters".into());
    }
    if name.starts_with('.') {
        return Err("must not start with '.'".into());
    }
    match name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        Some(c) => Err(format!("{c:?} is not allowed: only A-Z, a-z, 0-9, '.', '_' and '-'")),
        None => Ok(()),
    }
}

/// `http://host[:port][/path]`, without a query or fragment.
fn check_server(server: &str) -> Result<(), String> {
    let Some(rest) = server.strip_prefix("http://") else {
        return Err("an http:// URL".into());
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err("an http:// URL with a host".into());
    }
    if server.contains(['?', '#', ' ']) {
        return Err("no query, fragment or space".into());
    }
    Ok(())
}

/// `{server}/{name}/`: a WebDAV collection's URL ends with `/`.
fn folder_url(server: &str, name: &str) -> String {
    format!("{}/{name}/", server.trim_end_matches('/'))
}

fn required<'e>(entity: &'e Entity, name: &str) -> Result<&'e str, Refusal> {
    entity.attr_str(name).ok_or_else(|| Refusal::invalid(name, "required, a string"))
}

/// This tenant's handler instance, for the ownership marker: the id of the first entity it
/// ever created, kept in its private kv. Two tenants using the same WebDAV server with the same
/// entity locations still tell their folders apart.
fn instance(entity: &Entity) -> Result<String, Refusal> {
    if let Some(id) = kv::get_string(INSTANCE) {
        return Ok(id);
    }
    kv::set(INSTANCE, &entity.id).map_err(|e| Refusal::other(format!("keeping the instance id: {e}")))?;
    Ok(entity.id.clone())
}

/// Sends one request; a request that gets no answer refuses with the host's reason.
fn send(method: &str, url: &str, body: Vec<u8>) -> Result<outbound::Response, Refusal> {
    let mut request = outbound::request(method, url);
    request.body = body;
    outbound::send(&request).map_err(|e| {
        log::warn("WebDAV request failed", &[("method", method), ("url", url), ("error", &e.describe())]);
        Refusal::other(format!("{method} {url}: {}", e.describe()))
    })
}

fn unexpected(method: &str, url: &str, status: u16) -> Refusal {
    log::warn("unexpected WebDAV answer", &[("method", method), ("url", url), ("status", &status.to_string())]);
    Refusal::other(format!("{method} {url} answered {status}"))
}

ocni_handler_sdk::export_handler!(WebDav);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain() {
        assert!(check_name("reports-2026_v1.txt").is_ok());
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", "ü", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn servers_are_http_urls() {
        assert!(check_server("http://127.0.0.1:8091").is_ok());
        assert!(check_server("http://dav.example/root/").is_ok());
        for bad in ["https://dav.example", "http://", "http:///x", "http://h/?q", "ftp://h"] {
            assert!(check_server(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn folder_urls_end_with_a_slash() {
        assert_eq!(folder_url("http://h:1", "a"), "http://h:1/a/");
        assert_eq!(folder_url("http://h:1/dav/", "a"), "http://h:1/dav/a/");
    }
}
