//! Content negotiation: which rendering a request body is in (`Content-Type`) and which one
//! the client wants back (`Accept`, with q-values and wildcards).

use ocni_model::Dialect;

/// A response rendering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json(Dialect),
    TextPlain,
    TextOcci,
    UriList,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json(Dialect::Occi12) => "application/occi+json",
            Format::Json(Dialect::Pyocni) => "application/occi+json; dialect=pyocni",
            Format::TextPlain => "text/plain; charset=utf-8",
            Format::TextOcci => "text/occi",
            Format::UriList => "text/uri-list",
        }
    }
}

struct MediaRange {
    ty: String,
    sub: String,
    q: f32,
    dialect: Option<String>,
}

fn parse_media(s: &str) -> Option<MediaRange> {
    let mut parts = s.split(';');
    let full = parts.next()?.trim().to_ascii_lowercase();
    let (ty, sub) = full.split_once('/')?;
    let mut range = MediaRange { ty: ty.trim().into(), sub: sub.trim().into(), q: 1.0, dialect: None };
    for p in parts {
        let Some((k, v)) = p.split_once('=') else { continue };
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "q" => range.q = v.parse().unwrap_or(0.0),
            "dialect" => range.dialect = Some(v.to_ascii_lowercase()),
            _ => {}
        }
    }
    Some(range)
}

fn dialect_of(param: Option<&str>, default: Dialect) -> Result<Dialect, String> {
    match param {
        None => Ok(default),
        Some("pyocni") => Ok(Dialect::Pyocni),
        Some("occi" | "occi12" | "1.2") => Ok(Dialect::Occi12),
        Some(other) => Err(format!("unknown JSON dialect {other:?} (pyocni or occi12)")),
    }
}

/// The kind of a request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyType {
    Json,
    TextPlain,
    TextOcci,
    UriList,
}

/// Reads `Content-Type`. Both JSON dialects are recognised from the body itself.
pub fn body_type(content_type: Option<&str>) -> Result<BodyType, String> {
    let Some(ct) = content_type else {
        return Err("a request with a body needs a Content-Type (application/occi+json)".into());
    };
    let m = parse_media(ct).ok_or_else(|| format!("Content-Type {ct:?} is not a media type"))?;
    match (m.ty.as_str(), m.sub.as_str()) {
        ("application", "occi+json" | "json") => Ok(BodyType::Json),
        ("text", "plain" | "occi+plain") => Ok(BodyType::TextPlain),
        ("text", "occi") => Ok(BodyType::TextOcci),
        ("text", "uri-list") => Ok(BodyType::UriList),
        _ => Err(format!(
            "Content-Type {ct:?} is not supported: use application/occi+json, text/plain, text/occi or text/uri-list"
        )),
    }
}

/// Picks the response rendering from `Accept`. No Accept, or `*/*` alone: text/plain (OCCI 1.1
/// compatibility). Among acceptable renderings the highest q wins; at equal q, the first listed.
pub fn choose(accept: Option<&str>, default_dialect: Dialect) -> Result<Format, String> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else { return Ok(Format::TextPlain) };
    let mut best: Option<(f32, Format)> = None;
    for item in accept.split(',') {
        let Some(m) = parse_media(item) else { continue };
        if m.q <= 0.0 {
            continue;
        }
        let format = match (m.ty.as_str(), m.sub.as_str()) {
            ("application", "occi+json" | "json") => Format::Json(dialect_of(m.dialect.as_deref(), default_dialect)?),
            ("application", "*") => Format::Json(default_dialect),
            ("text", "plain" | "occi+plain") | ("text", "*") | ("*", "*") => Format::TextPlain,
            ("text", "occi") => Format::TextOcci,
            ("text", "uri-list") => Format::UriList,
            _ => continue,
        };
        if best.is_none_or(|(q, _)| m.q > q) {
            best = Some((m.q, format));
        }
    }
    best.map(|(_, f)| f).ok_or_else(|| {
        format!("none of {accept:?} can be produced: application/occi+json, text/plain, text/occi, text/uri-list")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept() {
        let d = Dialect::Occi12;
        assert_eq!(choose(None, d).unwrap(), Format::TextPlain);
        assert_eq!(choose(Some("*/*"), d).unwrap(), Format::TextPlain);
        assert_eq!(choose(Some("application/occi+json"), d).unwrap(), Format::Json(Dialect::Occi12));
        assert_eq!(choose(Some("application/occi+json; dialect=pyocni"), d).unwrap(), Format::Json(Dialect::Pyocni));
        assert_eq!(choose(Some("application/occi+json"), Dialect::Pyocni).unwrap(), Format::Json(Dialect::Pyocni));
        assert_eq!(choose(Some("text/plain;q=0.5, application/occi+json;q=0.9"), d).unwrap(), Format::Json(d));
        assert_eq!(choose(Some("text/occi, text/plain"), d).unwrap(), Format::TextOcci);
        assert!(choose(Some("image/png"), d).is_err());
        assert!(choose(Some("application/occi+json;q=0"), d).is_err());
    }

    #[test]
    fn content_types() {
        assert_eq!(body_type(Some("application/occi+json; charset=utf-8")).unwrap(), BodyType::Json);
        assert!(body_type(Some("application/x-www-form-urlencoded")).is_err());
        assert!(body_type(None).is_err());
    }
}
