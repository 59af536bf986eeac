//! The token cookie's attributes: `HttpOnly` (no script reads it), `SameSite` (other sites'
//! pages do not send it), `Path` (only Kelpie's own prefix on a shared host gets it) and
//! `Secure` when browsers reach Kelpie over HTTPS.

/// `--cookie-samesite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SameSite {
    /// Sent only on requests started by Kelpie's own site: a link from another site opens
    /// Kelpie's "needs its access link" page until the user reloads.
    Strict,
    /// Also sent on top-level navigations from other sites (portals that link into Kelpie).
    Lax,
}

/// Where and how a cookie is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieAttrs {
    /// The path Kelpie is served under (`/` or `/desk`).
    pub path: String,
    /// Whether browsers reach Kelpie over HTTPS.
    pub secure: bool,
    /// The `SameSite` attribute.
    pub same_site: SameSite,
}

/// The `Set-Cookie` value that stores `value` under `name`. `value` and `path` must be
/// cookie-safe (tokens are checked at start-up, paths by `normalise_prefix`).
pub fn set_cookie(name: &str, value: &str, attrs: &CookieAttrs) -> String {
    let same_site = match attrs.same_site {
        SameSite::Strict => "Strict",
        SameSite::Lax => "Lax",
    };
    let secure = if attrs.secure { "; Secure" } else { "" };
    format!("{name}={value}; Path={}; HttpOnly; SameSite={same_site}{secure}", attrs.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_carry_every_attribute() {
        let attrs = CookieAttrs { path: "/".into(), secure: false, same_site: SameSite::Strict };
        assert_eq!(set_cookie("k", "t", &attrs), "k=t; Path=/; HttpOnly; SameSite=Strict");
        let attrs = CookieAttrs { path: "/desk".into(), secure: true, same_site: SameSite::Lax };
        assert_eq!(set_cookie("k", "t", &attrs), "k=t; Path=/desk; HttpOnly; SameSite=Lax; Secure");
    }
}
