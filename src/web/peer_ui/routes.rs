//! Every address the peer's web UI answers, with the methods it takes:
//! the one table (`route`), which both the dispatch and the body limit read.

use crate::web::http::Method;

/// What a request for an address does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route<'a> {
    Home,
    UploadPage,
    DownloadPage,
    About,
    /// `/api/progress`: the live bars' JSON.
    Progress,
    /// `/api/files`: the shared files' JSON.
    Files,
    Metrics,
    /// `/api/upload`: a file from the browser or from curl.
    Upload,
    /// `/api/fetch`: starts a fetch, answers JSON.
    FetchApi,
    /// `/fetch`: the Download page's form; answers with the page.
    FetchForm,
    /// `/files/NAME`, the name still percent-encoded.
    Save(&'a str),
    /// `/static/FILE`.
    Static(&'a str),
}

/// The methods an address takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Methods {
    Read,
    Post,
}

impl Methods {
    /// The `Allow` header of a 405.
    pub fn allow(self) -> &'static str {
        match self {
            Methods::Read => "GET, HEAD",
            Methods::Post => "POST",
        }
    }

    pub fn admit(self, method: Method) -> bool {
        matches!(
            (self, method),
            (Methods::Read, Method::Get | Method::Head) | (Methods::Post, Method::Post)
        )
    }
}

/// The route of `path` and the methods it takes; `None` for an unknown
/// address.
pub fn route(path: &str) -> Option<(Methods, Route<'_>)> {
    use Methods::{Post, Read};
    let found = match path {
        "/" => (Read, Route::Home),
        "/upload" => (Read, Route::UploadPage),
        "/download" => (Read, Route::DownloadPage),
        "/about" => (Read, Route::About),
        "/api/progress" => (Read, Route::Progress),
        "/api/files" => (Read, Route::Files),
        "/metrics" => (Read, Route::Metrics),
        "/api/upload" => (Post, Route::Upload),
        "/api/fetch" => (Post, Route::FetchApi),
        "/fetch" => (Post, Route::FetchForm),
        p => match (p.strip_prefix("/files/"), p.strip_prefix("/static/")) {
            (Some(name), _) => (Read, Route::Save(name)),
            (_, Some(file)) => (Read, Route::Static(file)),
            _ => return None,
        },
    };
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_methods() {
        assert_eq!(route("/"), Some((Methods::Read, Route::Home)));
        assert_eq!(route("/api/upload"), Some((Methods::Post, Route::Upload)));
        assert_eq!(
            route("/files/a.txt"),
            Some((Methods::Read, Route::Save("a.txt")))
        );
        assert_eq!(route("/nope"), None);
        assert_eq!(Methods::Read.allow(), "GET, HEAD");
        assert!(Methods::Read.admit(Method::Head) && !Methods::Read.admit(Method::Post));
        assert!(Methods::Post.admit(Method::Post) && !Methods::Post.admit(Method::Get));
    }
}
