//! Listing cursors: the opaque `continue` token of cursor paging (as Kubernetes' list API
//! has). A token holds the last location of the page it follows and a MAC (HMAC-SHA-256 with
//! the data directory's `cursor_key`, cut to 16 bytes) over that location and what the listing
//! is: the tenant, the collection's path and the filter. A token given to another tenant,
//! collection or filter, changed or made up, is refused; one that checks positions the next
//! page right after its location, with a seek: the page costs the same at any depth.
//!
//! Layout, base64url without padding: version byte 1, the 16 MAC bytes, the location (UTF-8).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::ApiError;
use crate::reply::R;

const VERSION: u8 = 1;
const MAC_LEN: usize = 16;

/// What a token is for: one listing (tenant, collection path, filter).
pub(crate) struct Scope<'a> {
    pub tenant: &'a str,
    pub path: &'a str,
    /// The filter, in a canonical form (empty: none).
    pub filter: &'a str,
}

fn mac(key: &[u8; 32], scope: &Scope<'_>, position: &str) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for part in ["ocni continue 1", scope.tenant, scope.path, scope.filter, position] {
        // Length-prefixed: no two different scopes give the same bytes.
        m.update(&(part.len() as u64).to_le_bytes());
        m.update(part.as_bytes());
    }
    m
}

/// The token of the page after `position` (the last location of this page).
pub(crate) fn encode(key: &[u8; 32], scope: &Scope<'_>, position: &str) -> String {
    let mut bytes = Vec::with_capacity(1 + MAC_LEN + position.len());
    bytes.push(VERSION);
    bytes.extend_from_slice(&mac(key, scope, position).finalize().into_bytes()[..MAC_LEN]);
    bytes.extend_from_slice(position.as_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The position a token holds, if it was issued for this listing.
pub(crate) fn decode(key: &[u8; 32], scope: &Scope<'_>, token: &str) -> R<String> {
    let malformed = || {
        ApiError::bad(format!(
            "continue={token:?} is not a continue token of this server: pass the token of a listing's Link rel=\"next\" unchanged"
        ))
    };
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| malformed())?;
    if bytes.len() < 1 + MAC_LEN || bytes[0] != VERSION {
        return Err(malformed());
    }
    let position = std::str::from_utf8(&bytes[1 + MAC_LEN..]).map_err(|_| malformed())?;
    // A constant-time check of the cut MAC.
    mac(key, scope, position).verify_truncated_left(&bytes[1..1 + MAC_LEN]).map_err(|_| {
        ApiError::bad(format!(
            "continue token does not belong to this listing of {:?}: it was given for another collection, filter or tenant, or altered (start again without continue)",
            scope.path
        ))
    })?;
    Ok(position.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_hold_to_their_listing() {
        let key = [7u8; 32];
        let scope = Scope { tenant: "t", path: "/compute/", filter: "" };
        let token = encode(&key, &scope, "/compute/42");
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{token}");
        assert_eq!(decode(&key, &scope, &token).unwrap(), "/compute/42");
        for other in [
            Scope { tenant: "u", path: "/compute/", filter: "" },
            Scope { tenant: "t", path: "/network/", filter: "" },
            Scope { tenant: "t", path: "/compute/", filter: "f" },
        ] {
            assert!(decode(&key, &other, &token).unwrap_err().message.contains("does not belong"));
        }
        assert!(decode(&[8u8; 32], &scope, &token).is_err(), "another data directory's key");
        // A forged position (same MAC, other location) is refused.
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        *bytes.last_mut().unwrap() = b'3';
        assert!(decode(&key, &scope, &URL_SAFE_NO_PAD.encode(bytes)).unwrap_err().message.contains("does not belong"));
        for junk in ["x", "!!!", "AAAA", &URL_SAFE_NO_PAD.encode([2u8; 20])] {
            assert!(decode(&key, &scope, junk).unwrap_err().message.contains("not a continue token"), "{junk}");
        }
    }
}
