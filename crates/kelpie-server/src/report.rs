//! Errors as one line for people: the libraries' errors say what failed and keep their
//! cause as `source()`; logs and the page's error messages show the whole chain.

use std::error::Error;
use std::fmt;

/// Shows an error and its causes, outermost first, joined by ": ".
pub struct Report<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

/// [`Report`] as a string.
pub fn report(e: &(dyn Error + 'static)) -> String {
    Report(e).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open the display")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_whole_chain_is_shown() {
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(report(&e), "cannot open the display: connection refused");
        assert_eq!(report(&std::io::Error::other("alone")), "alone");
    }
}
