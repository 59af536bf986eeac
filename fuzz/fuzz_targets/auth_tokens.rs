//! The token parsers of `kelpie_protocol::http`: the URL query (`?token=`), the `Cookie`
//! header and `Authorization: Bearer`, as the server's token check uses them.
//!
//! Input: arbitrary bytes, through `std::str::from_utf8` (the server reads header values as
//! visible ASCII and queries as text). Every parser runs on the whole text. Checks: no panic;
//! a token is never empty and is a slice of the input found exactly where the syntax puts it
//! (after `token=` at the start of a query parameter; after `NAME=` at the start of a cookie;
//! after `Bearer ` at the start of the header), never across a separator; removing the token
//! parameters from a query leaves no token parameter and only parameters that were there.
#![no_main]

use kelpie_protocol::http::{bearer_token, cookie_values, is_token_text, query_token, query_without_token};
use libfuzzer_sys::fuzz_target;

/// Where `part` starts in `whole`; panics if it is not a slice of it.
fn offset(whole: &str, part: &str) -> usize {
    let start = part.as_ptr() as usize;
    let base = whole.as_ptr() as usize;
    assert!(start >= base && start + part.len() <= base + whole.len(), "{part:?} is not a slice of the input");
    start - base
}

fn check_query(text: &str) {
    if let Some(token) = query_token(text) {
        assert!(!token.is_empty() && !token.contains('&'));
        let at = offset(text, token);
        let param = at.checked_sub("token=".len()).expect("room for token= before the token");
        assert_eq!(&text[param..at], "token=");
        assert!(param == 0 || text.as_bytes()[param - 1] == b'&', "token= inside another parameter");
        assert!(at + token.len() == text.len() || text.as_bytes()[at + token.len()] == b'&');
    }
    let rest = query_without_token(text);
    let params: Vec<&str> = text.split('&').collect();
    for p in rest.split('&').filter(|p| !p.is_empty()) {
        assert!(!p.starts_with("token="), "a token parameter survived: {rest:?}");
        assert!(params.contains(&p), "{p:?} was not in the query");
    }
}

fn check_cookies(text: &str, name: &str) {
    for value in cookie_values(text, name) {
        assert!(!value.is_empty() && !value.contains(';'));
        let at = offset(text, value);
        let key = at.checked_sub(name.len() + 1).expect("room for NAME= before the value");
        assert_eq!(&text[key..at], format!("{name}="));
        let before = text[..key].trim_end_matches(' ');
        assert!(before.is_empty() || before.ends_with(';'), "NAME= inside another cookie");
    }
}

fn check_bearer(text: &str) {
    if let Some(token) = bearer_token(text) {
        assert!(!token.is_empty() && !token.contains(' '));
        let at = offset(text, token);
        assert!(text[..7].eq_ignore_ascii_case("bearer "), "no Bearer scheme");
        assert!(text[7..at].bytes().all(|b| b == b' '), "something between the scheme and the token");
        assert!(text[at + token.len()..].bytes().all(|b| b == b' '));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    check_query(text);
    check_bearer(text);
    check_cookies(text, "kelpie_token_8080");
    // A name the input chooses: the text before the first `|`, the cookies after it.
    if let Some((name, header)) = text.split_once('|')
        && !name.is_empty()
        && !name.contains(['=', ';'])
    {
        check_cookies(header, name);
    }
    if is_token_text(text) {
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)));
    }
});
