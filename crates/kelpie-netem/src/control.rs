//! The control language, one command a line (read from stdin by the binary):
//!
//! ```text
//! set <a2b|b2a|both> [delay=MS] [jitter=MS] [loss=PCT] [burst=PACKETS] [rate=MBIT] [queue=BYTES | queue_ms=MS]
//! outage <MS> [a2b|b2a|both]      cut the link now for MS milliseconds
//! at <MS> <command>               run <command> MS milliseconds from now
//! stats                           print the counters as one JSON line
//! quit
//! ```
//! `rate=0` is unlimited; `burst` > 1 makes `loss` come in bursts of that mean length
//! (Gilbert–Elliott). Only the keys given change.
use std::time::Duration;

use crate::pipeline::{Params, QueueLimit};

/// Which direction(s) a command applies to: A→B, B→A or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    AtoB,
    BtoA,
    Both,
}

impl Dir {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "a2b" => Some(Self::AtoB),
            "b2a" => Some(Self::BtoA),
            "both" => Some(Self::Both),
            _ => None,
        }
    }

    /// Whether it includes A→B (`true`) or B→A (`false`).
    pub fn includes(self, a_to_b: bool) -> bool {
        match self {
            Self::Both => true,
            Self::AtoB => a_to_b,
            Self::BtoA => !a_to_b,
        }
    }
}

/// One change of a `set` command.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    Delay(Duration),
    Jitter(Duration),
    LossPct(f64),
    Burst(f64),
    RateBps(u64),
    Queue(QueueLimit),
}

impl Change {
    /// Applies it to `p`.
    pub fn apply(self, p: &mut Params) {
        match self {
            Self::Delay(d) => p.delay = d,
            Self::Jitter(d) => p.jitter = d,
            Self::LossPct(x) => p.loss_pct = x,
            Self::Burst(x) => p.burst = x,
            Self::RateBps(x) => p.rate_bps = x,
            Self::Queue(q) => p.queue = q,
        }
    }
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Set(Dir, Vec<Change>),
    Outage(Dir, Duration),
    At(Duration, Box<Self>),
    Stats,
    Quit,
}

fn number(key: &str, value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("{key}={value}: expected a number ≥ 0")),
    }
}

fn millis(key: &str, value: &str) -> Result<Duration, String> {
    number(key, value).map(|x| Duration::from_secs_f64(x / 1000.0))
}

fn change(item: &str) -> Result<Change, String> {
    let (key, value) = item.split_once('=').ok_or_else(|| format!("{item}: expected key=value"))?;
    Ok(match key {
        "delay" => Change::Delay(millis(key, value)?),
        "jitter" => Change::Jitter(millis(key, value)?),
        "loss" => {
            let x = number(key, value)?;
            if x > 100.0 {
                return Err(format!("loss={value}: a percentage, 0 to 100"));
            }
            Change::LossPct(x)
        }
        "burst" => Change::Burst(number(key, value)?),
        "rate" => Change::RateBps((number(key, value)? * 1e6).round() as u64),
        "queue" => Change::Queue(QueueLimit::Bytes(number(key, value)? as usize)),
        "queue_ms" => Change::Queue(QueueLimit::Time(millis(key, value)?)),
        _ => {
            return Err(format!("{key}: unknown (known: delay, jitter, loss, burst, rate, queue, queue_ms)"));
        }
    })
}

/// Parses one line.
pub fn parse(line: &str) -> Result<Command, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let dir = |w: Option<&&str>| match w {
        None => Ok(Dir::Both),
        Some(w) => Dir::parse(w).ok_or_else(|| format!("{w}: expected a2b, b2a or both")),
    };
    match words.as_slice() {
        ["set", d, items @ ..] => {
            let changes = items.iter().map(|i| change(i)).collect::<Result<Vec<_>, _>>()?;
            Ok(Command::Set(dir(Some(d))?, changes))
        }
        ["outage", length] => Ok(Command::Outage(Dir::Both, millis("outage", length)?)),
        ["outage", length, d] => Ok(Command::Outage(dir(Some(d))?, millis("outage", length)?)),
        ["at", when, rest @ ..] if !rest.is_empty() => {
            Ok(Command::At(millis("at", when)?, Box::new(parse(&rest.join(" "))?)))
        }
        ["stats"] => Ok(Command::Stats),
        ["quit"] => Ok(Command::Quit),
        _ => Err(format!("{:?}: unknown command (set, outage, at, stats, quit)", line.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_set_with_every_key() {
        let c = parse("set both delay=20 jitter=2.5 loss=1 burst=3 rate=4 queue=30000").unwrap();
        let Command::Set(Dir::Both, changes) = c else { panic!("{c:?}") };
        let mut p = Params::default();
        changes.into_iter().for_each(|c| c.apply(&mut p));
        assert_eq!(p.delay, Duration::from_millis(20));
        assert_eq!(p.jitter, Duration::from_micros(2500));
        assert_eq!((p.loss_pct, p.burst, p.rate_bps), (1.0, 3.0, 4_000_000));
        assert_eq!(p.queue, QueueLimit::Bytes(30_000));
        assert_eq!(
            parse("set b2a queue_ms=50").unwrap(),
            Command::Set(Dir::BtoA, vec![Change::Queue(QueueLimit::Time(Duration::from_millis(50)))])
        );
    }

    #[test]
    fn parses_outage_at_stats_quit() {
        assert_eq!(parse("outage 2000").unwrap(), Command::Outage(Dir::Both, Duration::from_secs(2)));
        assert_eq!(parse(" outage 5 a2b ").unwrap(), Command::Outage(Dir::AtoB, Duration::from_millis(5)));
        assert_eq!(
            parse("at 1500 set a2b rate=20").unwrap(),
            Command::At(
                Duration::from_millis(1500),
                Box::new(Command::Set(Dir::AtoB, vec![Change::RateBps(20_000_000)]))
            )
        );
        assert_eq!(parse("stats").unwrap(), Command::Stats);
        assert_eq!(parse("quit").unwrap(), Command::Quit);
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        assert!(parse("set sideways delay=1").unwrap_err().contains("a2b, b2a or both"));
        assert!(parse("set both delay=-1").unwrap_err().contains("number ≥ 0"));
        assert!(parse("set both loss=150").unwrap_err().contains("0 to 100"));
        assert!(parse("set both colour=red").unwrap_err().contains("unknown"));
        assert!(parse("set both delay").unwrap_err().contains("key=value"));
        assert!(parse("reboot").unwrap_err().contains("unknown command"));
        assert!(parse("at 10").is_err());
        assert!(parse("outage NaN").is_err());
    }
}
